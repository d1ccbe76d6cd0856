"""Train the rater: K small CNNs on disjoint folds of the training pieces, frozen into one checkpoint.

Run ``python -m rater.train --help`` (or ``python train.py --agent rater``). Log-mels of every clip are
computed once and cached beside the dataset (keyed by its data hash and the mel config), so epochs only
crop, augment (in the mel domain, see ``rater/augment.py``) and run the network. Member 0 becomes the reward
(proxy) rater; members 1..K-1 see none of its training pieces and are never used as reward, so they judge
generated audio independently and expose over-optimisation of the proxy. The test-split report compares
every member with two baselines (the train mean; ridge regression on time-averaged log-mel) and the noise
ceiling (how well the listeners' gold score itself predicts the observed ``p``).
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
from tqdm import tqdm

from studio.files import atomic_path, write_json
from rater.augment import AugmentConfig, augment
from studio.flags import parse_args
from rater.data.clips import Clips
from rater.mel import LogMel, MelConfig
from rater.model import Rater, RaterConfig
from rater.scorer import build_checkpoint, save_checkpoint
from studio.device import resolve_device

RIDGE_LAMBDAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass
class Args:
    data: str = field(default="data/default", metadata={"help": "Clips dataset folder (built with the default recipe if missing)"})
    out: str = field(default="runs/rater", metadata={"help": "run folder: checkpoints/, tb/, report.json (a fresh run replaces them)"})
    seed: int = field(default=0, metadata={"help": "seed for folds, initialisation, crops and augmentation"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when available), cpu or cuda[:N]"})
    epochs: int = field(default=40, metadata={"help": "maximum epochs per rater"})
    batch_size: int = field(default=32, metadata={"help": "clips per training batch"})
    lr: float = field(default=3e-3, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay"})
    n_raters: int = field(default=3, metadata={"help": "raters on disjoint folds of the training pieces (member 0 = reward)"})
    patience: int = field(default=8, metadata={"help": "stop a rater after this many epochs without a better val loss"})
    crop_seconds: float = field(default=4.0, metadata={"help": "length of the random training crops"})
    n_fft: int = field(default=2048, metadata={"help": "log-mel STFT size in samples (pitch resolution)"})
    fmin: float = field(default=0.0, metadata={"help": "lowest mel band edge in Hz"})
    fmax: float = field(default=8000.0, metadata={"help": "highest mel band edge in Hz (at most sample_rate / 2)"})
    channels: int = field(default=128, metadata={"help": "Conv1D channels"})
    conv_layers: int = field(default=1, metadata={"help": "stacked width-5 convolutions (dilation 1, 2, 4, ...)"})
    hidden: str = field(default="64", metadata={"help": "comma-separated per-frame Dense widths"})
    pooled: str = field(default="", metadata={"help": "comma-separated Dense widths after the time average ('' = none)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout after each Dense layer"})
    augment: bool = field(default=False, metadata={"help": "mel-domain gain / pitch / stretch augmentation (off: listeners judge loudness, register and tempo, so it hurt val Spearman)"})
    resume: bool = field(default=False, metadata={"help": "continue from <out>/checkpoints/last.pt"})
    address: str = field(default="", metadata={"help": "train the members as parallel Ray tasks: host:port, auto or local (empty: here, one after another)"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = all cores)"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


@dataclass
class MelCache:
    """Every clip's log-mel, concatenated along time: ``frames[offsets[i] : offsets[i] + lengths[i]]``."""

    frames: np.ndarray  # (total_frames, n_mels) float16
    offsets: np.ndarray
    lengths: np.ndarray

    def clip(self, i: int) -> np.ndarray:
        return self.frames[self.offsets[i] : self.offsets[i] + self.lengths[i]]


def mel_cache(clips: Clips, directory: Path, mel: LogMel, progress: bool = True) -> MelCache:
    """Load or compute (atomically) ``<directory>/mels-<hash>.npy`` for every clip."""
    key = hashlib.sha256(f"{clips.data_hash}:{mel.config.digest}".encode()).hexdigest()[:16]
    path = directory / f"mels-{key}.npy"
    lengths = mel.config.frames(clips.meta["length"].to_numpy().astype(np.int64))
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    if path.is_file():
        frames = np.load(path, mmap_mode="r")
        if frames.shape == (int(lengths.sum()), mel.config.n_mels):
            return MelCache(frames, offsets, lengths)
    if progress:
        print(f"Computing log-mels of {len(clips)} clips once -> {path}")
    frames = np.empty((int(lengths.sum()), mel.config.n_mels), dtype=np.float16)
    order = np.argsort(clips.meta["length"].to_numpy(), kind="stable")
    with torch.no_grad():
        for start in tqdm(range(0, len(order), 16), "log-mel", disable=not progress):
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
    """(frames, n_mels) arrays -> zero-padded log-mel (B, n_mels, T) and lengths (B,)."""
    lengths = torch.tensor([a.shape[0] for a in arrays])
    batch = np.zeros((len(arrays), int(lengths.max()), n_mels), dtype=np.float32)
    for j, a in enumerate(arrays):
        batch[j, : a.shape[0]] = a
    return torch.from_numpy(batch).transpose(1, 2), lengths


