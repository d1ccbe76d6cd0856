"""Does the reward prefer real melodies to scrambles of them, and to random melodies? (issue 14 acceptance)

Real melodies: the top line (highest pitch at each onset) of test-split pieces of the dataset (pieces no
member trained on), several 8-s windows per piece, quantised to PianoEnv's grid (an eighth note = one
0.25-s step at 120 bpm) and moved by whole octaves into its range, then played through PianoEnv itself
(default settings), so the audio is exactly what an RL agent could produce. Each real melody is paired with
- ``pitch shuffle``: the same rhythm with its pitches permuted,
- ``random pitches``: the same rhythm, pitches uniform over PianoEnv's range,
- ``random onsets``: the same pitch sequence at uniformly random steps (held until the next note),
- ``uniform random``: an episode of uniformly random PianoEnv actions.
A pair counts 1 when the real melody scores higher, 1/2 on a tie. Rates come with 95 % Wilson intervals;
windows of one piece are not independent, so the intervals are optimistic (the piece count is printed).
Scored by the reward, the held-out members, and the simulated listeners' gold score (for reference).

    python -m benchmarks.rater_scrambles [--rater PATH] [--data data/default] [--windows 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from studio.files import write_json
from envs.piano import HOLD, REST, PianoEnv
from rater.data import corpus
from rater.data.clips import Clips
from rater.data.listeners import gold_score
from rater.ensemble import combine, wilson
from rater.scorer import Scorer, checkpoint_path

STEP_QUARTERS = 0.5  # one PianoEnv step (0.25 s at 120 bpm) is an eighth note


def top_line(notes_q: np.ndarray) -> np.ndarray:
    """(pitch, start_q, end_q) of the melody: at each onset, the highest starting note, kept only when it is at
    least as high as every note still sounding from before (a lower voice moving under a held top note is not
    melody). Shape (N, 3), sorted by start."""
    rows = []
    for start in np.unique(notes_q[:, 1]):
        at = notes_q[notes_q[:, 1] == start]
        best = at[np.argmax(at[:, 0])]
        held = notes_q[(notes_q[:, 1] < start) & (notes_q[:, 2] > start)]
        if len(held) == 0 or best[0] >= held[:, 0].max():
            rows.append((best[0], best[1], best[2]))
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def melody_actions(line: np.ndarray, start_q: float, n_steps: int, low: int, n_pitches: int) -> np.ndarray | None:
    """PianoEnv ``Discrete`` actions for ``n_steps`` steps of a top line from ``start_q``; None if under 6 notes."""
    steps = np.round((line[:, 1] - start_q) / STEP_QUARTERS).astype(int)
    ends = np.round((line[:, 2] - start_q) / STEP_QUARTERS).astype(int)
    keep = (steps >= 0) & (steps < n_steps)
    if keep.sum() < 6:
        return None
    pitches, steps, ends = line[keep, 0].astype(int), steps[keep], ends[keep]
    shift = 12 * int(np.round((low + n_pitches / 2 - np.median(pitches)) / 12))
    pitches = pitches + shift
    while pitches.min() < low:
        pitches[pitches < low] += 12
    while pitches.max() >= low + n_pitches:
        pitches[pitches >= low + n_pitches] -= 12
    actions = np.full(n_steps, REST)
    for pitch, step, end in zip(pitches, steps, ends):
        actions[step] = 2 + pitch - low
        actions[step + 1 : min(max(end, step + 1), n_steps)] = HOLD  # a later onset overwrites these
    return actions


def scrambles(actions: np.ndarray, rng: np.random.Generator, n_pitches: int) -> dict[str, np.ndarray]:
    """The three scrambles of one melody's actions (see the module docstring)."""
    onsets = np.flatnonzero(actions >= 2)
    shuffled = actions.copy()
    shuffled[onsets] = rng.permutation(actions[onsets])
    random_pitch = actions.copy()
    random_pitch[onsets] = 2 + rng.integers(0, n_pitches, len(onsets))
    positions = np.sort(rng.choice(len(actions), len(onsets), replace=False))
    random_onsets = np.full(len(actions), HOLD)
    random_onsets[: positions[0]] = REST
    random_onsets[positions] = actions[onsets]
    return {"pitch shuffle": shuffled, "random pitches": random_pitch, "random onsets": random_onsets}


def play(env: PianoEnv, actions: np.ndarray) -> np.ndarray:
    """The audio of one PianoEnv episode of ``actions``."""
    env.reset()
    info = {}
    for a in actions:
        _, _, terminated, _, info = env.step(int(a))
    assert terminated
    return info["audio"]


