"""Degradations that make real music worse by a controlled amount, so the rater sees a quality continuum.

Each degradation takes a strength in (0, 1] (0 would be the untouched piece) and a seeded generator, so a
clip is reproducible from ``(piece, degradation, strength, seed)``. Note-level ones act on note arrays of
shape (N, 4) with columns ``pitch, start_s, end_s, velocity``; audio-level ones act on the rendered mono
waveform; ``detune`` acts at render time (it splits the notes over two detuned voices, see ``detune_split``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

NoteArray = np.ndarray  # (N, 4) float64: pitch, start_s, end_s, velocity

LOWEST_PITCH, HIGHEST_PITCH = 21, 108  # the piano's range; folded into by register shifts


def _copy(notes: NoteArray) -> NoteArray:
    return np.array(notes, dtype=np.float64, copy=True).reshape(-1, 4)


def _chosen(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    return rng.random(n) < fraction


def random_pitch(notes: NoteArray, strength: float, rng: np.random.Generator) -> NoteArray:
    """Replace a ``strength`` fraction of pitches by uniform random ones over five octaves."""
    out = _copy(notes)
    pick = _chosen(len(out), strength, rng)
    out[pick, 0] = rng.integers(36, 97, size=int(pick.sum()))
    return out


def broken_rhythm(notes: NoteArray, strength: float, rng: np.random.Generator) -> NoteArray:
    """Jitter onsets (sd up to 0.3 s) and scale durations randomly, ignoring the beat."""
    out = _copy(notes)
    duration = out[:, 2] - out[:, 1]
    out[:, 1] = np.maximum(0.0, out[:, 1] + rng.normal(0.0, 0.3 * strength, len(out)))
    out[:, 2] = out[:, 1] + duration * np.exp(rng.normal(0.0, 1.2 * strength, len(out)))
    return out


def wrong_key(notes: NoteArray, strength: float, rng: np.random.Generator) -> NoteArray:
    """Shift a ``strength`` fraction of notes by a semitone or a tritone, out of the key."""
    out = _copy(notes)
    pick = _chosen(len(out), strength, rng)
    out[pick, 0] += rng.choice([-6, -1, 1, 6], size=int(pick.sum()))
    return out


def clusters(notes: NoteArray, strength: float, rng: np.random.Generator) -> NoteArray:
    """Add 2-4 adjacent-semitone neighbours to a ``strength`` fraction of notes."""
    out = _copy(notes)
    extra = []
    for row in out[_chosen(len(out), strength, rng)]:
        for step in range(1, int(rng.integers(2, 5)) + 1):
            extra.append((row[0] + step, row[1], row[2], row[3]))
    return np.vstack([out, np.array(extra).reshape(-1, 4)]) if extra else out


def tempo(notes: NoteArray, strength: float, rng: np.random.Generator) -> NoteArray:
    """Play up to 4x faster or slower than written."""
    out = _copy(notes)
    factor = 4.0 ** (strength * rng.choice([-1.0, 1.0]))
    out[:, 1:3] *= factor
    return out


def register(notes: NoteArray, strength: float, rng: np.random.Generator) -> NoteArray:
    """Transpose up or down by up to three octaves; notes off the keyboard fold back by octaves."""
    out = _copy(notes)
    out[:, 0] += rng.choice([-1, 1]) * int(round(36 * strength))
    while (out[:, 0] < LOWEST_PITCH).any() or (out[:, 0] > HIGHEST_PITCH).any():
        out[out[:, 0] < LOWEST_PITCH, 0] += 12
        out[out[:, 0] > HIGHEST_PITCH, 0] -= 12
    return out


def dynamics(notes: NoteArray, strength: float, rng: np.random.Generator) -> NoteArray:
    """Push velocities towards a whisper or a hammering fortissimo, with erratic accents."""
    out = _copy(notes)
    target = 127.0 if rng.random() < 0.5 else 4.0
    erratic = rng.uniform(1, 127, len(out))
    out[:, 3] = (1 - strength) * out[:, 3] + strength * (0.6 * target + 0.4 * erratic)
    return out


def note_dropout(notes: NoteArray, strength: float, rng: np.random.Generator) -> NoteArray:
    """Delete up to 90 % of the notes."""
    out = _copy(notes)
    return out[~_chosen(len(out), 0.9 * strength, rng)]


def loop(notes: NoteArray, strength: float, rng: np.random.Generator) -> NoteArray:
    """Repeat one short fragment mechanically (2 s long at low strength, 0.25 s at full) at flat velocity."""
    out = _copy(notes)
    if len(out) == 0:
        return out
    length = 2.0 - 1.75 * strength
    start = out[int(rng.integers(0, max(1, len(out) // 2))), 1]
    fragment = out[(out[:, 1] >= start) & (out[:, 1] < start + length)]
    fragment[:, 1:3] -= start
    fragment[:, 2] = np.minimum(fragment[:, 2], length)
    fragment[:, 3] = 90.0
    end = out[:, 2].max() - out[:, 1].min()
    copies = [fragment + np.array([0.0, k * length, k * length, 0.0]) for k in range(int(np.ceil(end / length)))]
    return np.vstack(copies)


def detune_split(notes: NoteArray, strength: float, rng: np.random.Generator) -> list[tuple[NoteArray, float]]:
    """Split notes into two groups rendered up to +-60 cents apart, so harmonies beat and sour."""
    out = _copy(notes)
    upper = rng.random(len(out)) < 0.5
    cents = 60.0 * strength
    return [(out[upper], cents), (out[~upper], -cents)]


def noise(wave: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Add white noise at a signal-to-noise ratio from 30 dB (weak) down to -10 dB (full strength)."""
    rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2))) if wave.size else 0.0
    snr_db = 30.0 - 40.0 * strength
    level = (rms if rms > 1e-4 else 0.05) * 10 ** (-snr_db / 20)
    return np.clip(wave + rng.normal(0.0, level, wave.shape), -1.0, 1.0).astype(np.float32)


