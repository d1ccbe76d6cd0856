"""Train the rater: a conservative ensemble of small networks, frozen into one checkpoint.

Run ``python -m rater.train --help`` (or ``python train.py --agent rater``). The spectrogram of every clip
(log-frequency for ``--arch tonal``, log-mel for ``--arch seed``) is computed once and cached beside the
dataset (keyed by its data hash and the front end's config), so epochs only crop, augment and run the network.

Members (issue 14, after Coste et al. 2024):
- The training pieces are split once: a held-out fold (``--heldout-fraction`` of the pieces) and the rest.
- ``--n-reward`` reward members train on bootstrap samples (by piece) of the rest, each with its own seed.
  Their scores combine into the reward (``--combine``: ``uwo`` = mean - lambda * variance, ``wco`` = min),
  with lambda chosen on the validation split (the most conservative within ``--lambda-tolerance`` of the
  best validation Spearman) and recorded in the checkpoint.
- ``--n-heldout`` held-out members train on the held-out fold, which no reward member sees: the first
  ("select") may choose RL checkpoints, the others ("report") only report.
The test-split report compares a single reward member, the ensemble reward and the held-out members with
the train mean, ridge on time-averaged log-mel, ridge on the simulated listeners' own features (labelled:
it uses the listeners' features) and the noise ceiling (the listeners' gold score against the observed ``p``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from torch.utils.tensorboard import SummaryWriter

from studio.files import atomic_path, write_json
from studio.progress import progress_bar
from rater.augment import AugmentConfig, augment
from studio.flags import parse_args
from rater.data.clips import Clips
from rater.ensemble import RULES, bootstrap_rows, choose_lambda, combine
from rater.logfreq import LogFreq, LogFreqConfig, augment_logfreq, transpose
from rater.mel import LogMel, MelConfig
from rater.model import Rater, RaterConfig, frame_mask
from rater.scorer import ARCHS, build_checkpoint, save_checkpoint
from rater.tonal import TonalConfig, TonalRater
from studio.device import resolve_device

RIDGE_LAMBDAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass
class Args:
    data: str = field(default="data/default", metadata={"help": "Clips dataset folder (built with the default recipe if missing)"})
    out: str = field(default="runs/rater", metadata={"help": "run folder: checkpoints/, tb/, report.json (a fresh run replaces them)"})
    seed: int = field(default=0, metadata={"help": "seed for folds, bootstraps, initialisation, crops and augmentation"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when available), cpu or cuda[:N]"})
    arch: str = field(default="tonal", metadata={"help": "tonal (log-frequency, pitch-equivariant, key-invariant readout, temporal model) or seed (the seed's log-mel CNN)"})
    epochs: int = field(default=8, metadata={"help": "maximum epochs per member (8: the make-demo budget; val still rises to ~14)"})
    batch_size: int = field(default=32, metadata={"help": "clips per training batch"})
    lr: float = field(default=3e-3, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay"})
    n_reward: int = field(default=5, metadata={"help": "reward members (seed + bootstrap sample of the non-held-out pieces)"})
    n_heldout: int = field(default=2, metadata={"help": "held-out members on the held-out fold (first: selects checkpoints; rest: only report)"})
    heldout_fraction: float = field(default=0.3, metadata={"help": "fraction of the training pieces in the held-out fold"})
    bootstrap: bool = field(default=True, metadata={"help": "reward members train on bootstrap samples of the pieces (off: all of them)"})
    combine: str = field(default="uwo", metadata={"help": "reward rule over the members: uwo (mean - lambda * var), wco (min) or mean"})
    lambda_tolerance: float = field(default=0.01, metadata={"help": "uwo: largest lambda whose val Spearman is within this of the best"})
    patience: int = field(default=3, metadata={"help": "stop a member after this many epochs without a better val loss"})
    crop_seconds: float = field(default=4.0, metadata={"help": "length of the random training crops"})
    n_fft: int = field(default=0, metadata={"help": "STFT size in samples (0: 4096 for tonal, 2048 for seed)"})
    fmin: float = field(default=0.0, metadata={"help": "seed arch: lowest mel band edge in Hz"})
    fmax: float = field(default=8000.0, metadata={"help": "seed arch: highest mel band edge in Hz (at most sample_rate / 2)"})
    low_pitch: int = field(default=36, metadata={"help": "tonal arch: MIDI pitch of the lowest log-frequency bin"})
    octaves: int = field(default=6, metadata={"help": "tonal arch: octaves of log-frequency bins"})
    bins_per_semitone: int = field(default=2, metadata={"help": "tonal arch: log-frequency bins per semitone"})
    channels: int = field(default=128, metadata={"help": "seed arch: Conv1D channels"})
    conv_layers: int = field(default=1, metadata={"help": "seed arch: stacked width-5 convolutions (dilation 1, 2, 4, ...)"})
    hidden: str = field(default="64", metadata={"help": "seed arch: comma-separated per-frame Dense widths; tonal: the head's width"})
    pooled: str = field(default="", metadata={"help": "seed arch: comma-separated Dense widths after the time average ('' = none)"})
    front_channels: int = field(default=16, metadata={"help": "tonal arch: channels of the pitch-equivariant front end"})
    n_keys: int = field(default=8, metadata={"help": "tonal arch: learned key profiles"})
    temporal_channels: int = field(default=32, metadata={"help": "tonal arch: channels of the temporal model"})
    temporal_layers: int = field(default=4, metadata={"help": "tonal arch: dilated temporal convolutions"})
    summary: bool = field(default=False, metadata={"help": "tonal arch: add each clip's per-bin mean and std over time to the head (a linear wide path)"})
    correlate: bool = field(default=False, metadata={"help": "tonal arch: key readout on mean-removed unit-norm pitch-class profiles"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in the head"})
    augment: bool = field(default=False, metadata={"help": "augmentation with the ranges below (seed: mel-domain; tonal: exact gain / transposition / stretch)"})
    aug_gain_db: float = field(default=0.0, metadata={"help": "augment: level change in [-x, x] dB (0 = off)"})
    aug_semitones: int = field(default=2, metadata={"help": "augment: transposition in whole semitones in [-x, x] (0 = off)"})
    aug_stretch: float = field(default=0.0, metadata={"help": "augment: duration factor in [1 - x, 1 + x] (0 = off)"})
    aux_weight: float = field(default=0.0, metadata={"help": "tonal arch: weight of the auxiliary piano-roll/onset loss (needs clips with known notes; 0 = off)"})
    baselines: bool = field(default=True, metadata={"help": "report rows: a single seed-arch network on the reward pool and ridge on the listeners' features"})
    resume: bool = field(default=False, metadata={"help": "continue from <out>/checkpoints/last.pt"})
    address: str = field(default="", metadata={"help": "train the members as parallel Ray tasks: host:port, auto or local (empty: here, one after another)"})
    threads: int = field(default=2, metadata={"help": "torch CPU threads; fixed because the thread count changes the rater's floats (0 = all cores: faster on big machines, numbers then depend on the core count)"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


@dataclass
class MelCache:
    """Every clip's spectrogram, concatenated along time: ``frames[offsets[i] : offsets[i] + lengths[i]]``.

    (Named for the log-mel it first held; it holds the log-frequency spectrogram of the tonal arch too.)
    """

    frames: np.ndarray  # (total_frames, n_features) float16
    offsets: np.ndarray
    lengths: np.ndarray

    def clip(self, i: int) -> np.ndarray:
        return self.frames[self.offsets[i] : self.offsets[i] + self.lengths[i]]


def mel_cache(clips: Clips, directory: Path, mel: torch.nn.Module, progress: bool = True) -> MelCache:
    """Load or compute (atomically) ``<directory>/mels-<hash>.npy`` for every clip with the front end ``mel``.

    ``mel`` is a :class:`rater.mel.LogMel` or :class:`rater.logfreq.LogFreq`; the file name hashes the data
    and the front end's config, so each front end has its own cache.
    """
    key = hashlib.sha256(f"{clips.data_hash}:{mel.config.digest}".encode()).hexdigest()[:16]
    path = directory / f"mels-{key}.npy"
    width = mel.config.n_features
    lengths = mel.config.frames(clips.meta["length"].to_numpy().astype(np.int64))
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    if path.is_file():
        frames = np.load(path, mmap_mode="r")
        if frames.shape == (int(lengths.sum()), width):
            return MelCache(frames, offsets, lengths)
    if progress:
        print(f"Computing {type(mel).__name__} spectrograms of {len(clips)} clips once -> {path}")
    frames = np.empty((int(lengths.sum()), width), dtype=np.float16)
    order = np.argsort(clips.meta["length"].to_numpy(), kind="stable")
    with torch.no_grad():
        for start in progress_bar(range(0, len(order), 16), type(mel).__name__, disable=not progress):
            rows = order[start : start + 16]
            waves = clips.waveforms(rows)
            batch = np.zeros((len(waves), max(w.size for w in waves)), dtype=np.float32)
            for j, w in enumerate(waves):
                batch[j, : w.size] = w
            logmel = mel(torch.from_numpy(batch)).transpose(1, 2).numpy()
            for j, i in enumerate(rows):
                frames[offsets[i] : offsets[i] + lengths[i]] = logmel[j, : lengths[i]]
    with atomic_path(path) as tmp:
        np.save(tmp, frames)
    return MelCache(frames, offsets, lengths)


def pad_batch(arrays: list[np.ndarray], n_mels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(frames, n_features) arrays -> zero-padded spectrograms (B, n_features, T) and lengths (B,)."""
    lengths = torch.tensor([a.shape[0] for a in arrays])
    batch = np.zeros((len(arrays), int(lengths.max()), n_mels), dtype=np.float32)
    for j, a in enumerate(arrays):
        batch[j, : a.shape[0]] = a
    return torch.from_numpy(batch).transpose(1, 2), lengths