def test_melodies(data: str, cache_dir: Path, windows: int, n_steps: int, low: int, n_pitches: int, seed: int):
    """Action sequences of real top-line windows of the test-split pieces, and the number of pieces used."""
    meta = Clips.load(data).meta
    sources = sorted(set(meta.loc[meta["split"] == "test", "source"]))
    files = sorted({s.split("#")[0] for s in sources})
    root = corpus.corpus_root()
    pieces = {p.id: p for f in files for p in corpus.load_pieces(root / f, cache_dir)}
    rng = np.random.default_rng([seed, 5])
    melodies, used = [], set()
    span = n_steps * STEP_QUARTERS
    for source in sources:
        line = top_line(pieces[source].notes)
        starts = np.unique(np.floor(line[:, 1]))
        starts = starts[starts <= line[:, 2].max() - span]
        found = 0
        for start in rng.permutation(starts):
            actions = melody_actions(line, float(start), n_steps, low, n_pitches)
            if actions is not None:
                melodies.append(actions)
                used.add(source)
                found += 1
            if found == windows:
                break
    return melodies, len(used)


def combined(reward: Scorer, members: np.ndarray) -> np.ndarray:
    """The reward from member scores (K, N) in ``p`` units, exactly as ``reward(waves)`` combines them."""
    z = torch.from_numpy((members - reward.target_mean) / reward.target_std)
    return combine(z, reward.rule, reward.lam).numpy() * reward.target_std + reward.target_mean


def rate(better: np.ndarray) -> dict:
    n = len(better)
    wins = float(np.sum(better))
    low, high = wilson(wins, n)
    return {"rate": wins / n, "wilson95": [low, high], "pairs": n}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rater", default="", help="checkpoint (default: $EARWORM_RATER or runs/rater/checkpoints/rater.pt)")
    parser.add_argument("--data", default="data/default", help="dataset whose test-split pieces give the melodies")
    parser.add_argument("--cache", default="", help="parsed-note cache (default: <data>/../.cache)")
    parser.add_argument("--windows", type=int, default=6, help="8-s windows per test piece (default 6)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="", help="write the results as JSON here (default: beside the checkpoint)")
    args = parser.parse_args(argv)
    ckpt = checkpoint_path(args.rater or None)
    reward = Scorer.load(ckpt, device="cpu")
    heldout = Scorer.load_heldout(ckpt, device="cpu")
    env = PianoEnv(scorer="deferred")
    cache = Path(args.cache) if args.cache else Path(args.data).parent / ".cache"
    melodies, n_pieces = test_melodies(args.data, cache, args.windows, env.n_steps, env.low_pitch, env.n_pitches, args.seed)
    rng = np.random.default_rng([args.seed, 9])
    audio = {"real": [], "pitch shuffle": [], "random pitches": [], "random onsets": [], "uniform random": []}
    for actions in melodies:
        audio["real"].append(play(env, actions))
        for name, scrambled in scrambles(actions, rng, env.n_pitches).items():
            audio[name].append(play(env, scrambled))
        audio["uniform random"].append(play(env, rng.integers(0, env.action_space.n, env.n_steps)))
    env.close()
    members = {group: reward.members(waves) for group, waves in audio.items()}  # (K, N) p units, scored once
    scores = {"reward": {group: combined(reward, m) for group, m in members.items()}}
    for h in heldout:
        scores[f"held-out {h.member} ({h.purpose})"] = {group: h(waves) for group, waves in audio.items()}
    scores["gold (simulated listeners)"] = {group: gold_score(waves) for group, waves in audio.items()}
    results = {"checkpoint": str(ckpt), "melodies": len(melodies), "pieces": n_pieces, "judges": {}}
    print(f"{len(melodies)} real top-line windows from {n_pieces} test-split pieces, played through PianoEnv")
    print(f"{'judge':<34}" + "".join(f"{g:>24}" for g in list(audio)[1:]))
    for name, by_group in scores.items():
        real = by_group["real"]
        row = {}
        for group in list(audio)[1:]:
            other = by_group[group]
            row[group] = rate((real > other) + 0.5 * (real == other))
        row["mean score"] = {g: float(np.mean(v)) for g, v in by_group.items()}
        results["judges"][name] = row
        cells = "".join(f"{row[g]['rate']:>9.2f} [{row[g]['wilson95'][0]:.2f}, {row[g]['wilson95'][1]:.2f}]" for g in list(audio)[1:])
        print(f"{name:<34}{cells}")
    results["disagreement"] = {g: float(np.mean(m.std(0))) for g, m in members.items()}  # reward members' spread
    out = Path(args.out) if args.out else ckpt.parent.parent / "scrambles.json"
    write_json(out, results)
    print(f"-> {out}")
    return results


if __name__ == "__main__":
    main()
