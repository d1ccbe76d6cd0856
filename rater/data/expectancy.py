"""Melodic expectancy, IDyOM-like (Pearce 2005): how surprising each note is to a listener who knows folk songs.

Three viewpoints of a monophonic note sequence, each with its own variable-order model:

- ``interval``: the pitch interval from the previous note in semitones, clipped to +-13 (13 = "more than
  an octave"), 27 symbols;
- ``ioi``: the ratio of this inter-onset interval to the previous one, ``round(2 log2 ratio)`` clipped to
  +-4 (ratios 1/4 .. 4 in half-octave steps), 9 symbols;
- ``degree``: the scale degree, ``(pitch - tonic) mod 12``, plus 12 in minor, 24 symbols, where the key is
  the best Krumhansl-Kessler fit of the melody's duration-weighted pitch-class histogram (IDyOM's
  ``cpitch`` relative to the tonic, which knows that a leading tone wants the tonic).

Each is an interpolated PPM model (escape method C, blending, no exclusion; Cleary & Witten 1984, as in
IDyOM's "C" blending) over contexts of up to ``MAX_ORDER`` previous symbols, backing off to order 0 and to
a uniform order -1:

    P_n(s | ctx) = (c(ctx, s) + u(ctx) * P_{n-1}(s | shorter ctx)) / (T(ctx) + u(ctx))

with ``T`` the count of the context and ``u`` the number of distinct symbols seen after it. A note's
information content is ``IC = -log2 P_interval - log2 P_degree - log2 P_ioi`` (bits, summed over the
viewpoints as if they were independent) and its entropy the sum of the predictive distributions' entropies.

The model is trained ONCE on a named set of Essen folk songs (``TRAINING_SOURCES``) that no dataset uses,
then frozen in ``expectancy_v2.json`` beside this file, so the simulated listeners never move with the
dataset split. Regenerate it byte-identically with ``python -m rater.data.expectancy``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

VERSION = 2
MAX_ORDER = 3
MAX_INTERVAL = 13  # |interval| > 12 semitones is one symbol per direction
MAX_IOI_STEP = 4  # round(2 log2 ratio) clipped to +-4
INTERVAL_SYMBOLS = 2 * MAX_INTERVAL + 1
IOI_SYMBOLS = 2 * MAX_IOI_STEP + 1
DEGREE_SYMBOLS = 24
# Krumhansl & Kessler (1982) probe-tone profiles, C major and C minor.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MODEL_PATH = Path(__file__).with_name("expectancy_v2.json")
# Essen folk songs (music21's essenFolksong): German ballads. The default dataset must never use these files
# (tests/test_expectancy.py checks it against corpus.DEFAULT_SOURCES); none is a reserved collection.
TRAINING_SOURCES = (
    "essenFolksong/ballad20.abc",
    "essenFolksong/ballad30.abc",
    "essenFolksong/ballad40.abc",
    "essenFolksong/ballad80.abc",
)
RESERVED = ("airdsAirs", "miscFolk", "mozart", "haydn", "beethoven", "josquin", "trecento", "schumann_clara", "joplin")


def melody_symbols(pitches: np.ndarray, onsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interval and IOI-ratio symbols of a monophonic melody.

    ``pitches`` (N,) MIDI numbers and ``onsets`` (N,) ascending times (any unit). Returns two int arrays of
    length N - 1: ``interval[i]`` for note i + 1 (index into the 27-symbol alphabet, 13 = unison) and
    ``ioi[i]`` likewise (index into the 9-symbol alphabet, 4 = same IOI; the first note with an IOI has no
    predecessor IOI and gets 4).
    """
    pitches = np.asarray(pitches, dtype=np.float64)
    onsets = np.asarray(onsets, dtype=np.float64)
    if pitches.shape != onsets.shape or pitches.ndim != 1:
        raise ValueError(f"pitches and onsets must be 1-D of one length, got {pitches.shape} and {onsets.shape}.")
    if len(pitches) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    interval = np.clip(np.round(np.diff(pitches)), -MAX_INTERVAL, MAX_INTERVAL).astype(np.int64) + MAX_INTERVAL
    ioi = np.maximum(np.diff(onsets), 1e-6)
    ratio = np.r_[0.0, np.round(2 * np.log2(ioi[1:] / ioi[:-1]))]
    ioi_sym = np.clip(ratio, -MAX_IOI_STEP, MAX_IOI_STEP).astype(np.int64) + MAX_IOI_STEP
    return interval, ioi_sym