def random_crops(cache: MelCache, rows: np.ndarray, n_frames: int, rng: np.random.Generator, starts: list | None = None) -> list[np.ndarray]:
    """A random ``n_frames`` window of each clip (the whole clip when shorter); appends each start frame to ``starts``."""
    crops = []
    for i in rows:
        clip = cache.clip(i)
        start = int(rng.integers(0, max(1, clip.shape[0] - n_frames + 1)))
        crops.append(clip[start : start + n_frames])
        if starts is not None:
            starts.append(start)
    return crops


def predict(model: torch.nn.Module, cache: MelCache, rows: np.ndarray, device: torch.device, batch_size: int = 64) -> np.ndarray:
    """Normalised predictions for whole clips (masked, batched by length)."""
    model.eval()
    out = np.zeros(len(rows), dtype=np.float64)
    order = np.argsort(cache.lengths[rows], kind="stable")
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            pick = order[start : start + batch_size]
            logmel, lengths = pad_batch([cache.clip(i) for i in rows[pick]], cache.frames.shape[1])
            out[pick] = model(logmel.to(device), lengths.to(device)).cpu().numpy()
    return out


def metrics(pred: np.ndarray, target: np.ndarray) -> dict:
    """MSE, Pearson, Spearman and pairwise ranking accuracy (pairs with different targets; prediction ties count 1/2)."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    constant = np.ptp(pred) == 0 or np.ptp(target) == 0
    sign_t = np.sign(target[:, None] - target[None])
    sign_p = np.sign(pred[:, None] - pred[None])
    pairs = sign_t != 0
    return {
        "mse": float(np.mean((pred - target) ** 2)),
        "pearson": 0.0 if constant else float(np.corrcoef(pred, target)[0, 1]),
        "spearman": 0.0 if constant else float(spearmanr(pred, target).statistic),
        "pairwise_acc": float(np.mean((sign_p == sign_t) + 0.5 * (sign_p == 0), where=pairs)) if pairs.any() else float("nan"),
    }


def ridge_fit(feats: np.ndarray, train: np.ndarray, val: np.ndarray, test: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Closed-form ridge on per-clip features (N, D) (lambda picked on val MSE); returns test predictions."""
    mu, sd = feats[train].mean(0), feats[train].std(0) + 1e-8
    x = np.concatenate([(feats - mu) / sd, np.ones((len(feats), 1))], axis=1)
    best = None
    for lam in RIDGE_LAMBDAS:
        penalty = lam * np.eye(x.shape[1])
        penalty[-1, -1] = 0.0
        w = np.linalg.solve(x[train].T @ x[train] + penalty, x[train].T @ y[train])
        val_mse = float(np.mean((x[val] @ w - y[val]) ** 2))
        if best is None or val_mse < best[0]:
            best = (val_mse, w)
    return x[test] @ best[1]


