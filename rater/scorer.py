"""The frozen rater as a Scorer: batched waveforms in, popularity scores (in ``p`` units) out.

Everything downstream (the piano environment's reward, dreaming, evaluation) reads the rater through this
module, so it owns the checkpoint format and refuses anything it cannot score faithfully: a checkpoint of
another format version or whose mel settings do not fit the network, audio at another sample rate, or
waveforms that are not finite mono arrays. One checkpoint holds K raters trained on disjoint folds of the
training pieces: the reward member (the proxy agents optimise) and held-out members that are never used as
reward, so a proxy score that climbs while the held-out scores do not reveals over-optimisation.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from studio.device import resolve_device
from studio.files import atomic_path
from rater.augment import AugmentConfig
from rater.augment import augment as augment_logmel
from rater.mel import LogMel, MelConfig
from rater.model import Rater, RaterConfig

DEFAULT_CHECKPOINT = Path("runs/rater/checkpoints/rater.pt")
CHECKPOINT_ENV = "EARWORM_RATER"
FORMAT_VERSION = 1
REQUIRED_KEYS = (
    "format_version", "model_config", "state_dicts", "reward_index", "mel_config", "sample_rate", "target",
)  # fmt: skip


def checkpoint_path(path: str | os.PathLike | None = None) -> Path:
    """The checkpoint to load: ``path``, else ``$EARWORM_RATER``, else :data:`DEFAULT_CHECKPOINT`."""
    return Path(path or os.environ.get(CHECKPOINT_ENV) or DEFAULT_CHECKPOINT)


def build_checkpoint(
    state_dicts: list[dict],
    model_config: RaterConfig,
    mel_config: MelConfig,
    target_mean: float,
    target_std: float,
    reward_index: int = 0,
    **extra,
) -> dict:
    """The frozen checkpoint dict :meth:`Scorer.load` reads (``extra``: data hash, train args, test metrics)."""
    if not 0 <= reward_index < len(state_dicts):
        raise ValueError(f"reward_index {reward_index} is not one of the {len(state_dicts)} members.")
    return {
        "format_version": FORMAT_VERSION,
        "model_config": model_config.to_dict(),
        "state_dicts": list(state_dicts),
        "reward_index": reward_index,
        "heldout_indices": [i for i in range(len(state_dicts)) if i != reward_index],
        "mel_config": mel_config.to_dict(),
        "sample_rate": mel_config.sample_rate,
        "target": {"mean": float(target_mean), "std": float(target_std)},
        **extra,
    }


def save_checkpoint(payload: dict, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically: a crash mid-write never leaves a broken checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | os.PathLike | None = None) -> dict:
    """Load and validate a frozen rater checkpoint (format, keys, mel config against the network)."""
    path = checkpoint_path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No rater checkpoint at {path}. Train one with `python train.py --agent rater` "
            f"(or point ${CHECKPOINT_ENV} at an existing rater.pt)."
        )
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        found = payload.get("format_version") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"{path} has checkpoint format {found!r}, this code reads format {FORMAT_VERSION}; "
            "retrain with `python train.py --agent rater`."
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"{path} lacks {missing}; it is not a finished rater checkpoint. Retrain the rater.")
    known = {f.name for f in dataclasses.fields(MelConfig)}
    if set(payload["mel_config"]) != known:
        raise ValueError(
            f"{path} was trained with mel settings {sorted(payload['mel_config'])}, this code's MelConfig has "
            f"{sorted(known)}; retrain the rater with this code."
        )
    mel = MelConfig(**payload["mel_config"])
    if mel.n_mels != payload["model_config"]["n_mels"] or mel.sample_rate != payload["sample_rate"]:
        raise ValueError(
            f"{path}: mel config (n_mels={mel.n_mels}, sample_rate={mel.sample_rate}) disagrees with the network "
            f"(n_mels={payload['model_config']['n_mels']}, sample_rate={payload['sample_rate']}); retrain the rater."
        )
    return payload


class Scorer:
    """One frozen rater member: ``scorer(waves) -> np.ndarray[float32]`` in popularity (``p``) units."""

    def __init__(self, model: Rater, mel: LogMel, target_mean: float, target_std: float, member: int, role: str):
        self.model = model.eval().requires_grad_(False)
        self.mel = mel
        self.target_mean = float(target_mean)
        self.target_std = float(target_std)
        self.member = int(member)
        self.role = role
        self.sample_rate = mel.config.sample_rate
        self.device = next(model.parameters()).device
        self.max_batch_samples = 1 << (24 if self.device.type == "cuda" else 20)  # CPU: ~8 clips of 8 s stay in cache

    @classmethod
    def from_checkpoint(cls, payload: dict, member: str | int = "reward", device: str | torch.device = "auto") -> Scorer:
        """A Scorer for one member of an already loaded checkpoint dict."""
        n = len(payload["state_dicts"])
        index = payload["reward_index"] if member == "reward" else member
        if not isinstance(index, int) or not 0 <= index < n:
            raise ValueError(f"member must be 'reward' or an int in [0, {n}), got {member!r}.")
        resolved = resolve_device(device)
        model = Rater(RaterConfig(**payload["model_config"]))
        model.load_state_dict(payload["state_dicts"][index])
        mel = LogMel(MelConfig(**payload["mel_config"]))
        role = "reward" if index == payload["reward_index"] else "heldout"
        target = payload["target"]
        return cls(model.to(resolved), mel.to(resolved), target["mean"], target["std"], index, role)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: str = "auto", member: str | int = "reward") -> Scorer:
        """Load one member (default: the reward rater) of a checkpoint (default: ``$EARWORM_RATER`` or DEFAULT_CHECKPOINT)."""
        return cls.from_checkpoint(read_checkpoint(path), member, device)

    @classmethod
    def load_heldout(cls, path: str | os.PathLike | None = None, device: str = "auto") -> list[Scorer]:
        """Every held-out member of a checkpoint (never use these as reward)."""
        payload = read_checkpoint(path)
        members = [i for i in range(len(payload["state_dicts"])) if i != payload["reward_index"]]
        return [cls.from_checkpoint(payload, i, device) for i in members]

    def parameters(self):
        """The network's parameters (frozen); lets callers find the device the scorer runs on."""
        return self.model.parameters()

    def score_tensor(
        self,
        waves: torch.Tensor,
        augment: AugmentConfig | None = None,
        generator: torch.Generator | None = None,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Differentiable scores (B,) of waveforms (B, T) on the scorer's device, in ``p`` units.

        ``lengths`` (samples per row) masks zero padding; ``augment`` applies random mel-domain
        augmentation drawn from ``generator`` (robust dreaming).
        """
        if waves.dim() != 2:
            raise ValueError(f"score_tensor expects waveforms of shape (batch, samples), got {tuple(waves.shape)}.")
        waves = waves.to(self.device)
        if lengths is None:
            lengths = torch.full((waves.shape[0],), waves.shape[1], dtype=torch.long)
        frames = self.mel.config.frames(lengths.to(self.device).long())
        logmel = self.mel(waves)
        if augment is not None:
            generator = generator if generator is not None else torch.Generator().manual_seed(0)
            logmel, frames = augment_logmel(logmel, frames, generator, augment, self.mel.config)
        return self.model(logmel, frames) * self.target_std + self.target_mean

    def __call__(self, waves: Sequence[np.ndarray], sample_rate: int | None = None) -> np.ndarray:
        """Scores (float32, shape (len(waves),)) of mono waveforms of any lengths at ``self.sample_rate``."""
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            raise ValueError(
                f"Waveforms at {sample_rate} Hz, but this rater was trained at {self.sample_rate} Hz; "
                f"resample them (e.g. librosa.resample(y, orig_sr={sample_rate}, target_sr={self.sample_rate}))."
            )
        if isinstance(waves, np.ndarray) and waves.ndim == 1:
            raise ValueError("Pass a batch (a list of waveforms or a 2-D array), not a single 1-D waveform.")
        arrays = [_checked(w, i) for i, w in enumerate(waves)]
        scores = np.zeros(len(arrays), dtype=np.float32)
        order = np.argsort([a.size for a in arrays], kind="stable")
        with torch.no_grad():
            start = 0
            while start < len(order):  # ascending lengths: the chunk's last clip is its longest
                stop = start + 1
                while stop < len(order) and (stop - start + 1) * arrays[order[stop]].size <= self.max_batch_samples:
                    stop += 1
                chunk = [arrays[i] for i in order[start:stop]]
                batch = np.zeros((len(chunk), chunk[-1].size), dtype=np.float32)
                for row, a in enumerate(chunk):
                    batch[row, : a.size] = a
                lengths = torch.tensor([a.size for a in chunk])
                scores[order[start:stop]] = self.score_tensor(torch.from_numpy(batch), lengths=lengths).cpu().numpy()
                start = stop
        return scores


def _checked(wave, index: int) -> np.ndarray:
    """One waveform as a contiguous float32 1-D array, or a clear error."""
    array = np.asarray(wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else wave, dtype=np.float32)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"Waveform {index} has shape {array.shape}; pass non-empty mono 1-D arrays (mix stereo down first).")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"Waveform {index} contains NaN or inf; clean or drop it before scoring.")
    return np.ascontiguousarray(array)