def best_key(pitches: np.ndarray, onsets: np.ndarray) -> tuple[int, bool]:
    """(tonic pitch class, is_minor) of the best Krumhansl-Kessler fit; notes weigh their IOI (last: the median)."""
    pitches = np.asarray(pitches, dtype=np.float64)
    ioi = np.diff(np.asarray(onsets, dtype=np.float64))
    weights = np.r_[ioi, np.median(ioi) if len(ioi) else 1.0]
    hist = np.bincount(np.round(pitches).astype(int) % 12, np.maximum(weights, 1e-3), minlength=12)
    hist = hist - hist.mean()
    best, key = -np.inf, (0, False)
    for minor, profile in ((False, MAJOR_PROFILE), (True, MINOR_PROFILE)):
        z = profile - profile.mean()
        for tonic in range(12):
            r = float(hist @ np.roll(z, tonic))
            if r > best:
                best, key = r, (tonic, minor)
    return key


def degree_symbols(pitches: np.ndarray, onsets: np.ndarray) -> np.ndarray:
    """Scale-degree symbols (N,) of every note: ``(pitch - tonic) % 12 + 12 * is_minor``, int64."""
    if len(pitches) == 0:
        return np.zeros(0, dtype=np.int64)
    tonic, minor = best_key(pitches, onsets)
    return ((np.round(np.asarray(pitches)).astype(np.int64) - tonic) % 12 + 12 * int(minor)).astype(np.int64)


def count_ngrams(sequences: Sequence[Sequence[int]], max_order: int = MAX_ORDER) -> dict[str, dict[str, int]]:
    """Counts ``{context: {symbol: n}}`` of orders 0..max_order; a context is its symbols joined by ',' ('' = order 0)."""
    counts: dict[str, dict[str, int]] = {}
    for seq in sequences:
        seq = [int(s) for s in seq]
        for i, sym in enumerate(seq):
            for order in range(0, min(max_order, i) + 1):
                ctx = ",".join(str(s) for s in seq[i - order : i])
                row = counts.setdefault(ctx, {})
                row[str(sym)] = row.get(str(sym), 0) + 1
    return counts


