"""What the policy did not optimise: diversity and music-theory statistics of generated note sequences.

Used by the training monitor and by evaluate.py, and computed the same way on real corpus melodies so the
numbers have a reference. A piece is a list of notes ``(pitch, start_s, end_s, velocity)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Krumhansl-Kessler key profiles (C major / C minor), rotated for the other keys.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_MAJOR_SCALE = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR_SCALE = np.array([0, 2, 3, 5, 7, 8, 10, 11])  # natural + harmonic minor's leading tone

Note = tuple[int, float, float, int]


def pitch_sequence(notes: Sequence[Note]) -> tuple[int, ...]:
    """Pitches in onset order (ties broken by pitch): the identity of a melody for diversity counts."""
    return tuple(int(n[0]) for n in sorted(notes, key=lambda n: (n[1], n[0])))


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance between two pitch sequences (plain lists: numpy scalars are slower at this size)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def diversity(pieces: Sequence[Sequence[Note]], max_pairs: int = 300, seed: int = 0) -> dict[str, float]:
    """Distinct pieces per 100 and mean pairwise edit distance (on a fixed random sample of pairs)."""
    seqs = [pitch_sequence(p) for p in pieces]
    n = len(seqs)
    if n == 0:
        return {"distinct_per_100": float("nan"), "mean_edit_distance": float("nan")}
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if len(pairs) > max_pairs:
        chosen = np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False)
        pairs = [pairs[k] for k in chosen]
    dist = [edit_distance(seqs[i], seqs[j]) for i, j in pairs]
    return {
        "distinct_per_100": 100.0 * len(set(seqs)) / n,
        "mean_edit_distance": float(np.mean(dist)) if dist else 0.0,
    }


def theory_stats(notes: Sequence[Note]) -> dict[str, float]:
    """Notes in the best-fitting key, repeated notes, leaps (> 7 semitones), pitch-class entropy (bits)."""
    pitches = np.array(pitch_sequence(notes), dtype=int)
    if len(pitches) == 0:
        return {"in_key": float("nan"), "repeated": float("nan"), "leaps": float("nan"), "pc_entropy": float("nan")}
    hist = np.bincount(pitches % 12, minlength=12).astype(float)
    best, in_key = -np.inf, 0.0
    for tonic in range(12):
        for profile, scale in ((_MAJOR, _MAJOR_SCALE), (_MINOR, _MINOR_SCALE)):
            r = np.corrcoef(hist, np.roll(profile, tonic))[0, 1] if hist.std() > 0 else 0.0
            if r > best:
                best, in_key = r, hist[(scale + tonic) % 12].sum() / hist.sum()
    steps = np.abs(np.diff(pitches))
    probs = hist[hist > 0] / hist.sum()
    return {
        "in_key": float(in_key),
        "repeated": float((steps == 0).mean()) if len(steps) else 0.0,
        "leaps": float((steps > 7).mean()) if len(steps) else 0.0,
        "pc_entropy": float(-(probs * np.log2(probs)).sum()),
    }


def mean_theory_stats(pieces: Sequence[Sequence[Note]]) -> dict[str, float]:
    """``theory_stats`` averaged over pieces (pieces with no notes are skipped)."""
    rows = [theory_stats(p) for p in pieces if len(p)]
    keys = ("in_key", "repeated", "leaps", "pc_entropy")
    return {k: float(np.mean([r[k] for r in rows])) if rows else float("nan") for k in keys}
