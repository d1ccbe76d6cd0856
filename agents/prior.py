"""A note-level prior learned from real melodies: p(action | what PianoEnv shows), the policy's starting point.

The prior sees exactly the env's observation: the piano roll of the whole episode so far (``history`` = the
episode length) and the position ``t / n_steps``. Inside the network a fixed, parameter-free map
(``music_features``) turns that observation into what a melody model needs: the last ``recent`` roll rows, the
pitch and pitch-class histograms of every note so far (register and key), and the position in the bar. The
same map is the SB3 policy's features extractor (``agents/kl.py``), so the prior's weights copied into the
policy give the same action distribution exactly.

Training data: top lines (skylines) of the default dataset's corpus pieces plus more non-reserved music21 folk
collections (``PRIOR_SOURCES``; parses are cached in ``data/.cache``), never a piece of the dataset's test
split, in all 12 transpositions (a fresh random one per window and epoch). Test-split melodies give the
reported NLL and accuracy, and the reference statistics the prior's samples are compared with.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from studio import grid as env_grid
from studio.files import atomic_path
from studio.grid import HOLD, REST, skyline  # noqa: F401 - skyline (the top line) re-exported for callers
from studio.theory import Note, diversity, interval_histogram, interval_js, mean_theory_stats

# The collections the evaluation keeps for itself (ARCHITECTURE.md): never read by the prior.
RESERVED = ("airdsAirs", "miscFolk", "mozart", "haydn", "beethoven", "josquin", "trecento", "schumann_clara", "joplin")
# Extra melodies beyond the dataset's own pieces, files per collection (evenly spaced, as the dataset picks them).
# Sized so that a cold parse plus training fits the prior's share of `make demo` (see README, measured).
PRIOR_SOURCES = {"oneills1850": 8}


@dataclass(frozen=True)
class GridConfig:
    """The PianoEnv grid the prior is trained for; must match the env it scores."""

    n_steps: int = 32
    low_pitch: int = 48
    n_pitches: int = 36
    history: int = 32  # the whole episode (PianoEnv's default history is n_steps)
    steps_per_beat: int = 2  # eighth notes
    steps_per_bar: int = 8  # 4/4

    @property
    def n_actions(self) -> int:
        return self.n_pitches + 2

    @property
    def obs_dim(self) -> int:
        return self.history * self.n_pitches + 1


# --------------------------------------------------------------------------- melodies as token sequences
def melody_tokens(melody: Sequence[tuple[int, float, float]], steps_per_beat: int) -> np.ndarray | None:
    """A monophonic melody ``(midi_pitch, start_beat, end_beat)`` on the step grid: ``0`` rest, ``1`` hold,
    ``2 + midi_pitch`` note-on (raw MIDI pitch, not yet fitted to an env range). None when empty."""
    if not melody:
        return None
    end = int(round(max(m[2] for m in melody) * steps_per_beat))
    tokens = np.full(max(end, 1), REST, dtype=np.int64)
    for pitch, start, stop in melody:
        a, b = int(round(start * steps_per_beat)), int(round(stop * steps_per_beat))
        if b <= a or a >= len(tokens):
            continue
        tokens[a] = 2 + pitch
        tokens[a + 1 : b] = HOLD
    return tokens


def fit_tokens(tokens: np.ndarray, grid: GridConfig, transpose: int = 0) -> np.ndarray | None:
    """Raw-pitch tokens transposed by ``transpose`` semitones, then moved by whole octaves (the fewest) into the
    env's range, as env actions. None when the line spans more than the range."""
    notes = tokens >= 2
    if not notes.any():
        return None
    idx = tokens[notes] - 2 - grid.low_pitch + transpose
    lo, hi = int(idx.min()), int(idx.max())
    if hi - lo >= grid.n_pitches:
        return None
    octaves = [k for k in range(-10, 11) if lo + 12 * k >= 0 and hi + 12 * k < grid.n_pitches]
    if not octaves:
        return None
    k = min(octaves, key=abs)
    out = tokens.copy()
    out[notes] = idx + 12 * k + 2
    return out


def melody_to_actions(melody: Sequence[tuple[int, float, float]], grid: GridConfig) -> np.ndarray | None:
    """Quantise a monophonic melody ``(pitch, start_beat, end_beat)`` to env actions, moved by octaves into range.

    Returns None when the melody cannot fit the pitch range (see ``studio.grid.melody_to_actions``).
    """
    return env_grid.melody_to_actions(melody, grid.low_pitch, grid.n_pitches, grid.steps_per_beat)