def ridge_baseline(cache: MelCache, train: np.ndarray, val: np.ndarray, test: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ridge on time-averaged log-mel (lambda picked on val); returns test predictions in ``y`` units."""
    feats = np.stack([cache.clip(i).astype(np.float64).mean(axis=0) for i in range(len(cache.lengths))])
    return ridge_fit(feats, train, val, test, y)


def listener_features(clips: Clips, directory: Path, progress: bool = True) -> np.ndarray:
    """The simulated listeners' own perceptual features of every clip plus their squares, cached beside the data.

    Only for a labelled baseline row: a model that uses these reads the listeners' minds.
    """
    from rater.data import listeners  # noqa: PLC0415

    population = listeners.ListenerPopulation(sample_rate=clips.sample_rate)
    code = hashlib.sha256(Path(listeners.__file__).read_bytes()).hexdigest()
    key = hashlib.sha256(f"{clips.data_hash}:{code}".encode()).hexdigest()[:16]
    path = directory / f"listener-features-{key}.npy"
    if path.is_file():
        return np.load(path)
    feats = np.concatenate(
        [population.features(clips.waveforms(range(s, min(s + 64, len(clips))))) for s in
         progress_bar(range(0, len(clips), 64), "listener features", disable=not progress)]
    )  # fmt: skip
    feats = np.concatenate([feats, feats**2], axis=1)
    with atomic_path(path) as tmp:
        np.save(tmp, feats)
    return feats


def split_members(meta, n_reward: int, n_heldout: int, heldout_fraction: float, bootstrap: bool, seed: int):
    """Training rows of every member: reward members first, then held-out members, and the two pools.

    The training pieces are split once into a held-out fold (``heldout_fraction`` of them, none if
    ``n_heldout`` is 0) and the reward pool. Reward member k trains on a bootstrap sample (by piece, seeded
    by ``[seed, 11, k]``) of the pool, or the whole pool; held-out members train on the whole held-out fold.
    Returns (rows per member, reward pool rows, held-out fold rows).
    """
    source = meta["source"].to_numpy().astype(str)
    train = np.flatnonzero(meta["split"].to_numpy() == "train")
    pieces = np.array(sorted(set(source[train])))
    n_out = int(round(heldout_fraction * len(pieces))) if n_heldout > 0 else 0
    if n_heldout > 0 and not 1 <= n_out < len(pieces):
        raise ValueError(
            f"{len(pieces)} training pieces with --heldout-fraction {heldout_fraction} leave no pieces for the "
            "held-out fold or none for the reward members; change --heldout-fraction or --n-heldout."
        )
    held = set(np.random.default_rng([seed, 7]).permutation(pieces)[:n_out])
    in_held = np.array([s in held for s in source[train]], dtype=bool)
    pool, fold = train[~in_held], train[in_held]
    members = [
        bootstrap_rows(pool, source, np.random.default_rng([seed, 11, k])) if bootstrap else pool for k in range(n_reward)
    ] + [fold] * n_heldout
    return members, pool, fold


def load_clips(data: str, progress: bool) -> Clips:
    """The dataset at ``data``; builds the default one there first when it is missing."""
    if (Path(data) / "info.json").is_file():
        return Clips.load(data)
    print(f"No dataset at {data}: building the default dataset there first (python -m rater.data build).")
    from rater.data.build import load_or_build  # noqa: PLC0415 - rendering stack only needed for a build

    return load_or_build(data)


def check_args(args: Args):
    """Validate the flags; returns the model config they describe (``RaterConfig`` or ``TonalConfig``)."""
    if args.arch not in ARCHS:
        raise ValueError(f"--arch must be one of {list(ARCHS)}, got {args.arch!r}.")
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0 (0 = all cores), got {args.threads}.")
    if args.n_reward < 1 or args.n_heldout < 0:
        raise ValueError(f"--n-reward must be >= 1 and --n-heldout >= 0, got {args.n_reward} and {args.n_heldout}.")
    if args.combine not in RULES:
        raise ValueError(f"--combine must be one of {list(RULES)}, got {args.combine!r}.")
    if not 0 < args.heldout_fraction < 1:
        raise ValueError(f"--heldout-fraction must be in (0, 1), got {args.heldout_fraction}.")
    if args.epochs < 1 or args.batch_size < 1 or args.patience < 1:
        raise ValueError("--epochs, --batch-size and --patience must be >= 1.")
    if args.crop_seconds <= 0 or args.lr <= 0:
        raise ValueError("--crop-seconds and --lr must be positive.")
    if args.aug_gain_db < 0 or args.aug_semitones < 0 or not 0 <= args.aug_stretch < 1:
        raise ValueError("--aug-gain-db and --aug-semitones must be >= 0 and --aug-stretch in [0, 1).")
    if args.aux_weight < 0 or (args.aux_weight > 0 and (args.arch != "tonal" or (args.augment and args.aug_stretch > 0))):
        raise ValueError("--aux-weight must be >= 0 and needs --arch tonal without --aug-stretch (stretch would move the notes).")
    widths = {}
    for name in ("hidden", "pooled"):
        text = getattr(args, name)
        try:
            widths[name] = tuple(int(h) for h in text.split(",") if h.strip())
        except ValueError as error:
            raise ValueError(f"--{name} must be comma-separated integers like 64 or 128,64, got {text!r}.") from error
    if args.arch == "seed":
        return RaterConfig(channels=args.channels, conv_layers=args.conv_layers, dropout=args.dropout, **widths)
    if len(widths["hidden"]) != 1:
        raise ValueError(f"--hidden for --arch tonal is one width (the head's), got {args.hidden!r}.")
    return TonalConfig(
        n_bins=12 * args.octaves * args.bins_per_semitone, bins_per_semitone=args.bins_per_semitone,
        front_channels=args.front_channels, n_keys=args.n_keys, temporal_channels=args.temporal_channels,
        temporal_layers=args.temporal_layers, hidden=widths["hidden"][0], dropout=args.dropout, summary=args.summary,
        correlate=args.correlate,
    )  # fmt: skip


def frontend_for(args: Args, arch: str, sample_rate: int) -> torch.nn.Module:
    """The front end (``LogFreq`` for tonal, ``LogMel`` for seed) the flags describe, with a clear error on bad ones."""
    try:
        if arch == "tonal":
            config = LogFreqConfig(sample_rate=sample_rate, n_fft=args.n_fft or 4096, low_pitch=args.low_pitch,
                                   octaves=args.octaves, bins_per_semitone=args.bins_per_semitone)  # fmt: skip
            return LogFreq(config)
        return LogMel(MelConfig(sample_rate=sample_rate, n_fft=args.n_fft or 2048, fmin=args.fmin, fmax=args.fmax))
    except ValueError as error:
        raise ValueError(f"--n-fft/--fmin/--fmax/--low-pitch/--octaves/--bins-per-semitone: {error}") from error


def new_model(arch: str, config) -> torch.nn.Module:
    return TonalRater(config) if arch == "tonal" else Rater(config)


def train_member(k: int, arch: str, config, rows: np.ndarray, cache: MelCache, frontend_config, z: np.ndarray,
                 val: np.ndarray, args: Args, device: torch.device, writer, tag: str, current: dict | None = None,
                 on_epoch=None, notes: list | None = None) -> dict:  # fmt: skip
    """Train one member on ``rows`` with early stopping on the val loss; returns its record (best state etc.).

    ``current`` resumes an interrupted member; ``on_epoch(current)`` is called after each unfinished epoch.
    ``notes`` (per clip, for a tonal member with ``args.aux_weight > 0``) adds the auxiliary piano-roll loss.
    """
    aux = notes is not None and arch == "tonal" and args.aux_weight > 0
    torch.manual_seed(args.seed * 1000 + k)
    model = new_model(arch, config)
    sample = rows if len(rows) <= 400 else np.random.default_rng([args.seed, 3, k]).choice(rows, 400, replace=False)
    frames = np.concatenate([cache.clip(i) for i in sample]).astype(np.float32)
    model.set_input_stats(torch.from_numpy(frames.mean(0)), torch.from_numpy(frames.std(0)))
    del frames
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    rng = np.random.default_rng([args.seed, k])
    generator = torch.Generator().manual_seed(args.seed * 1000 + k)
    val_before = float(np.mean((predict(model, cache, val, device) - z[val]) ** 2))
    run = {"epoch": 0, "best_val": float("inf"), "best_state": None, "bad_epochs": 0, "val_before": val_before}
    if current is not None:
        model.load_state_dict(current["model"])
        optimizer.load_state_dict(current["optimizer"])
        rng.bit_generator.state = current["rng"]
        generator.set_state(current["generator"])
        run = current["run"]
    crop_frames = max(1, int(round(args.crop_seconds * frontend_config.sample_rate / frontend_config.hop)))
    width = frontend_config.n_features
    bar = progress_bar(range(run["epoch"], args.epochs), tag, disable=not args.progress, initial=run["epoch"], total=args.epochs)
    for epoch in bar:
        model.train()
        order = rng.permutation(rows)
        losses = []
        for start in range(0, len(order), args.batch_size):
            pick = order[start : start + args.batch_size]
            starts: list[int] = []
            spec, lengths = pad_batch(random_crops(cache, pick, crop_frames, rng, starts), width)
            spec, lengths = spec.to(device), lengths.to(device)
            steps = torch.zeros(len(pick), dtype=torch.long)
            if args.augment and arch == "tonal":
                spec, lengths, steps = augment_logfreq(spec, lengths, generator, args.aug_gain_db, args.aug_semitones,
                                                       args.aug_stretch, frontend_config, return_steps=True)  # fmt: skip
            elif args.augment:
                ranges = AugmentConfig(args.aug_gain_db, float(args.aug_semitones), args.aug_stretch)
                spec, lengths = augment(spec, lengths, generator, ranges, frontend_config)
            target = torch.as_tensor(z[pick], dtype=torch.float32, device=device)
            if aux:
                score, logits = model.forward_with_aux(spec, lengths)
                loss = torch.mean((score - target) ** 2) + args.aux_weight * aux_loss(
                    logits, [notes[i] for i in pick], np.array(starts), lengths, steps, frontend_config)
            else:
                loss = torch.mean((model(spec, lengths) - target) ** 2)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"Member {k} loss became {loss.item()} at epoch {epoch}; lower --lr (now {args.lr}) or check "
                    f"the data in {args.data} for broken clips."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        val_pred = predict(model, cache, val, device)
        val_loss = float(np.mean((val_pred - z[val]) ** 2))
        val_spearman = metrics(val_pred, z[val])["spearman"]
        for name, value in (("train_loss", np.mean(losses)), ("val_loss", val_loss), ("val_spearman", val_spearman)):
            writer.add_scalar(f"{tag}/{name}", value, epoch)
        if val_loss < run["best_val"]:
            run.update(best_val=val_loss, best_spearman=val_spearman, bad_epochs=0,
                       best_state={n: t.detach().cpu().clone() for n, t in model.state_dict().items()})  # fmt: skip
        else:
            run["bad_epochs"] += 1
        run["epoch"] = epoch + 1
        bar.set_postfix(train=f"{np.mean(losses):.3f}", val=f"{val_loss:.3f}", rho=f"{val_spearman:.3f}")
        if run["bad_epochs"] >= args.patience or run["epoch"] >= args.epochs:
            break
        if on_epoch is not None:
            on_epoch({"member": k, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "rng": rng.bit_generator.state, "generator": generator.get_state(), "run": run})  # fmt: skip
    bar.close()
    return {"state": run["best_state"], "epochs": run["epoch"], "best_val": run["best_val"],
            "val_before": run["val_before"], "val_spearman": run.get("best_spearman")}  # fmt: skip


def aux_loss(logits: torch.Tensor, notes: list, starts: np.ndarray, lengths: torch.Tensor, steps: torch.Tensor,
             frontend_config: LogFreqConfig) -> torch.Tensor:  # fmt: skip
    """Binary cross-entropy of the auxiliary (B, 2, pitches, frames) logits against the clips' piano roll and onsets.

    Targets follow the crop (``starts``, in input frames) and the transposition ``steps`` (semitones) of each
    row; padded frames are left out.
    """
    from rater.notes import roll_targets  # noqa: PLC0415

    frame_seconds = 2 * frontend_config.hop / frontend_config.sample_rate  # the tonal front end's stride of 2
    targets = roll_targets(notes, starts / 2, logits.shape[-1], frame_seconds, frontend_config.low_pitch, logits.shape[2])
    targets = torch.from_numpy(targets).to(logits.device)
    targets = torch.stack([transpose(t, s.repeat(2), 0.0) for t, s in zip(targets, steps)]) if steps.any() else targets
    mask = frame_mask(TonalRater.output_frames(lengths), logits.shape[-1])[:, None, None].expand_as(logits)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (loss * mask).sum() / mask.sum()


class ScalarLog:
    """A stand-in for the TensorBoard writer inside a Ray task: records ``add_scalar`` calls for the driver to replay."""

    def __init__(self) -> None:
        self.scalars: list[tuple[str, float, int]] = []

    def add_scalar(self, tag: str, value, step: int) -> None:
        self.scalars.append((tag, float(value), int(step)))


def _member_task(job: dict, k: int, tag: str):
    """One member in a Ray task: the same ``train_member`` call, seeds and thread count as a local run."""
    import ray  # noqa: PLC0415

    args = job["args"]
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    log = ScalarLog()
    record = train_member(k, args.arch, job["config"], job["rows"][k], job["cache"], job["frontend_config"], job["z"],
                          job["val"], args, torch.device(job["device"]), log, tag, None, None, job["notes"])  # fmt: skip
    return ray.get_runtime_context().get_node_id(), record, log.scalars


LAST_RAY_NODES: dict = {}  # tasks per Ray node of the last ``members_on_ray`` in this process (tests, benchmarks)


def members_on_ray(job: dict, members: list[int], tags: list[str], address: str) -> list[tuple[dict, list]]:
    """Train ``members`` as parallel Ray tasks (``--threads`` CPUs each) and return (record, scalars) in order."""
    from studio.cluster import connect, require_ray  # noqa: PLC0415

    ray = require_ray()
    connect(address)
    threads = job["args"].threads or 1
    task = ray.remote(num_cpus=threads, num_gpus=1 if job["device"].startswith("cuda") else 0, max_retries=2,
                      scheduling_strategy="SPREAD")(_member_task)  # fmt: skip
    job_ref = ray.put(job)
    results = ray.get([task.remote(job_ref, k, tag) for k, tag in zip(members, tags)])
    LAST_RAY_NODES.clear()
    for node, _, _ in results:
        LAST_RAY_NODES[node] = LAST_RAY_NODES.get(node, 0) + 1
    if job["args"].progress:
        print(f"Ray: {len(members)} member(s) trained on {len(LAST_RAY_NODES)} node(s).")
    return [(record, scalars) for _, record, scalars in results]


def train_args(args: Args) -> dict:
    """The flags recorded in the frozen checkpoint: all but where the work ran (``--address``)."""
    return {k: v for k, v in asdict(args).items() if k != "address"}


def load_member(arch: str, config, state: dict, device: torch.device) -> torch.nn.Module:
    model = new_model(arch, config)
    model.load_state_dict(state)
    return model.to(device).eval()


def main(argv: list[str] | None = None) -> dict:
    """Train, freeze and report; returns the report dict (also in ``<out>/report.json``)."""
    args = parse_args(Args, argv, prog="python -m rater.train", description=__doc__)
    config = check_args(args)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    device = resolve_device(args.device)
    out = Path(args.out)
    ckpt_dir = out / "checkpoints"
    started, cpu_started = time.perf_counter(), time.process_time()

    clips = load_clips(args.data, args.progress)
    frontend = frontend_for(args, args.arch, clips.sample_rate)
    cache = mel_cache(clips, Path(args.data), frontend, args.progress)
    meta = clips.meta
    p = meta["p"].to_numpy(np.float64)
    split = meta["split"].to_numpy()
    val, test = np.flatnonzero(split == "val"), np.flatnonzero(split == "test")
    if len(val) == 0 or len(test) == 0:
        raise ValueError(f"{args.data} needs clips in the val and test splits (found {len(val)} and {len(test)}).")
    member_rows, pool, fold = split_members(meta, args.n_reward, args.n_heldout, args.heldout_fraction, args.bootstrap, args.seed)
    train_all = np.concatenate([pool, fold])
    p_mean, p_std = float(p[train_all].mean()), float(p[train_all].std() + 1e-12)
    z = (p - p_mean) / p_std
    n_members = args.n_reward + args.n_heldout
    roles = ["reward"] * args.n_reward + ["select"] + ["report"] * (args.n_heldout - 1) if args.n_heldout else ["reward"] * args.n_reward

    state = {"members": [], "current": None}
    last = ckpt_dir / "last.pt"
    if args.resume:
        if not last.is_file():
            raise FileNotFoundError(f"--resume given but {last} does not exist; run without --resume to start fresh.")
        state = torch.load(last, map_location="cpu", weights_only=False)
        if state["data_hash"] != clips.data_hash:
            raise ValueError(f"{last} was trained on other data ({state['data_hash'][:12]}); start a fresh --out.")
        print(f"Resuming from {last}: {len(state['members'])} member(s) done.")
    elif (out / "tb").is_dir():
        shutil.rmtree(out / "tb")  # a fresh run replaces the folder's logs as it replaces its checkpoints
    writer = SummaryWriter(str(out / "tb"))

    def save_state() -> None:
        save_checkpoint({**state, "data_hash": clips.data_hash, "args": asdict(args)}, last)

    def on_epoch(current: dict) -> None:
        state["current"] = current
        save_state()

    notes = None
    if args.aux_weight > 0:
        from rater.notes import clip_notes  # noqa: PLC0415

        notes = clip_notes(clips, Path(args.data).parent / ".cache")
    def add_member(k: int, record: dict) -> None:
        state["members"].append({**record, "role": roles[k], "n_rows": int(len(member_rows[k])),
                                 "n_pieces": int(len(set(meta["source"].iloc[member_rows[k]])))})  # fmt: skip
        state["current"] = None
        save_state()

    todo = list(range(len(state["members"]), n_members))
    if args.address and todo:  # members as parallel Ray tasks, saved to last.pt once all have finished
        if state.get("current") is not None:
            print("--address: the half-trained member in last.pt restarts from epoch 0 (Ray tasks resume whole members).")
        job = {"args": args, "config": config, "rows": member_rows, "cache": cache, "frontend_config": frontend.config,
               "z": z, "val": val, "device": str(device), "notes": notes}  # fmt: skip
        for k, (record, scalars) in zip(todo, members_on_ray(job, todo, [f"{roles[k]}{k}" for k in todo], args.address)):
            for name, value, epoch in scalars:
                writer.add_scalar(name, value, epoch)
            add_member(k, record)
        todo = []
    for k in todo:
        current = state.get("current") if (state.get("current") or {}).get("member") == k else None
        tag = f"{roles[k]}{k}"
        record = train_member(k, args.arch, config, member_rows[k], cache, frontend.config, z, val, args, device,
                              writer, tag, current, on_epoch, notes)  # fmt: skip
        add_member(k, record)
    writer.flush()
    train_seconds = time.perf_counter() - started
    train_cpu_seconds = time.process_time() - cpu_started

    models = [load_member(args.arch, config, m["state"], device) for m in state["members"]]
    reward = [i for i, r in enumerate(roles) if r == "reward"]
    preds = {name: np.stack([predict(models[i], cache, rows, device) for i in range(n_members)]) for name, rows in
             (("val", val), ("test", test))}  # fmt: skip
    lam, lambda_scores = 0.0, {}
    if args.combine == "uwo" and len(reward) > 1:
        lam, lambda_scores = choose_lambda(preds["val"][reward], p[val], args.lambda_tolerance)
    combined = {name: combine(torch.from_numpy(v[reward]), args.combine, lam).numpy() for name, v in preds.items()}

    def to_p(values: np.ndarray) -> np.ndarray:
        return values * p_std + p_mean

    rows = {f"{args.arch}: one reward member": metrics(to_p(preds["test"][0]), p[test])}
    rows[f"{args.arch}: ensemble reward ({args.combine}, K={len(reward)}, lambda={lam:g})"] = metrics(to_p(combined["test"]), p[test])
    rows[f"{args.arch}: ensemble mean (K={len(reward)})"] = metrics(to_p(preds["test"][reward].mean(0)), p[test])
    for i, role in enumerate(roles):
        if role != "reward":
            rows[f"{args.arch}: held-out member {i} ({role})"] = metrics(to_p(preds["test"][i]), p[test])
    agreement = {
        f"held-out {i} ({roles[i]}) vs reward": float(spearmanr(preds["test"][i], combined["test"]).statistic)
        for i, role in enumerate(roles) if role != "reward"
    }  # fmt: skip
    mel_frontend = frontend if args.arch == "seed" else frontend_for(args, "seed", clips.sample_rate)
    mels = cache if args.arch == "seed" else mel_cache(clips, Path(args.data), mel_frontend, args.progress)
    baseline_seconds, seed_val = {}, None
    if args.baselines and args.arch != "seed":
        tick = time.perf_counter()
        seed_args = Args(**{**asdict(args), "n_fft": 0, "hidden": "64", "augment": False})
        seed_config = RaterConfig(channels=args.channels, conv_layers=args.conv_layers)
        seed_rows = member_rows[0]
        record = train_member(0, "seed", seed_config, seed_rows, mels, mel_frontend.config, z, val, seed_args, device, writer, "seed-arch")
        seed_model = load_member("seed", seed_config, record["state"], device)
        rows["seed arch: one network (same rows as reward member 0)"] = metrics(to_p(predict(seed_model, mels, test, device)), p[test])
        seed_val = metrics(predict(seed_model, mels, val, device), z[val])
        baseline_seconds["seed_network"] = round(time.perf_counter() - tick, 1)
    rows["baseline: train mean"] = metrics(np.full(len(test), p_mean), p[test])
    rows["baseline: ridge on mean log-mel"] = metrics(ridge_baseline(mels, train_all, val, test, p), p[test])
    if args.baselines:
        tick = time.perf_counter()
        feats = listener_features(clips, Path(args.data), args.progress)
        rows["baseline: ridge on the listeners' own features (uses the simulated listeners' features)"] = metrics(
            ridge_fit(feats, train_all, val, test, p), p[test]
        )
        baseline_seconds["listener_features"] = round(time.perf_counter() - tick, 1)
    gold = meta["gold"].to_numpy(np.float64)[test]
    ceiling = metrics(gold, p[test]) if np.all(np.isfinite(gold)) else None
    if ceiling is not None:
        rows["noise ceiling: gold vs p"] = ceiling
    reward_row = next(name for name in rows if "ensemble reward" in name)
    val_rows = {
        "one reward member": metrics(preds["val"][0], z[val]),
        "ensemble reward": metrics(combined["val"], z[val]),
        **{f"member {i} ({roles[i]})": metrics(preds["val"][i], z[val]) for i in range(n_members)},
        **({"seed arch: one network (same rows as reward member 0)": seed_val} if seed_val else {}),
    }
    report = {
        "arch": args.arch,
        "test": rows,
        "val": val_rows,
        "ensemble": {"rule": args.combine, "lambda": lam, "val_spearman_by_lambda": lambda_scores, "roles": roles,
                     "heldout_agreement_spearman_test": agreement},  # fmt: skip
        "n_clips": {"train": int(len(train_all)), "reward_pool": int(len(pool)), "heldout_fold": int(len(fold)),
                    "val": int(len(val)), "test": int(len(test))},  # fmt: skip
        "members": [{k: m[k] for k in ("role", "n_rows", "n_pieces", "epochs", "val_before", "best_val", "val_spearman")}
                    for m in state["members"]],  # fmt: skip
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu_seconds, 1),  # all threads; on a busy machine closer to its quiet cost
        "baseline_seconds": baseline_seconds,
        "spearman_vs_ceiling": rows[reward_row]["spearman"] / ceiling["spearman"] if ceiling else None,
        "device": str(device),
        "threads": torch.get_num_threads(),  # with the device, what the floats depend on (see README, Reproducibility)
        "data_hash": clips.data_hash,
    }
    writer.close()
    frozen = build_checkpoint(
        [m["state"] for m in state["members"]], config, frontend.config, p_mean, p_std, arch=args.arch, roles=roles,
        rule=args.combine, lam=lam, data_hash=clips.data_hash, train_args=train_args(args), test_metrics=rows,
    )  # fmt: skip
    save_checkpoint(frozen, ckpt_dir / "rater.pt")
    write_json(out / "report.json", report)
    print(format_table(rows))
    print(f"trained in {train_seconds:.0f} s on {device}; checkpoint {ckpt_dir / 'rater.pt'}, report {out / 'report.json'}")
    return report


def format_table(rows: dict[str, dict]) -> str:
    """The test metrics as an aligned text table."""
    width = max(len(name) for name in rows)
    lines = [f"{'test split':<{width}}  {'MSE':>10} {'Pearson':>8} {'Spearman':>8} {'pair acc':>8}"]
    for name, m in rows.items():
        lines.append(f"{name:<{width}}  {m['mse']:>10.4g} {m['pearson']:>8.3f} {m['spearman']:>8.3f} {m['pairwise_acc']:>8.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