class PPM:
    """Blended PPM-C predictions from n-gram counts; every seen context's distribution is precomputed."""

    def __init__(self, counts: dict[str, dict[str, int]], n_symbols: int):
        self.n_symbols = int(n_symbols)
        self.max_order = max((len(c.split(",")) if c else 0) for c in counts) if counts else 0
        self.dist: dict[tuple[int, ...], np.ndarray] = {}
        uniform = np.full(self.n_symbols, 1.0 / self.n_symbols)
        for ctx_key in sorted(counts, key=lambda c: (c.count(",") + (1 if c else 0), c)):
            ctx = tuple(int(s) for s in ctx_key.split(",")) if ctx_key else ()
            parent = self._lookup(ctx[1:]) if ctx else uniform
            row = np.zeros(self.n_symbols)
            for sym, n in counts[ctx_key].items():
                row[int(sym)] = n
            total, distinct = row.sum(), float((row > 0).sum())
            self.dist[ctx] = (row + distinct * parent) / (total + distinct)
        self.dist.setdefault((), uniform)
        self.entropy = {ctx: float(-(p * np.log2(p)).sum()) for ctx, p in self.dist.items()}

    def _lookup(self, ctx: tuple[int, ...]) -> np.ndarray:
        while ctx not in self.dist:
            ctx = ctx[1:]
        return self.dist[ctx]

    def information(self, seq: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Per-symbol information content and predictive entropy, bits, two float64 arrays of len(seq)."""
        ic = np.empty(len(seq))
        ent = np.empty(len(seq))
        seq = [int(s) for s in seq]
        for i, sym in enumerate(seq):
            ctx = tuple(seq[max(0, i - self.max_order) : i])
            while ctx not in self.dist:
                ctx = ctx[1:]
            ic[i] = -math.log2(self.dist[ctx][sym])
            ent[i] = self.entropy[ctx]
        return ic, ent


class ExpectancyModel:
    """The frozen interval and IOI models; ``information(pitches, onsets)`` gives per-note IC and entropy."""

    def __init__(self, payload: dict):
        if payload.get("version") != VERSION:
            raise ValueError(
                f"Expectancy model version {payload.get('version')} != {VERSION}; regenerate it with "
                "`python -m rater.data.expectancy`."
            )
        self.payload = payload
        self.interval = PPM(payload["counts"]["interval"], INTERVAL_SYMBOLS)
        self.ioi = PPM(payload["counts"]["ioi"], IOI_SYMBOLS)
        self.degree = PPM(payload["counts"]["degree"], DEGREE_SYMBOLS)

    def viewpoints(self, pitches: np.ndarray, onsets: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per-note (IC, entropy) in bits of each viewpoint for notes 2..N, arrays of length N - 1."""
        interval, ioi = melody_symbols(pitches, onsets)
        degree = degree_symbols(pitches, onsets)
        ic_d, h_d = self.degree.information(degree)
        return {
            "interval": self.interval.information(interval),
            "degree": (ic_d[1:], h_d[1:]),
            "ioi": self.ioi.information(ioi),
        }

    def information(self, pitches: np.ndarray, onsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-note IC and entropy (bits, summed over the viewpoints) for notes 2..N, arrays of length N - 1."""
        views = self.viewpoints(pitches, onsets).values()
        return sum(v[0] for v in views), sum(v[1] for v in views)


@lru_cache(maxsize=2)
def load_model(path: str | None = None) -> ExpectancyModel:
    """The shipped, frozen model (``expectancy_v2.json``), parsed once per process."""
    model_path = Path(path) if path else MODEL_PATH
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path} is missing; regenerate it with `python -m rater.data.expectancy`.")
    return ExpectancyModel(json.loads(model_path.read_text()))


def training_melodies(sources: Sequence[str] = TRAINING_SOURCES, cache_dir: Path | None = None) -> list[np.ndarray]:
    """Monophonic top lines ``(pitch, start_q)`` of every tune in ``sources`` (paths under the music21 corpus)."""
    from rater.data import corpus  # noqa: PLC0415 - music21 is slow to import

    melodies = []
    for source in sources:
        if source.split("/")[0] in RESERVED:
            raise ValueError(f"{source} is in a collection reserved for evaluation; it may not train expectancy.")
        path = corpus.corpus_root() / source
        pieces = corpus.load_pieces(path, cache_dir) if cache_dir else corpus.parse_file(path)
        for piece in pieces:
            notes = piece.notes[np.lexsort((-piece.notes[:, 0], piece.notes[:, 1]))]
            top = notes[np.r_[True, np.diff(notes[:, 1]) > 0]]  # highest pitch at each onset
            if len(top) >= 3:
                melodies.append(top[:, :2].copy())
    return melodies


def train(sources: Sequence[str] = TRAINING_SOURCES, cache_dir: Path | None = None) -> dict:
    """The JSON-ready frozen model: counts of both viewpoints over the training melodies."""
    import music21  # noqa: PLC0415

    melodies = training_melodies(sources, cache_dir)
    symbols = [melody_symbols(m[:, 0], m[:, 1]) for m in melodies]
    return {
        "version": VERSION,
        "max_order": MAX_ORDER,
        "sources": list(sources),
        "music21": music21.__version__,
        "melodies": len(melodies),
        "notes": int(sum(len(m) for m in melodies)),
        "counts": {
            "interval": count_ngrams([s[0] for s in symbols]),
            "ioi": count_ngrams([s[1][1:] for s in symbols]),  # the first IOI symbol has no predecessor
            "degree": count_ngrams([degree_symbols(m[:, 0], m[:, 1]) for m in melodies]),
        },
    }


def serialise(payload: dict) -> bytes:
    """Canonical bytes (sorted keys, no spaces): the same model gives the same file."""
    return (json.dumps(payload, sort_keys=True, separators=(",", ":")) + "\n").encode()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the frozen expectancy model of gold v2 (once).")
    parser.add_argument("--out", type=Path, default=MODEL_PATH, help="where to write the model JSON")
    parser.add_argument("--cache-dir", type=Path, default=None, help="parsed-note cache (default: parse afresh)")
    args = parser.parse_args(argv)
    from studio.files import atomic_path  # noqa: PLC0415

    payload = train(cache_dir=args.cache_dir)
    with atomic_path(args.out) as tmp:
        tmp.write_bytes(serialise(payload))
    print(f"{args.out}: {payload['melodies']} melodies, {payload['notes']} notes from {', '.join(payload['sources'])}")


if __name__ == "__main__":
    main()