def actions_to_notes(actions: Sequence[int], grid: GridConfig, step_seconds: float = 0.25) -> list[Note]:
    """Notes ``(pitch, start_s, end_s, 90)`` of PianoEnv ``Discrete`` actions (rest/hold/note-on)."""
    notes = env_grid.actions_to_notes(actions, grid.low_pitch, step_seconds)
    return [(int(p), float(s), float(e), int(v)) for p, s, e, v in notes]


def episode_windows(token_seqs: Sequence[np.ndarray], grid: GridConfig, stride: int | None = None) -> np.ndarray:
    """Episode-length windows ``(N, n_steps)`` of raw-pitch tokens, every ``stride`` steps (default half an
    episode), keeping windows with at least two note-ons."""
    stride = stride or grid.n_steps // 2
    out = []
    for seq in token_seqs:
        if len(seq) < grid.n_steps:
            seq = np.r_[seq, np.full(grid.n_steps - len(seq), REST)]
        for s in range(0, len(seq) - grid.n_steps + 1, stride):
            window = seq[s : s + grid.n_steps]
            if (window >= 2).sum() >= 2:
                out.append(window)
    return np.stack(out) if out else np.zeros((0, grid.n_steps), dtype=np.int64)


def fitted_windows(windows: np.ndarray, grid: GridConfig, transposes: np.ndarray | None = None) -> np.ndarray:
    """Windows as env actions (transposed by ``transposes[i]`` semitones, default 0); unfit windows dropped."""
    transposes = np.zeros(len(windows), dtype=int) if transposes is None else transposes
    fitted = [fit_tokens(w, grid, int(k)) for w, k in zip(windows, transposes)]
    fitted = [f for f in fitted if f is not None]
    return np.stack(fitted) if fitted else np.zeros((0, grid.n_steps), dtype=np.int64)


def melody_stats(action_seqs: Sequence[np.ndarray], grid: GridConfig) -> dict:
    """Diversity and theory statistics of episode-length melodies (env actions), plus their interval histogram:
    the reference for generated pieces."""
    melodies = [actions_to_notes(m[: grid.n_steps], grid) for m in action_seqs]
    return {"n": len(melodies), **diversity(melodies), **mean_theory_stats(melodies),
            "interval_histogram": interval_histogram(melodies).tolist()}


# --------------------------------------------------------------------------- observations, features, model
def _rolls(actions: torch.Tensor, grid: GridConfig, blank: int) -> torch.Tensor:
    """Piano rolls ``(B, blank + n_steps, n_pitches)`` of action rows, ``blank`` empty rows first (as PianoEnv)."""
    b, n = actions.shape
    if n != grid.n_steps:
        raise ValueError(f"actions must have {grid.n_steps} steps per row, got {n}.")
    roll = torch.zeros(b, blank + n, grid.n_pitches)
    sounding = torch.full((b,), -1, dtype=torch.long)
    rows = torch.arange(b)
    for t in range(n):
        a = actions[:, t]
        onset = a >= 2
        sounding = torch.where(onset, a - 2, torch.where(a == HOLD, sounding, torch.full_like(sounding, -1)))
        on = sounding >= 0
        roll[rows[on], blank + t, sounding[on]] = torch.where(onset[on], 1.0, 0.5)
    return roll


def batch_observations(actions: torch.Tensor, grid: GridConfig) -> torch.Tensor:
    """Every observation PianoEnv shows while playing each row of ``actions`` ``(B, n_steps)`` (int64), as
    ``(B, n_steps, obs_dim)`` float32: the same arrays as ``roll_observation`` (tested)."""
    roll = _rolls(actions, grid, grid.history)
    b, n = actions.shape
    obs = torch.empty(b, n, grid.obs_dim)
    for t in range(n):
        obs[:, t, :-1] = roll[:, t : t + grid.history].reshape(b, -1)
        obs[:, t, -1] = t / grid.n_steps
    return obs