def random_crops(cache: MelCache, rows: np.ndarray, n_frames: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A random ``n_frames`` window of each clip (the whole clip when shorter)."""
    crops = []
    for i in rows:
        clip = cache.clip(i)
        start = int(rng.integers(0, max(1, clip.shape[0] - n_frames + 1)))
        crops.append(clip[start : start + n_frames])
    return crops


def predict(model: Rater, cache: MelCache, rows: np.ndarray, device: torch.device, batch_size: int = 64) -> np.ndarray:
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


def ridge_baseline(cache: MelCache, train: np.ndarray, val: np.ndarray, test: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Closed-form ridge on time-averaged log-mel (lambda picked on val); returns test predictions in p units."""
    feats = np.stack([cache.clip(i).astype(np.float64).mean(axis=0) for i in range(len(cache.lengths))])
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


def fold_rows(meta, n_folds: int, seed: int) -> list[np.ndarray]:
    """Training rows split into ``n_folds`` groups with disjoint source pieces."""
    train = np.flatnonzero(meta["split"].to_numpy() == "train")
    sources = np.array(sorted(set(meta["source"].iloc[train])))
    if len(sources) < n_folds:
        raise ValueError(f"{len(sources)} training pieces cannot make {n_folds} disjoint folds; lower --n-raters.")
    fold_of = dict(zip(np.random.default_rng([seed, 7]).permutation(sources), np.arange(len(sources)) % n_folds))
    folds = np.array([fold_of[s] for s in meta["source"].iloc[train]])
    return [train[folds == k] for k in range(n_folds)]


@dataclass
class MemberJob:
    """Everything one ensemble member's training reads (picklable: a Ray task receives it whole)."""

    args: Args
    config: RaterConfig
    mel_config: MelConfig
    cache: MelCache
    folds: list[np.ndarray]
    val: np.ndarray
    z: np.ndarray
    device: str
    crop_frames: int
    aug: AugmentConfig | None


def train_member(job: MemberJob, k: int, current: dict | None = None, on_epoch=None) -> tuple[dict, list]:
    """Train member ``k`` on fold ``k`` until patience or ``--epochs``; returns the member and its TB scalars.

    Depends only on ``(seed, k)`` and the job, never on other members, so members can train in any order or in
    parallel. ``current``: a half-trained state saved by ``on_epoch`` (resume). ``on_epoch(current, scalars,
    member)`` is called after every epoch with the resumable state (None once finished), that epoch's
    ``(tag, value, epoch)`` scalars, and the finished member (or None).
    """
    args, cache, val, z, device = job.args, job.cache, job.val, job.z, torch.device(job.device)
    fold = job.folds[k]
    torch.manual_seed(args.seed * 1000 + k)
    model = Rater(job.config)
    fold_frames = np.concatenate([cache.clip(i) for i in fold]).astype(np.float32)
    model.set_input_stats(torch.from_numpy(fold_frames.mean(0)), torch.from_numpy(fold_frames.std(0)))
    del fold_frames
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
    all_scalars: list = []
    member = None
    bar = tqdm(range(run["epoch"], args.epochs), f"rater {k}", disable=not args.progress, initial=run["epoch"], total=args.epochs)
    for epoch in bar:
        model.train()
        rows = rng.permutation(fold)
        losses = []
        for start in range(0, len(rows), args.batch_size):
            pick = rows[start : start + args.batch_size]
            logmel, lengths = pad_batch(random_crops(cache, pick, job.crop_frames, rng), job.mel_config.n_mels)
            logmel, lengths = logmel.to(device), lengths.to(device)
            if job.aug is not None:
                logmel, lengths = augment(logmel, lengths, generator, job.aug, job.mel_config)
            target = torch.as_tensor(z[pick], dtype=torch.float32, device=device)
            loss = torch.mean((model(logmel, lengths) - target) ** 2)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"Rater {k} loss became {loss.item()} at epoch {epoch}; lower --lr (now {args.lr}) or check "
                    f"the data in {args.data} for broken clips."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        val_pred = predict(model, cache, val, device)
        val_loss = float(np.mean((val_pred - z[val]) ** 2))
        val_spearman = metrics(val_pred, z[val])["spearman"]
        scalars = [(f"rater{k}/{name}", float(value), epoch)
                   for name, value in (("train_loss", np.mean(losses)), ("val_loss", val_loss), ("val_spearman", val_spearman))]
        all_scalars += scalars
        if val_loss < run["best_val"]:
            run.update(best_val=val_loss, bad_epochs=0, best_state={n: t.detach().cpu().clone() for n, t in model.state_dict().items()})
        else:
            run["bad_epochs"] += 1
        run["epoch"] = epoch + 1
        bar.set_postfix(train=f"{np.mean(losses):.3f}", val=f"{val_loss:.3f}", rho=f"{val_spearman:.3f}")
        stop = run["bad_epochs"] >= args.patience or run["epoch"] >= args.epochs
        state = None
        if stop:
            member = {"state": run["best_state"], "epochs": run["epoch"], "best_val": run["best_val"], "val_before": run["val_before"]}
        else:
            state = {
                "member": k, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "rng": rng.bit_generator.state, "generator": generator.get_state(), "run": run,
            }  # fmt: skip
        if on_epoch is not None:
            on_epoch(state, scalars, member)
        if stop:
            break
    bar.close()
    return member, all_scalars


def _member_task(job: MemberJob, k: int, threads: int):
    """One member in a Ray task: the same code and seeds as a local run, ``threads`` torch threads."""
    import ray  # noqa: PLC0415

    torch.set_num_threads(threads)
    return ray.get_runtime_context().get_node_id(), train_member(job, k)


LAST_RAY_NODES: dict = {}  # tasks per Ray node of the last ``members_on_ray`` in this process (tests, benchmarks)


def members_on_ray(job: MemberJob, members: list[int], address: str) -> list[tuple[dict, list]]:
    """Train ``members`` as parallel Ray tasks (one CPU each) and return them in order."""
    from studio.cluster import connect, require_ray  # noqa: PLC0415

    ray = require_ray()
    connect(address)
    threads = job.args.threads or 1
    task = ray.remote(num_cpus=threads, num_gpus=1 if job.device.startswith("cuda") else 0, max_retries=2,
                      scheduling_strategy="SPREAD")(_member_task)
    job_ref = ray.put(job)
    refs = [task.remote(job_ref, k, threads) for k in members]
    results = ray.get(refs)
    LAST_RAY_NODES.clear()
    for node, _ in results:
        LAST_RAY_NODES[node] = LAST_RAY_NODES.get(node, 0) + 1
    if job.args.progress:
        print(f"Ray: {len(members)} member(s) trained on {len(LAST_RAY_NODES)} node(s).")
    return [result for _, result in results]


def load_clips(data: str, progress: bool) -> Clips:
    """The dataset at ``data``; builds the default one there first when it is missing."""
    if (Path(data) / "info.json").is_file():
        return Clips.load(data)
    print(f"No dataset at {data}: building the default dataset there first (python -m rater.data build).")
    from rater.data.build import load_or_build  # noqa: PLC0415 - rendering stack only needed for a build

    return load_or_build(data)


def train_args(args: Args) -> dict:
    """The flags recorded in the frozen checkpoint: all but where the work ran (``--address``)."""
    return {k: v for k, v in asdict(args).items() if k != "address"}


def check_args(args: Args) -> RaterConfig:
    """Validate the flags; returns the model config they describe."""
    if args.n_raters < 1:
        raise ValueError(f"--n-raters must be >= 1, got {args.n_raters}.")
    if args.epochs < 1 or args.batch_size < 1 or args.patience < 1:
        raise ValueError("--epochs, --batch-size and --patience must be >= 1.")
    if args.crop_seconds <= 0 or args.lr <= 0:
        raise ValueError("--crop-seconds and --lr must be positive.")
    widths = {}
    for name in ("hidden", "pooled"):
        text = getattr(args, name)
        try:
            widths[name] = tuple(int(h) for h in text.split(",") if h.strip())
        except ValueError as error:
            raise ValueError(f"--{name} must be comma-separated integers like 64 or 128,64, got {text!r}.") from error
    return RaterConfig(channels=args.channels, conv_layers=args.conv_layers, dropout=args.dropout, **widths)


def main(argv: list[str] | None = None) -> dict:
    """Train, freeze and report; returns the report dict (also in ``<out>/report.json``)."""
    args = parse_args(Args, argv, prog="python -m rater.train", description=__doc__)
    config = check_args(args)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    device = resolve_device(args.device)
    out = Path(args.out)
    ckpt_dir = out / "checkpoints"
    started = time.perf_counter()

    clips = load_clips(args.data, args.progress)
    try:
        mel_config = MelConfig(sample_rate=clips.sample_rate, n_fft=args.n_fft, fmin=args.fmin, fmax=args.fmax)
    except ValueError as error:
        raise ValueError(f"--n-fft/--fmin/--fmax: {error}") from error
    cache = mel_cache(clips, Path(args.data), LogMel(mel_config), args.progress)
    meta = clips.meta
    p = meta["p"].to_numpy(np.float64)
    split = meta["split"].to_numpy()
    val, test = np.flatnonzero(split == "val"), np.flatnonzero(split == "test")
    folds = fold_rows(meta, args.n_raters, args.seed)
    train_all = np.concatenate(folds)
    if len(val) == 0 or len(test) == 0:
        raise ValueError(f"{args.data} needs clips in the val and test splits (found {len(val)} and {len(test)}).")
    p_mean, p_std = float(p[train_all].mean()), float(p[train_all].std() + 1e-12)
    z = (p - p_mean) / p_std

    state = {"members": [], "current": None}
    last = ckpt_dir / "last.pt"
    if args.resume:
        if not last.is_file():
            raise FileNotFoundError(f"--resume given but {last} does not exist; run without --resume to start fresh.")
        state = torch.load(last, map_location="cpu", weights_only=False)
        if state["data_hash"] != clips.data_hash:
            raise ValueError(f"{last} was trained on other data ({state['data_hash'][:12]}); start a fresh --out.")
        print(f"Resuming from {last}: {len(state['members'])} rater(s) done.")
    elif (out / "tb").is_dir():
        shutil.rmtree(out / "tb")  # a fresh run replaces the folder's logs as it replaces its checkpoints
    writer = SummaryWriter(str(out / "tb"))
    crop_frames = max(1, int(round(args.crop_seconds * mel_config.sample_rate / mel_config.hop)))
    aug = AugmentConfig() if args.augment else None

    job = MemberJob(args=args, config=config, mel_config=mel_config, cache=cache, folds=folds, val=val, z=z,
                    device=str(device), crop_frames=crop_frames, aug=aug)
    todo = list(range(len(state["members"]), args.n_raters))
    if args.address:
        if state.get("current") is not None:
            print("--address: the half-trained member in last.pt restarts from epoch 0 (Ray tasks resume whole members).")
        state["current"] = None
        for member, scalars in members_on_ray(job, todo, args.address) if todo else []:
            for name, value, epoch in scalars:
                writer.add_scalar(name, value, epoch)
            state["members"].append(member)
            save_checkpoint({**state, "data_hash": clips.data_hash, "args": asdict(args)}, last)
    for k in [] if args.address else todo:  # here, one member after another, resumable after every epoch

        def on_epoch(current: dict | None, scalars: list, member: dict | None) -> None:
            for name, value, epoch in scalars:
                writer.add_scalar(name, value, epoch)
            if member is not None:
                state["members"].append(member)
            state["current"] = current
            save_checkpoint({**state, "data_hash": clips.data_hash, "args": asdict(args)}, last)

        current = state.get("current")
        train_member(job, k, current if current is not None and current["member"] == k else None, on_epoch)
    writer.flush()

    train_seconds = time.perf_counter() - started
    models = []
    for member in state["members"]:
        model = Rater(config)
        model.load_state_dict(member["state"])
        models.append(model.to(device))
    rows = {}
    for k, model in enumerate(models):
        rows[f"rater {k} ({'reward' if k == 0 else 'held-out'})"] = metrics(predict(model, cache, test, device) * p_std + p_mean, p[test])
    rows["baseline: train mean"] = metrics(np.full(len(test), p_mean), p[test])
    rows["baseline: ridge on mean log-mel"] = metrics(ridge_baseline(cache, train_all, val, test, p), p[test])
    gold = meta["gold"].to_numpy(np.float64)[test]
    ceiling = metrics(gold, p[test]) if np.all(np.isfinite(gold)) else None
    if ceiling is not None:
        rows["noise ceiling: gold vs p"] = ceiling
    report = {
        "test": rows,
        "n_clips": {"train": int(len(train_all)), "val": int(len(val)), "test": int(len(test))},
        "fold_sizes": [int(len(f)) for f in folds],
        "members": [{k: m[k] for k in ("epochs", "val_before", "best_val")} for m in state["members"]],
        "train_seconds": round(train_seconds, 1),
        "spearman_vs_ceiling": rows["rater 0 (reward)"]["spearman"] / ceiling["spearman"] if ceiling else None,
        "device": str(device),
        "data_hash": clips.data_hash,
    }
    for k in range(len(models)):
        writer.add_scalar(f"rater{k}/test_spearman", rows[f"rater {k} ({'reward' if k == 0 else 'held-out'})"]["spearman"], 0)
    writer.close()
    frozen = build_checkpoint(
        [m["state"] for m in state["members"]], config, mel_config, p_mean, p_std,
        data_hash=clips.data_hash, train_args=train_args(args), test_metrics=rows,
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
