"""Shared helpers of the listener benchmarks: corpus top lines on PianoEnv's grid, their scrambles, renders.

A melody is a PianoEnv ``Discrete`` action sequence (0 rest, 1 hold, 2 + i note-on of ``low_pitch + i``),
rendered by stepping a real PianoEnv (``scorer="deferred"``), so the audio is exactly what the agent makes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agents.prior import GridConfig, melody_to_actions, skyline
from envs.piano import HOLD, REST, PianoEnv

DEFAULT_DATA = Path("/work/wt-before/data/default")
GRID = GridConfig()


def split_pieces(data_dir: Path, split: str) -> list[str]:
    """Piece ids of one split of a built dataset (meta.csv), sorted."""
    meta = pd.read_csv(Path(data_dir) / "meta.csv")
    return sorted(meta.loc[meta["split"] == split, "source"].unique())


def piece_melodies(piece_ids: list[str], windows: int = 2, cache_dir: Path = Path("data/.cache")) -> list[dict]:
    """Up to ``windows`` consecutive episode-long top-line windows per piece: dicts(piece, actions (n_steps,))."""
    from rater.data import corpus  # noqa: PLC0415

    wanted = set(piece_ids)
    files = {pid.split("#")[0] for pid in piece_ids}
    out = []
    for rel in sorted(files):
        for piece in corpus.load_pieces(corpus.corpus_root() / rel, cache_dir):
            if piece.id not in wanted:
                continue
            actions = melody_to_actions(skyline(piece.notes), GRID)
            if actions is None:
                continue
            for w in range(windows):
                seg = actions[w * GRID.n_steps : (w + 1) * GRID.n_steps]
                if len(seg) < GRID.n_steps or (seg >= 2).sum() < 6:
                    break
                if seg[0] == HOLD:  # a window cut mid-note: the env would play silence there, say so
                    seg = seg.copy()
                    seg[0] = REST
                out.append({"piece": piece.id, "actions": seg.astype(np.int64)})
    return out


def scramble(actions: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A scrambled copy: ``pitch_shuffle`` (permute note pitches), ``random_pitches`` (uniform over the range),
    ``random_onsets`` (same pitch order, each note held for a uniform random 1-4 steps, cut at the episode's end)."""
    out = actions.copy()
    ons = np.flatnonzero(out >= 2)
    if kind == "pitch_shuffle":
        pitches = out[ons].copy()
        for _ in range(20):  # a permutation that changes the melody
            perm = rng.permutation(pitches)
            if not np.array_equal(perm, pitches):
                break
        out[ons] = perm
    elif kind == "random_pitches":
        out[ons] = 2 + rng.integers(0, GRID.n_pitches, len(ons))
    elif kind == "random_onsets":
        out[:] = HOLD
        out[: ons[0]] = REST
        t = int(ons[0])
        for pitch in actions[ons]:
            if t >= len(out):
                break
            out[t] = pitch
            t += int(rng.integers(1, 5))
    else:
        raise ValueError(f"Unknown scramble {kind!r}; choose pitch_shuffle, random_pitches or random_onsets.")
    return out


class EnvRenderer:
    """Renders action sequences by stepping one PianoEnv (default settings, deferred scorer)."""

    def __init__(self):
        self.env = PianoEnv(scorer="deferred")
        self.sample_rate = self.env.sample_rate

    def __call__(self, actions: np.ndarray) -> tuple[np.ndarray, list]:
        """(audio float32, notes [(pitch, start_s, end_s, velocity)]) of one episode."""
        self.env.reset()
        info = {}
        for a in actions:
            _, _, _, _, info = self.env.step(int(a))
        return info["audio"], info["notes"]

    def close(self):
        self.env.close()