def episode_features(actions: torch.Tensor, grid: GridConfig, recent: int) -> torch.Tensor:
    """``music_features`` of every observation while playing ``actions`` ``(B, n_steps)``, computed directly
    (no observation arrays): ``(B, n_steps, feature_dim)``, equal to ``music_features(batch_observations(...))``
    (tested). Needs ``history >= n_steps``, where every earlier note is visible."""
    if grid.history < grid.n_steps:
        return music_features(batch_observations(actions, grid).flatten(0, 1), grid, recent).unflatten(0, actions.shape)
    b, n = actions.shape
    roll = _rolls(actions, grid, recent)
    last = roll.unfold(1, recent, 1)[:, :n].permute(0, 1, 3, 2).reshape(b, n, recent * grid.n_pitches)
    onsets = (roll[:, recent:] > 0.75).float()
    counts = torch.cat([torch.zeros(b, 1, grid.n_pitches), onsets.cumsum(1)[:, :-1]], 1)  # note-ons before t
    pitch_hist = counts / counts.sum(2, keepdim=True).clamp(min=1.0)
    to_pc, bar_table = _feature_constants(grid)
    pc_hist = pitch_hist @ to_pc
    t = torch.arange(n)
    bar = bar_table[t % grid.steps_per_bar].expand(b, n, -1)
    pos = (t / grid.n_steps).float().view(1, n, 1).expand(b, n, 1)
    return torch.cat([last, pitch_hist, pc_hist, bar, pos], 2)


_CONSTANTS: dict = {}


