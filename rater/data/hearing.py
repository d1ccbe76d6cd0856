"""What the v2 simulated listeners hear in time: melodic features of transcribed notes (gold v2).

All functions are pure. A melody is the *skyline* of the transcribed notes (the highest pitch at each onset),
as arrays ``pitches`` (N,) MIDI numbers and ``onsets`` (N,) seconds, ascending. Every formula is written out
in ``docs/listeners.md``.
"""

from __future__ import annotations

import numpy as np

from rater.data.expectancy import ExpectancyModel

MELODY_FEATURES = (
    "ic",  # mean information content per note (bits) under the frozen expectancy model
    "entropy",  # mean predictive entropy per note (bits) under the same model
    "tonal",  # mean correlation of 2-s windows' pitch-class histograms with the clip's best key profile
    "motif",  # fraction of interval bigrams (three-note shapes) that already occurred earlier in the melody
    "meter",  # fraction of inter-onset intervals within 10 % of a whole multiple of the best tatum
    "leaps",  # fraction of intervals larger than 7 semitones
    "repeats",  # fraction of intervals that repeat the pitch
    "steps",  # fraction of intervals of 1 or 2 semitones (conjunct motion)
    "range",  # pitch range of the melody, semitones
    "density",  # log2 of onsets per second
    "polyphony",  # mean transcribed notes per onset (1 = a single line)
    "roughness",  # mean sensory roughness of the spectrum just after each onset (transcribe.Transcriber.roughness)
)
MELODIC = ("ic", "entropy", "motif", "leaps", "repeats", "steps", "range")  # judged on the melody line only
MIN_NOTES = 4  # fewer notes than this is not a melody: the features take their "unmusical" values
TONAL_WINDOW, TONAL_HOP = 2.0, 1.0  # seconds
MOTIF_N = 2  # intervals per motif (a three-note shape)
TATUM_RANGE = (0.1, 1.2)  # seconds
GRID_TOLERANCE = 0.1  # of a tatum
# Krumhansl & Kessler (1982) probe-tone profiles, C major and C minor.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _profiles() -> np.ndarray:
    rows = np.array([np.roll(p, k) for p in (MAJOR_PROFILE, MINOR_PROFILE) for k in range(12)])
    rows = rows - rows.mean(axis=1, keepdims=True)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


PROFILES = _profiles()  # (24, 12) z-scored unit rows


