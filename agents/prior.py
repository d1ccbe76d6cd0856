"""A note-level prior learned from real melodies by behaviour cloning: p(action | what PianoEnv shows).

RL Tuner (Jaques et al. 2017) keeps a policy near real music by adding ``beta * log p_prior(a | s)`` to the
reward. Our prior sees exactly the env's observation (the last ``history`` piano-roll rows and the position),
built from corpus melodies quantised to the env's grid with ``envs.piano.actions_to_roll``, so no audio is
rendered to train it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from studio.theory import Note, diversity, mean_theory_stats
from studio.files import atomic_path
from envs.piano import HOLD, REST, actions_to_roll, roll_observation


@dataclass(frozen=True)
class GridConfig:
    """The PianoEnv grid the prior is trained for; must match the env it scores."""

    n_steps: int = 32
    low_pitch: int = 48
    n_pitches: int = 36
    history: int = 8
    steps_per_beat: int = 2  # eighth notes


def melody_to_actions(melody: Sequence[tuple[int, float, float]], grid: GridConfig) -> np.ndarray | None:
    """Quantise a monophonic melody ``(pitch, start_beat, end_beat)`` to env actions, moved by octaves into range.

    Returns None when the melody cannot fit the pitch range.
    """
    if not melody:
        return None
    pitches = np.array([m[0] for m in melody])
    shift = 0
    while pitches.min() + shift < grid.low_pitch:
        shift += 12
    while pitches.max() + shift >= grid.low_pitch + grid.n_pitches:
        shift -= 12
    if pitches.min() + shift < grid.low_pitch:
        return None
    end = int(round(max(m[2] for m in melody) * grid.steps_per_beat))
    actions = np.full(max(end, 1), REST, dtype=np.int64)
    for pitch, start, stop in melody:
        a, b = int(round(start * grid.steps_per_beat)), int(round(stop * grid.steps_per_beat))
        if b <= a or a >= len(actions):
            continue
        actions[a] = 2 + pitch + shift - grid.low_pitch
        actions[a + 1 : b] = HOLD
    return actions


def actions_to_notes(actions: Sequence[int], grid: GridConfig, step_seconds: float = 0.25) -> list[Note]:
    """Notes ``(pitch, start_s, end_s, 90)`` of PianoEnv ``Discrete`` actions (rest/hold/note-on)."""
    notes, current = [], None
    for t, a in enumerate(actions):
        if current is not None and a != HOLD:
            notes.append((current[0], current[1] * step_seconds, t * step_seconds, 90))
            current = None
        if a >= 2:
            current = (grid.low_pitch + int(a) - 2, t)
    if current is not None:
        notes.append((current[0], current[1] * step_seconds, len(actions) * step_seconds, 90))
    return notes


def melody_stats(action_seqs: Sequence[np.ndarray], grid: GridConfig) -> dict[str, float]:
    """Diversity and theory statistics of melodies cut to one episode: the reference for generated pieces."""
    melodies = [actions_to_notes(m[: grid.n_steps], grid) for m in action_seqs]
    return {"n": len(melodies), **diversity(melodies), **mean_theory_stats(melodies)}


def training_pairs(action_seqs: Sequence[np.ndarray], grid: GridConfig, seed: int = 0):
    """(observation, action) pairs from episode-length windows of each sequence, as the env would show them."""
    rng = np.random.default_rng(seed)
    obs, acts = [], []
    for seq in action_seqs:
        starts = range(0, max(1, len(seq) - grid.n_steps + 1), grid.n_steps // 2)
        for s in starts:
            window = seq[s : s + grid.n_steps]
            transpose = int(rng.integers(-5, 7))  # all keys: the prior should not prefer one key
            notes = window >= 2
            shifted = window.copy()
            shifted[notes] = np.clip(window[notes] + transpose, 2, grid.n_pitches + 1)
            roll = actions_to_roll(shifted, grid.n_pitches, grid.history)
            for t, a in enumerate(shifted):
                obs.append(roll_observation(roll, t, grid.history, grid.n_steps))
                acts.append(a)
    return np.stack(obs), np.array(acts, dtype=np.int64)


class NotePrior(nn.Module):
    """A small MLP policy over env actions; ``log_prob(obs, action)`` is the RL Tuner reward term."""

    def __init__(self, grid: GridConfig = GridConfig(), hidden: int = 256):
        super().__init__()
        self.grid, self.hidden = grid, hidden
        obs_dim = grid.history * grid.n_pitches + 1
        self.net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, grid.n_pitches + 2))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.net(obs.float()), dim=-1)

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self(obs).gather(-1, actions.long().view(-1, 1)).squeeze(-1)


def train_prior(
    action_seqs: Sequence[np.ndarray], grid: GridConfig = GridConfig(), epochs: int = 8, seed: int = 0
) -> tuple[NotePrior, dict]:
    """Behaviour cloning with cross-entropy; holds out 10 % of windows to report accuracy and NLL."""
    torch.manual_seed(seed)
    obs, acts = training_pairs(action_seqs, grid, seed)
    if len(acts) < 100:
        raise ValueError(f"Only {len(acts)} training steps for the prior: give it more melodies.")
    perm = np.random.default_rng(seed).permutation(len(acts))
    n_val = len(acts) // 10
    val, train = perm[:n_val], perm[n_val:]
    x, y = torch.as_tensor(obs), torch.as_tensor(acts)
    model = NotePrior(grid)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.as_tensor(train)[torch.randperm(len(train), generator=gen)]
        for batch in order.split(512):
            loss = -model.log_prob(x[batch], y[batch]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        logp = model(x[val])
        stats = {
            "val_nll": float(-logp.gather(1, y[val].view(-1, 1)).mean()),
            "val_accuracy": float((logp.argmax(1) == y[val]).float().mean()),
            "uniform_nll": float(np.log(grid.n_pitches + 2)),
            "n_pairs": int(len(acts)),
        }
    return model.eval(), stats


def save_prior(model: NotePrior, path: str | os.PathLike, stats: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"grid": asdict(model.grid), "hidden": model.hidden, "state_dict": model.state_dict(), "stats": stats}, tmp)


def load_prior(path: str | os.PathLike, grid: GridConfig) -> NotePrior:
    """Load a saved prior, refusing one trained for a different env grid."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if GridConfig(**ckpt["grid"]) != grid:
        raise ValueError(f"The prior at {path} was trained for {ckpt['grid']}, not this env's {asdict(grid)}; delete it to retrain.")
    model = NotePrior(grid, ckpt["hidden"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def skyline(notes: np.ndarray) -> list[tuple[int, float, float]]:
    """The top line of (pitch, start_q, end_q, ...) notes: the highest pitch at each onset, cut at the next onset."""
    if len(notes) == 0:
        return []
    order = np.lexsort((-notes[:, 0], notes[:, 1]))
    top = notes[order]
    top = top[np.r_[True, np.diff(top[:, 1]) > 0]]
    ends = np.minimum(top[:, 2], np.r_[top[1:, 1], np.inf])
    return [(int(p), float(s), float(e)) for p, s, e in zip(top[:, 0], top[:, 1], ends)]


def corpus_melodies(grid: GridConfig, cache_dir: Path = Path("data/.cache")) -> list[np.ndarray]:
    """Top lines of the default dataset's corpus pieces as env action sequences (parsed notes are cached)."""
    from rater.data import corpus  # noqa: PLC0415 - music21 is slow to import

    seqs = []
    for path in corpus.select_sources(corpus.DEFAULT_SOURCES):
        for piece in corpus.load_pieces(path, cache_dir):
            actions = melody_to_actions(skyline(piece.notes), grid)
            if actions is not None and len(actions) >= grid.n_steps // 2:
                seqs.append(actions)
    return seqs


def default_prior(grid: GridConfig, path: Path, seed: int = 0) -> NotePrior:
    """Load the prior at ``path``, or train it on the corpus melodies and save it there (saying so)."""
    if Path(path).is_file():
        return load_prior(path, grid)
    print(f"Training the real-music prior (behaviour cloning on corpus melodies) -> {path}", flush=True)
    melodies = corpus_melodies(grid)
    model, stats = train_prior(melodies, grid, seed=seed)
    stats["corpus_melodies"] = melody_stats(melodies, grid)
    print(f"  prior: val NLL {stats['val_nll']:.2f} nats (uniform {stats['uniform_nll']:.2f}), "
          f"accuracy {stats['val_accuracy']:.2f} on {stats['n_pairs']} steps", flush=True)
    save_prior(model, path, stats)
    return model


def prior_stats(path: str | os.PathLike) -> dict | None:
    """The saved prior's statistics (including ``corpus_melodies``), or None when no prior was trained yet."""
    if not Path(path).is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)["stats"]