def _feature_constants(grid: GridConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The pitch -> pitch-class matrix ``(n_pitches, 12)`` and the bar-position one-hot table, made once per grid."""
    if grid not in _CONSTANTS:
        pitches = torch.arange(grid.n_pitches)
        to_pc = torch.zeros(grid.n_pitches, 12)
        to_pc[pitches, (pitches + grid.low_pitch) % 12] = 1.0
        _CONSTANTS[grid] = (to_pc, torch.eye(grid.steps_per_bar))
    return _CONSTANTS[grid]


def music_features(obs: torch.Tensor, grid: GridConfig, recent: int) -> torch.Tensor:
    """Parameter-free features of PianoEnv observations ``(B, obs_dim)`` -> ``(B, feature_dim(grid, recent))``:
    the last ``recent`` roll rows (flattened, oldest first); the normalised pitch and pitch-class histograms of
    note-ons in the whole visible history; a one-hot position in the bar; and ``t / n_steps``."""
    obs = obs.float()
    b = obs.shape[0]
    roll = obs[:, :-1].reshape(b, grid.history, grid.n_pitches)
    onsets = (roll > 0.75).float().sum(1)  # (B, P) note-on counts
    pitch_hist = onsets / onsets.sum(1, keepdim=True).clamp(min=1.0)
    to_pc, bar_table = _feature_constants(grid)
    bar = bar_table[torch.round(obs[:, -1] * grid.n_steps).long() % grid.steps_per_bar]
    return torch.cat([roll[:, -recent:].reshape(b, -1), pitch_hist, pitch_hist @ to_pc, bar, obs[:, -1:]], 1)


def feature_dim(grid: GridConfig, recent: int) -> int:
    return recent * grid.n_pitches + grid.n_pitches + 12 + grid.steps_per_bar + 1


class NotePrior(nn.Module):
    """An MLP over ``music_features``: ``trunk`` (Linear-ReLU-Linear-ReLU) then ``head`` (logits over actions).
    ``log_prob(obs, action)`` is the RL Tuner reward term and the KL penalty's reference."""

    def __init__(self, grid: GridConfig = GridConfig(), hidden: int = 256, recent: int = 16):
        super().__init__()
        if not 1 <= recent <= grid.history:
            raise ValueError(f"recent must lie in 1..history={grid.history}, got {recent}.")
        self.grid, self.hidden, self.recent = grid, hidden, recent
        self.trunk = nn.Sequential(nn.Linear(feature_dim(grid, recent), hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, grid.n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(B, n_actions)`` of observations ``(B, obs_dim)``."""
        return self.from_features(music_features(obs, self.grid, self.recent))

    def from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(..., n_actions)`` of ``music_features`` ``(..., feature_dim)``."""
        return torch.log_softmax(self.head(self.trunk(features)), dim=-1)

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self(obs).gather(-1, actions.long().view(-1, 1)).squeeze(-1)


# --------------------------------------------------------------------------- training and evaluation
def evaluate_prior(model: NotePrior, windows: np.ndarray, batch: int = 256) -> dict[str, float]:
    """Mean NLL (nats per step) and next-action accuracy of ``model`` on env-action windows ``(N, n_steps)``."""
    grid, nll, correct, count = model.grid, 0.0, 0, 0
    with torch.no_grad():
        for chunk in torch.as_tensor(windows).split(batch):
            logp = model.from_features(episode_features(chunk, grid, model.recent)).reshape(-1, grid.n_actions)
            y = chunk.reshape(-1)
            nll -= float(logp.gather(1, y.view(-1, 1)).sum())
            correct += int((logp.argmax(1) == y).sum())
            count += len(y)
    return {"nll": nll / max(count, 1), "accuracy": correct / max(count, 1), "steps": count}


def train_prior(
    train_tokens: Sequence[np.ndarray],
    test_tokens: Sequence[np.ndarray],
    grid: GridConfig = GridConfig(),
    epochs: int = 6,
    seed: int = 0,
    hidden: int = 256,
    recent: int = 16,
    batch_windows: int = 32,
    lr: float = 2e-3,
) -> tuple[NotePrior, dict]:
    """Behaviour cloning with cross-entropy on episode windows of raw-pitch token sequences (``melody_tokens``),
    each window in a fresh random transposition (0..11 semitones, then octaves into range) every epoch.
    Reports NLL and accuracy on ``test_tokens``' windows in their own key."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    windows = episode_windows(train_tokens, grid)
    test = fitted_windows(episode_windows(test_tokens, grid, stride=grid.n_steps), grid)
    if len(windows) < 4:
        raise ValueError(f"Only {len(windows)} training windows for the prior: give it more melodies.")
    if len(test) == 0:
        raise ValueError("No test-split melody fits the env's range: the prior cannot be evaluated.")
    model = NotePrior(grid, hidden, recent)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_total = epochs * int(np.ceil(len(windows) / batch_windows))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps_total, 1), pct_start=0.1)
    start, cpu_start = time.time(), time.process_time()
    for _ in range(epochs):
        data = torch.as_tensor(fitted_windows(windows, grid, rng.integers(0, 12, len(windows))))
        order = torch.as_tensor(rng.permutation(len(data)))
        for idx in order.split(batch_windows):
            chunk = data[idx]
            logp = model.from_features(episode_features(chunk, grid, recent)).reshape(-1, grid.n_actions)
            loss = -logp.gather(1, chunk.reshape(-1, 1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    result = evaluate_prior(model, test)
    stats = {
        "test_nll": result["nll"], "test_accuracy": result["accuracy"], "test_steps": result["steps"],
        "uniform_nll": float(np.log(grid.n_actions)), "train_windows": int(len(windows)),
        "train_melodies": len(train_tokens), "test_melodies": len(test_tokens), "epochs": epochs,
        "train_seconds": round(time.time() - start, 1), "train_cpu_seconds": round(time.process_time() - cpu_start, 1),
    }
    return model, stats


def sample_prior(model: NotePrior, grid: GridConfig, n: int, seed: int = 0, temperature: float = 1.0) -> np.ndarray:
    """``n`` episodes ``(n, n_steps)`` of env actions sampled from ``model``, no audio."""
    gen = torch.Generator().manual_seed(seed)
    actions = torch.zeros(n, grid.n_steps, dtype=torch.long)
    with torch.no_grad():
        for t in range(grid.n_steps):
            features = episode_features(actions, grid, model.recent)[:, t]  # only steps < t shape step t's input
            probs = torch.softmax(model.from_features(features) / temperature, -1)
            actions[:, t] = torch.multinomial(probs, 1, generator=gen).squeeze(1)
    return actions.numpy()


def sample_stats(model: NotePrior, grid: GridConfig, reference: dict, n: int = 200, seed: int = 0) -> dict:
    """Statistics of ``n`` sampled episodes next to ``reference`` (``melody_stats`` of test-split melodies):
    relative errors of in-key, leaps and repeats, and the interval-histogram JS divergence in bits."""
    samples = sample_prior(model, grid, n, seed)
    stats = melody_stats(samples, grid)
    melodies = [actions_to_notes(m, grid) for m in samples]
    stats["interval_js"] = interval_js(melodies, np.array(reference["interval_histogram"]))
    for key in ("in_key", "leaps", "repeated"):
        stats[f"{key}_rel_error"] = stats[key] / reference[key] - 1.0
    return stats


def save_prior(model: NotePrior, path: str | os.PathLike, stats: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"grid": asdict(model.grid), "hidden": model.hidden, "recent": model.recent,
                    "state_dict": model.state_dict(), "stats": stats}, tmp)


def load_prior(path: str | os.PathLike, grid: GridConfig) -> NotePrior:
    """Load a saved prior, refusing one trained for a different env grid (or by an older version)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if "recent" not in ckpt or GridConfig(**ckpt["grid"]) != grid:
        raise ValueError(f"The prior at {path} was trained for {ckpt['grid']} by an older or different version, "
                         f"not this env's {asdict(grid)}; delete it to retrain.")
    model = NotePrior(grid, ckpt["hidden"], ckpt["recent"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


# --------------------------------------------------------------------------- corpus melodies
def dataset_pieces(data_dir: Path) -> tuple[dict[str, int], dict[str, str]]:
    """The corpus sources a default dataset was built from, and each of its pieces' split."""
    import pandas as pd  # noqa: PLC0415

    info, meta = Path(data_dir) / "info.json", Path(data_dir) / "meta.csv"
    if not (info.is_file() and meta.is_file()):
        raise FileNotFoundError(f"No dataset at {data_dir}: the prior keeps its test-split pieces out of training, so "
                                "build it first (`python -m rater.data build`, or `python train.py --agent rater`).")
    sources = json.loads(info.read_text()).get("build", {}).get("sources")
    if not sources:
        raise ValueError(f"{data_dir} was not built from the music21 corpus (no build sources in info.json): "
                         "pass --data with the default dataset, or train a prior on your own melodies with train_prior.")
    table = pd.read_csv(meta, usecols=["source", "split"], dtype=str).drop_duplicates("source")
    return sources, dict(zip(table["source"], table["split"]))


def corpus_tokens(data_dir: Path, extra_sources: dict[str, int] = PRIOR_SOURCES, steps_per_beat: int = 2,
                  cache_dir: Path = Path("data/.cache")) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train, test) top lines as raw-pitch token sequences: the dataset's own corpus files plus
    ``extra_sources``; test = pieces in the dataset's test split, never trained on; reserved collections refused."""
    from rater.data import corpus  # noqa: PLC0415 - music21 is slow to import

    sources, split_of = dataset_pieces(data_dir)
    reserved = sorted(set(RESERVED) & (set(sources) | set(extra_sources)))
    if reserved:
        raise ValueError(f"{reserved} are reserved for evaluation and never train a prior.")
    files = list(dict.fromkeys(corpus.select_sources(sources) + corpus.select_sources(extra_sources)))
    train, test, seen = [], [], set()
    for path in files:
        for piece in corpus.load_pieces(path, cache_dir):
            if piece.id in seen:
                continue
            seen.add(piece.id)
            tokens = melody_tokens(skyline(piece.notes), steps_per_beat)
            if tokens is not None and (tokens >= 2).sum() >= 4:
                (test if split_of.get(piece.id) == "test" else train).append(tokens)
    return train, test


def build_prior(grid: GridConfig, data_dir: Path, seed: int = 0, extra_sources: dict[str, int] = PRIOR_SOURCES,
                epochs: int = 4, n_samples: int = 200) -> tuple[NotePrior, dict]:
    """Train the default prior and measure it: test-split NLL/accuracy and its samples against test-split melodies."""
    start, cpu_start = time.time(), time.process_time()
    train, test = corpus_tokens(data_dir, extra_sources, grid.steps_per_beat)
    loaded, loaded_cpu = time.time() - start, time.process_time() - cpu_start
    model, stats = train_prior(train, test, grid, epochs=epochs, seed=seed)
    reference = melody_stats(fitted_windows(episode_windows(test, grid, stride=grid.n_steps), grid), grid)
    stats.update(load_seconds=round(loaded, 1), load_cpu_seconds=round(loaded_cpu, 1), extra_sources=dict(extra_sources), corpus_melodies=reference,
                 samples=sample_stats(model, grid, reference, n_samples, seed))
    return model, stats


def default_prior(grid: GridConfig, path: Path, seed: int = 0, data_dir: Path = Path("data/default")) -> NotePrior:
    """Load the prior at ``path``, or train it on corpus melodies (``build_prior``) and save it there (saying so)."""
    if Path(path).is_file():
        return load_prior(path, grid)
    print(f"Training the real-music prior (behaviour cloning on corpus top lines) -> {path}", flush=True)
    model, stats = build_prior(grid, Path(data_dir), seed)
    s = stats["samples"]
    print(f"  prior: test-split NLL {stats['test_nll']:.2f} nats/step (uniform {stats['uniform_nll']:.2f}), accuracy "
          f"{stats['test_accuracy']:.2f}; {stats['train_melodies']} melodies, {stats['load_seconds']:.0f} s loading + "
          f"{stats['train_seconds']:.0f} s training. Samples vs test melodies: in-key {s['in_key']:.2f} "
          f"({s['in_key_rel_error']:+.0%}), leaps {s['leaps_rel_error']:+.0%}, repeats {s['repeated_rel_error']:+.0%}, "
          f"interval JS {s['interval_js']:.3f} bits", flush=True)
    save_prior(model, path, stats)
    return model


def prior_stats(path: str | os.PathLike) -> dict | None:
    """The saved prior's statistics (including ``corpus_melodies``), or None when no prior was trained yet."""
    if not Path(path).is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)["stats"]


# --------------------------------------------------------------------------- command line
@dataclass
class PriorArgs:
    out: str = field(default="runs/prior/prior.pt", metadata={"help": "where to save the prior (refuses to overwrite without --force)"})
    data: str = field(default="data/default", metadata={"help": "the default dataset: its corpus files are used and its test split is held out"})
    sources: str = field(default=",".join(f"{k}={v}" for k, v in PRIOR_SOURCES.items()),
                         metadata={"help": "extra music21 collections, name=files,... ('' = the dataset's own pieces only)"})
    epochs: int = field(default=4, metadata={"help": "passes over the training windows (each in a fresh random key)"})
    seed: int = field(default=0, metadata={"help": "seed for transpositions, batches, initialisation and samples"})
    threads: int = field(default=2, metadata={"help": "torch CPU threads"})
    force: bool = field(default=False, metadata={"help": "overwrite an existing prior at --out"})


def parse_sources(text: str) -> dict[str, int]:
    """``"ryansMammoth=400,oneills1850=4"`` -> ``{"ryansMammoth": 400, "oneills1850": 4}``."""
    sources = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, count = item.partition("=")
        if not count.isdigit():
            raise SystemExit(f"--sources: {item!r} is not name=files (e.g. ryansMammoth=400).")
        sources[name] = int(count)
    return sources


def main(argv: list[str] | None = None) -> dict:
    """Train the prior alone and print its measurements: ``python -m agents.prior --help``."""
    from studio.flags import parse_args  # noqa: PLC0415

    args = parse_args(PriorArgs, argv, prog="python -m agents.prior", description=__doc__)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise SystemExit(f"{out} exists: pass --force to retrain it, or choose another --out.")
    torch.set_num_threads(args.threads)
    start = time.time()
    model, stats = build_prior(GridConfig(), Path(args.data), args.seed, parse_sources(args.sources), args.epochs)
    stats["total_seconds"] = round(time.time() - start, 1)
    save_prior(model, out, stats)
    ref, s = stats["corpus_melodies"], stats["samples"]
    print(f"prior -> {out}: {stats['train_melodies']} training melodies ({stats['train_windows']} windows), "
          f"{stats['test_melodies']} test-split melodies; {stats['load_seconds']} s loading, {stats['train_seconds']} s "
          f"training, {stats['total_seconds']} s in all (CPU seconds of this process: {stats['load_cpu_seconds']} loading, "
          f"{stats['train_cpu_seconds']} training)")
    print(f"test split: NLL {stats['test_nll']:.3f} nats/step (uniform {stats['uniform_nll']:.3f}), "
          f"accuracy {stats['test_accuracy']:.3f} over {stats['test_steps']} steps")
    print(f"{'':28}{'in_key':>9}{'leaps':>9}{'repeated':>9}{'distinct':>9}{'interval JS':>12}")
    print(f"{'test-split melodies':28}{ref['in_key']:9.3f}{ref['leaps']:9.3f}{ref['repeated']:9.3f}{ref['distinct_per_100']:9.1f}{0:12.3f}")
    print(f"{'prior samples':28}{s['in_key']:9.3f}{s['leaps']:9.3f}{s['repeated']:9.3f}{s['distinct_per_100']:9.1f}{s['interval_js']:12.3f}")
    print(f"{'relative error':28}{s['in_key_rel_error']:+9.1%}{s['leaps_rel_error']:+9.1%}{s['repeated_rel_error']:+9.1%}"
          "   (targets: in-key ±5 %, leaps and repeats ±30 %, JS <= 0.1 bits)")
    return stats


if __name__ == "__main__":
    main()