def skyline(notes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The melody of notes ``(pitch, onset_s, ...)`` (N, >=2): (pitches, onsets) of the highest pitch at each onset.

    Rows of transcribed notes ``(pitch, onset_s, end_s, melody)`` with ``melody == 0`` are left out first
    (inner voices moving under a held melody note, see ``transcribe.Transcriber``).
    """
    notes = np.asarray(notes, dtype=np.float64)
    notes = notes.reshape(-1, notes.shape[-1]) if notes.ndim == 2 else notes.reshape(-1, 3)
    if notes.shape[1] >= 4:
        notes = notes[notes[:, 3] > 0]
    if len(notes) == 0:
        return np.zeros(0), np.zeros(0)
    order = np.lexsort((-notes[:, 0], notes[:, 1]))
    top = notes[order]
    top = top[np.r_[True, np.diff(top[:, 1]) > 1e-3]]
    return top[:, 0].copy(), top[:, 1].copy()


def _key_correlations(hist: np.ndarray) -> np.ndarray:
    """Pearson r of a (W, 12) pitch-class histogram with the 24 key profiles, (W, 24); 0 for flat rows."""
    centred = hist - hist.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    return np.where(norm > 1e-9, centred @ PROFILES.T / np.maximum(norm, 1e-9), 0.0)


def tonal_stability(pitches: np.ndarray, onsets: np.ndarray, end: float) -> float:
    """Mean over 2-s windows (hop 1 s, >= 2 notes) of r(window histogram, the clip's best key), in [-1, 1].

    ``pitches``/``onsets`` (N,) are all transcribed notes (every voice), sorted by onset. Each note weighs
    its time to the next distinct onset (at most 1 s). High when every stretch of the
    clip stays in one key; low when the key wanders or no key fits.
    """
    distinct = np.unique(onsets)
    following = np.r_[distinct[1:], max(end, distinct[-1] + 0.25)]
    weights = np.minimum(following[np.searchsorted(distinct, onsets)] - onsets, 1.0)
    pcs = np.round(pitches).astype(int) % 12
    total = np.bincount(pcs, weights, minlength=12)[None]
    key = int(np.argmax(_key_correlations(total)[0]))
    starts = np.arange(0.0, max(end - TONAL_WINDOW, 0.0) + 1e-9, TONAL_HOP)
    rows = []
    for start in starts:
        inside = (onsets >= start) & (onsets < start + TONAL_WINDOW)
        if inside.sum() >= 2:
            rows.append(np.bincount(pcs[inside], weights[inside], minlength=12))
    if not rows:
        rows = [total[0]]
    return float(_key_correlations(np.array(rows))[:, key].mean())


def motif_repetition(interval: np.ndarray) -> float:
    """Fraction of interval MOTIF_N-grams that occurred earlier in the same melody, in [0, 1]."""
    joint = interval.tolist()
    grams = [tuple(joint[i : i + MOTIF_N]) for i in range(len(joint) - MOTIF_N + 1)]
    if not grams:
        return 0.0
    seen, repeats = set(), 0
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams)


def metric_regularity(onsets: np.ndarray) -> float:
    """Fraction of IOIs within GRID_TOLERANCE of a whole multiple (1..8) of the best tatum, in [0, 1].

    Tatum candidates are the IOIs and their halves within TATUM_RANGE; the best is the largest candidate
    whose fit is within 0.05 of the best fit (so a tiny tatum that fits anything does not win).
    """
    ioi = np.diff(onsets)
    ioi = ioi[ioi > 0.03]
    if len(ioi) < 2:
        return 0.0
    candidates = np.unique(np.round(np.r_[ioi, ioi / 2], 3))
    candidates = candidates[(candidates >= TATUM_RANGE[0]) & (candidates <= TATUM_RANGE[1])]
    if len(candidates) == 0:
        return 0.0
    ratio = ioi[None, :] / candidates[:, None]
    multiple = np.clip(np.round(ratio), 1, 8)
    fit = (np.abs(ratio - multiple) <= GRID_TOLERANCE * multiple ** 0.5).mean(axis=1)
    good = candidates[fit >= fit.max() - 0.05]
    return float(fit[candidates == good.max()][0])


def melody_features(notes: np.ndarray, duration: float, model: ExpectancyModel, roughness: float = 0.0) -> np.ndarray:
    """MELODY_FEATURES of transcribed notes ``(pitch, onset_s, end_s[, melody])`` (N, 3 or 4) in ``duration`` s.

    Returns float64 of shape (len(MELODY_FEATURES),). With fewer than MIN_NOTES onsets the clip has no
    melody and gets UNMUSICAL (surprising, keyless, unmetered, no motifs, no range).
    """
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, np.shape(notes)[-1] if np.ndim(notes) == 2 else 3)
    pitches, onsets = skyline(notes)
    all_onsets = np.unique(notes[:, 1])
    duration = max(float(duration), 1e-3)
    density = np.log2(max(len(all_onsets), 0.5) / duration)
    polyphony = len(notes) / max(len(all_onsets), 1)
    if len(pitches) < MIN_NOTES:
        return np.array([*UNMUSICAL[:-3], density, polyphony, roughness])
    ic, entropy = model.information(pitches, onsets)
    steps = np.abs(np.diff(pitches))
    from rater.data.expectancy import melody_symbols  # noqa: PLC0415 - local to keep the import list short

    interval, _ = melody_symbols(pitches, onsets)
    return np.array(
        [
            float(ic.mean()),
            float(entropy.mean()),
            tonal_stability(notes[:, 0], notes[:, 1], duration),
            motif_repetition(interval),
            metric_regularity(all_onsets),
            float((steps > 7).mean()),
            float((steps == 0).mean()),
            float(((steps >= 1) & (steps <= 2)).mean()),
            float(pitches.max() - pitches.min()),
            float(density),
            float(polyphony),
            float(roughness),
        ]
    )


# Values for clips with no melody: very surprising, no key, no motif, no meter, all leaps, no steps, no range.
UNMUSICAL = np.array([20.0, 7.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 1.0, 0.0])