def audio_dropout(wave: np.ndarray, strength: float, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Silence random 50-400 ms gaps until up to 80 % of the clip is gone."""
    out = wave.astype(np.float32, copy=True)
    target = int(0.8 * strength * len(out))
    muted = np.zeros(len(out), dtype=bool)
    while muted.sum() < target:
        width = int(rng.uniform(0.05, 0.4) * sample_rate)
        start = int(rng.integers(0, max(1, len(out) - width)))
        muted[start : start + width] = True
    out[muted] = 0.0
    return out


NOTE_DEGRADATIONS: dict[str, Callable[[NoteArray, float, np.random.Generator], NoteArray]] = {
    "random_pitch": random_pitch,
    "broken_rhythm": broken_rhythm,
    "wrong_key": wrong_key,
    "clusters": clusters,
    "tempo": tempo,
    "register": register,
    "dynamics": dynamics,
    "note_dropout": note_dropout,
    "loop": loop,
}
AUDIO_DEGRADATIONS = ("noise", "audio_dropout")
RENDER_DEGRADATIONS = ("detune",)
DEGRADATIONS: tuple[str, ...] = (*NOTE_DEGRADATIONS, *RENDER_DEGRADATIONS, *AUDIO_DEGRADATIONS)
CLEAN = "none"


def check_degradation(name: str, strength: float) -> None:
    """Raise ValueError naming the problem when ``name`` or ``strength`` is not usable."""
    if name != CLEAN and name not in DEGRADATIONS:
        raise ValueError(f"Unknown degradation {name!r}; choose one of {(CLEAN, *DEGRADATIONS)}.")
    if name == CLEAN and strength != 0.0:
        raise ValueError(f"The clean clip has strength 0, got {strength}.")
    if name != CLEAN and not 0.0 < strength <= 1.0:
        raise ValueError(f"Degradation strength must be in (0, 1], got {strength} for {name!r}.")


def degrade_audio(
    wave: np.ndarray, name: str, strength: float, rng: np.random.Generator, sample_rate: int
) -> np.ndarray:
    """Apply an audio-level degradation by name (``noise`` or ``audio_dropout``)."""
    if name == "noise":
        return noise(wave, strength, rng)
    if name == "audio_dropout":
        return audio_dropout(wave, strength, rng, sample_rate)
    raise ValueError(f"{name!r} is not an audio-level degradation; choose one of {AUDIO_DEGRADATIONS}.")
