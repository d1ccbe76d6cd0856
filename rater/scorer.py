"""The frozen rater as a Scorer: batched waveforms in, popularity scores (in ``p`` units) out.

Everything downstream (the piano environment's reward, dreaming, evaluation) reads the rater through this
module, so it owns the checkpoint format and refuses anything it cannot score faithfully: a checkpoint of
another format version or whose front-end settings do not fit the network, audio at another sample rate, or
waveforms that are not finite mono arrays.

One checkpoint (format 2) holds an ensemble: ``reward`` members (trained on bootstrap samples of the reward
pool) whose scores combine into the reward (``rule``: ``uwo`` = mean - lambda * variance, ``wco`` = min, or
``mean``; lambda chosen on the validation split), and held-out members trained on pieces no reward member
saw: one ``select`` member (may choose RL checkpoints) and ``report`` members (only report). A proxy score
that climbs while the held-out scores do not reveals over-optimisation. ``Scorer.load(path, device)`` gives
the combined reward; :meth:`Scorer.members` and :meth:`Scorer.disagreement` give the per-member scores and
their spread per clip. Format-1 checkpoints (one seed-arch network per member, member ``reward_index`` the
reward) still load.
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
from rater.ensemble import RULES, combine
from rater.logfreq import LogFreq, LogFreqConfig, augment_logfreq
from rater.mel import LogMel, MelConfig
from rater.model import Rater, RaterConfig
from rater.tonal import TonalConfig, TonalRater

DEFAULT_CHECKPOINT = Path("runs/rater/checkpoints/rater.pt")
CHECKPOINT_ENV = "EARWORM_RATER"
FORMAT_VERSION = 2
ARCHS = {
    "seed": (Rater, RaterConfig, LogMel, MelConfig),
    "tonal": (TonalRater, TonalConfig, LogFreq, LogFreqConfig),
}
REQUIRED_KEYS = (
    "format_version", "arch", "model_config", "state_dicts", "roles", "rule", "lambda", "frontend_config",
    "sample_rate", "target",
)  # fmt: skip
ROLES = ("reward", "select", "report")


def checkpoint_path(path: str | os.PathLike | None = None) -> Path:
    """The checkpoint to load: ``path``, else ``$EARWORM_RATER``, else :data:`DEFAULT_CHECKPOINT`."""
    return Path(path or os.environ.get(CHECKPOINT_ENV) or DEFAULT_CHECKPOINT)


def build_checkpoint(
    state_dicts: list[dict],
    model_config,
    frontend_config,
    target_mean: float,
    target_std: float,
    arch: str = "seed",
    roles: Sequence[str] | None = None,
    rule: str = "mean",
    lam: float = 0.0,
    **extra,
) -> dict:
    """The frozen checkpoint dict :meth:`Scorer.load` reads (``extra``: data hash, train args, test metrics).

    ``roles`` (default: the first member is the reward, the rest report) names each member ``reward``,
    ``select`` or ``report``; ``rule`` and ``lam`` combine the reward members.
    """
    roles = list(roles) if roles is not None else ["reward"] + ["report"] * (len(state_dicts) - 1)
    if len(roles) != len(state_dicts) or "reward" not in roles or set(roles) - set(ROLES):
        raise ValueError(f"roles {roles} must name each of the {len(state_dicts)} members one of {ROLES}, at least one reward.")
    if arch not in ARCHS or rule not in RULES:
        raise ValueError(f"arch must be one of {list(ARCHS)} and rule one of {list(RULES)}, got {arch!r}, {rule!r}.")
    return {
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "model_config": model_config.to_dict(),
        "state_dicts": list(state_dicts),
        "roles": roles,
        "rule": rule,
        "lambda": float(lam),
        "frontend_config": frontend_config.to_dict(),
        "sample_rate": frontend_config.sample_rate,
        "target": {"mean": float(target_mean), "std": float(target_std)},
        **extra,
    }


def _upgrade(payload: dict) -> dict:
    """A format-1 checkpoint (seed arch, one reward member) as format 2."""
    roles = ["report"] * len(payload["state_dicts"])
    roles[payload["reward_index"]] = "reward"
    return {**payload, "format_version": FORMAT_VERSION, "arch": "seed", "roles": roles, "rule": "mean", "lambda": 0.0,
            "frontend_config": payload["mel_config"]}  # fmt: skip


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
    if isinstance(payload, dict) and payload.get("format_version") == 1 and "mel_config" in payload:
        payload = _upgrade(payload)
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        found = payload.get("format_version") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"{path} has checkpoint format {found!r}, this code reads format {FORMAT_VERSION}; "
            "retrain with `python train.py --agent rater`."
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"{path} lacks {missing}; it is not a finished rater checkpoint. Retrain the rater.")
    if payload["arch"] not in ARCHS:
        raise ValueError(f"{path} has arch {payload['arch']!r}; this code knows {list(ARCHS)}. Retrain the rater.")
    _, _, _, frontend_cls = ARCHS[payload["arch"]]
    known = {f.name for f in dataclasses.fields(frontend_cls)}
    if set(payload["frontend_config"]) != known:
        raise ValueError(
            f"{path} was trained with front-end settings {sorted(payload['frontend_config'])}, this code's "
            f"{frontend_cls.__name__} has {sorted(known)}; retrain the rater with this code."
        )
    frontend = frontend_cls(**payload["frontend_config"])
    width = payload["model_config"].get("n_mels", payload["model_config"].get("n_bins"))
    if frontend.n_features != width or frontend.sample_rate != payload["sample_rate"]:
        raise ValueError(
            f"{path}: front end (rows={frontend.n_features}, sample_rate={frontend.sample_rate}) disagrees with the "
            f"network (rows={width}, sample_rate={payload['sample_rate']}); retrain the rater."
        )
    return payload


class Scorer:
    """Frozen rater member(s) on one front end: ``scorer(waves) -> np.ndarray[float32]`` in popularity (``p``) units.

    A scorer holds one or more networks; with several (the reward ensemble) their normalised scores combine
    by ``rule`` (``uwo`` with ``lam``, ``wco`` or ``mean``). ``member`` is the checkpoint index of a single
    member (None for an ensemble); ``role`` is ``reward`` for the reward and ``heldout`` for held-out members,
    whose ``purpose`` is ``select`` or ``report``. ``mel`` is the front end (log-mel or log-frequency).
    """

    def __init__(self, models, mel, target_mean: float, target_std: float, member: int | None, role: str,
                 rule: str = "mean", lam: float = 0.0, purpose: str | None = None):  # fmt: skip
        models = list(models) if isinstance(models, (list, tuple)) else [models]
        self.models = [m.eval().requires_grad_(False) for m in models]
        self.model = self.models[0]
        self.mel = mel
        self.target_mean = float(target_mean)
        self.target_std = float(target_std)
        self.member = member
        self.role = role
        self.purpose = purpose or role
        self.rule = rule
        self.lam = float(lam)
        self.sample_rate = mel.config.sample_rate
        self.device = next(self.model.parameters()).device
        self.max_batch_samples = 1 << (24 if self.device.type == "cuda" else 20)  # CPU: ~8 clips of 8 s stay in cache

    @classmethod
    def from_checkpoint(cls, payload: dict, member: str | int = "reward", device: str | torch.device = "auto") -> Scorer:
        """A Scorer for the reward ensemble (``member="reward"``), one member by index, or ``"select"``/``"report"``
        (the first held-out member with that purpose) of an already loaded checkpoint dict."""
        n, roles = len(payload["state_dicts"]), payload["roles"]
        if member == "reward":
            indices = [i for i, r in enumerate(roles) if r == "reward"]
        elif member in ("select", "report"):
            if member not in roles:
                raise ValueError(f"This checkpoint has no {member!r} member (roles {roles}); retrain with --n-heldout 2.")
            indices = [roles.index(member)]
        elif isinstance(member, int) and not isinstance(member, bool) and 0 <= member < n:
            indices = [member]
        else:
            raise ValueError(f"member must be 'reward', 'select', 'report' or an int in [0, {n}), got {member!r}.")
        resolved = resolve_device(device)
        model_cls, config_cls, frontend_cls, frontend_config_cls = ARCHS[payload["arch"]]
        config = config_cls(**payload["model_config"])
        models = []
        for i in indices:
            model = model_cls(config)
            model.load_state_dict(payload["state_dicts"][i])
            models.append(model.to(resolved))
        frontend = frontend_cls(frontend_config_cls(**payload["frontend_config"])).to(resolved)
        single = len(indices) == 1 and member != "reward"
        role = "reward" if all(roles[i] == "reward" for i in indices) else "heldout"
        target = payload["target"]
        return cls(models, frontend, target["mean"], target["std"], indices[0] if single else None, role,
                   rule=payload["rule"], lam=payload["lambda"], purpose=roles[indices[0]])  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: str = "auto", member: str | int = "reward") -> Scorer:
        """Load the reward (default) or one member of a checkpoint (default: ``$EARWORM_RATER`` or DEFAULT_CHECKPOINT)."""
        return cls.from_checkpoint(read_checkpoint(path), member, device)

    @classmethod
    def load_heldout(cls, path: str | os.PathLike | None = None, device: str = "auto") -> list[Scorer]:
        """Every held-out member of a checkpoint, the ``select`` one first (never use these as reward)."""
        payload = read_checkpoint(path)
        roles = payload["roles"]
        members = [i for i, r in enumerate(roles) if r == "select"] + [i for i, r in enumerate(roles) if r == "report"]
        return [cls.from_checkpoint(payload, i, device) for i in members]

    def parameters(self):
        """The networks' parameters (frozen); lets callers find the device the scorer runs on."""
        return (p for m in self.models for p in m.parameters())

    def _features(self, waves, augment, generator, lengths):
        if waves.dim() != 2:
            raise ValueError(f"score_tensor expects waveforms of shape (batch, samples), got {tuple(waves.shape)}.")
        waves = waves.to(self.device)
        if lengths is None:
            lengths = torch.full((waves.shape[0],), waves.shape[1], dtype=torch.long)
        frames = self.mel.config.frames(lengths.to(self.device).long())
        spec = self.mel(waves)
        if augment is not None:
            generator = generator if generator is not None else torch.Generator().manual_seed(0)
            if isinstance(self.mel.config, LogFreqConfig):
                semitones = int(round(augment.pitch_semitones))
                spec, frames = augment_logfreq(spec, frames, generator, augment.gain_db, semitones, augment.stretch, self.mel.config)
            else:
                spec, frames = augment_logmel(spec, frames, generator, augment, self.mel.config)
        return spec, frames

    def members_tensor(self, waves: torch.Tensor, augment: AugmentConfig | None = None,
                       generator: torch.Generator | None = None, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Differentiable normalised scores of every network, shape (n_models, B) (the front end runs once)."""
        spec, frames = self._features(waves, augment, generator, lengths)
        return torch.stack([model(spec, frames) for model in self.models])

    def score_tensor(
        self,
        waves: torch.Tensor,
        augment: AugmentConfig | None = None,
        generator: torch.Generator | None = None,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Differentiable scores (B,) of waveforms (B, T) on the scorer's device, in ``p`` units.

        ``lengths`` (samples per row) masks zero padding; ``augment`` applies random augmentation in the
        front end's domain drawn from ``generator`` (robust dreaming). An ensemble combines by its rule.
        """
        members = self.members_tensor(waves, augment, generator, lengths)
        return combine(members, self.rule, self.lam) * self.target_std + self.target_mean

    def _batched(self, waves: Sequence[np.ndarray], sample_rate: int | None) -> np.ndarray:
        """Normalised member scores (n_models, N) of mono waveforms of any lengths, in ascending-length chunks."""
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            raise ValueError(
                f"Waveforms at {sample_rate} Hz, but this rater was trained at {self.sample_rate} Hz; "
                f"resample them (e.g. librosa.resample(y, orig_sr={sample_rate}, target_sr={self.sample_rate}))."
            )
        if isinstance(waves, np.ndarray) and waves.ndim == 1:
            raise ValueError("Pass a batch (a list of waveforms or a 2-D array), not a single 1-D waveform.")
        arrays = [_checked(w, i) for i, w in enumerate(waves)]
        scores = np.zeros((len(self.models), len(arrays)), dtype=np.float32)
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
                scores[:, order[start:stop]] = self.members_tensor(torch.from_numpy(batch), lengths=lengths).cpu().numpy()
                start = stop
        return scores

    def members(self, waves: Sequence[np.ndarray], sample_rate: int | None = None) -> np.ndarray:
        """Every network's score in ``p`` units, float32 of shape (n_models, len(waves))."""
        return (self._batched(waves, sample_rate) * self.target_std + self.target_mean).astype(np.float32)

    def disagreement(self, waves: Sequence[np.ndarray], sample_rate: int | None = None) -> np.ndarray:
        """Per-clip standard deviation of the networks' scores in ``p`` units (0 for a single member), (len(waves),)."""
        return (self._batched(waves, sample_rate).std(0) * self.target_std).astype(np.float32)

    def __call__(self, waves: Sequence[np.ndarray], sample_rate: int | None = None) -> np.ndarray:
        """Scores (float32, shape (len(waves),)) of mono waveforms of any lengths at ``self.sample_rate``."""
        members = torch.from_numpy(self._batched(waves, sample_rate))
        return (combine(members, self.rule, self.lam).numpy() * self.target_std + self.target_mean).astype(np.float32)


def _checked(wave, index: int) -> np.ndarray:
    """One waveform as a contiguous float32 1-D array, or a clear error."""
    array = np.asarray(wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else wave, dtype=np.float32)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"Waveform {index} has shape {array.shape}; pass non-empty mono 1-D arrays (mix stereo down first).")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"Waveform {index} contains NaN or inf; clean or drop it before scoring.")
    return np.ascontiguousarray(array)
