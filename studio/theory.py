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


def interval_histogram(pieces: Sequence[Sequence[Note]], max_interval: int = 12) -> np.ndarray:
    """Normalised histogram of successive-note intervals, shape ``(2 * max_interval + 1,)``, semitones
    ``-max_interval..+max_interval`` (wider intervals are counted in the end bins); pooled over all pieces."""
    counts = np.zeros(2 * max_interval + 1)
    for notes in pieces:
        steps = np.diff(np.array(pitch_sequence(notes), dtype=int))
        np.add.at(counts, np.clip(steps, -max_interval, max_interval) + max_interval, 1.0)
    if counts.sum() == 0:
        raise ValueError("No intervals to count: every piece has fewer than two notes.")
    return counts / counts.sum()


def js_divergence_bits(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence between two discrete distributions of the same shape, in bits (0..1)."""
    p, q = np.asarray(p, float) / np.sum(p), np.asarray(q, float) / np.sum(q)
    m = 0.5 * (p + q)

    def kl(a, b):
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / b[nz])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def interval_js(pieces: Sequence[Sequence[Note]], reference: Sequence[Sequence[Note]] | np.ndarray) -> float:
    """JS divergence (bits) between the pooled interval histograms of ``pieces`` and ``reference`` (pieces, or a
    histogram from ``interval_histogram``)."""
    ref = reference if isinstance(reference, np.ndarray) else interval_histogram(reference)
    return js_divergence_bits(interval_histogram(pieces), ref)


def best_key(notes: Sequence[Note]) -> tuple[int, bool]:
    """(tonic pitch class, is_minor) of the Krumhansl-Kessler key that best fits the duration-weighted pitch classes."""
    hist = np.zeros(12)
    for p, s, e, _ in notes:
        hist[int(p) % 12] += max(float(e) - float(s), 1e-3)
    best, key = -np.inf, (0, False)
    for minor, profile in ((False, _MAJOR), (True, _MINOR)):
        for tonic in range(12):
            r = np.corrcoef(hist, np.roll(profile, tonic))[0, 1] if hist.std() > 0 else 0.0
            if r > best:
                best, key = r, (tonic, minor)
    return key


def shape_stats(notes: Sequence[Note]) -> dict[str, float]:
    """Pitch range (semitones), contour direction changes per note, and whether the last note is a stable degree.

    A direction change is a sign flip between successive non-zero intervals. Stable degrees are the tonic, third
    and fifth of the best-fitting key (``best_key``).
    """
    pitches = np.array(pitch_sequence(notes), dtype=int)
    if len(pitches) == 0:
        return {"pitch_range": float("nan"), "direction_changes": float("nan"), "ends_stable": float("nan")}
    signs = np.sign(np.diff(pitches))
    signs = signs[signs != 0]
    changes = float((np.diff(signs) != 0).sum()) / len(pitches) if len(signs) > 1 else 0.0
    tonic, minor = best_key(notes)
    degree = (pitches[-1] - tonic) % 12
    stable = (0, 3, 7) if minor else (0, 4, 7)
    return {"pitch_range": float(pitches.max() - pitches.min()), "direction_changes": changes,
            "ends_stable": float(degree in stable)}


def mean_shape_stats(pieces: Sequence[Sequence[Note]]) -> dict[str, float]:
    """``shape_stats`` averaged over pieces (pieces with no notes are skipped)."""
    rows = [shape_stats(p) for p in pieces if len(p)]
    keys = ("pitch_range", "direction_changes", "ends_stable")
    return {k: float(np.mean([r[k] for r in rows])) if rows else float("nan") for k in keys}
