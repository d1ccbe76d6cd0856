"""Listening copies: what a person hears, rendered apart from what the rater hears.

The rater scores audio at its own sample rate (16 kHz by default) and at the renderer's fixed gain; at that
gain a piano melody sits near -42 LUFS, close to silence at a normal playback volume. A *listening copy* of
the same piece is a second render, for people only: 44.1 kHz through the same offline FluidSynth renderer
(``studio.synth``: same soundfont, programs, note times and velocities), then one gain (no compression, no
limiting: the dynamics inside the piece are untouched) that brings it to -16 LUFS integrated loudness
(ITU-R BS.1770-4, measured with ``pyloudnorm``), unless that would put its true peak above -1 dBFS.

**The peak ceiling wins.** True peak is the peak of a 4x oversampled copy (``scipy.signal.resample_poly``,
BS.1770's true-peak method; pyloudnorm has none). When -16 LUFS would put it above -1 dBFS, the gain is
lowered until the true peak is -1 dBFS and the copy is quieter than -16 LUFS; ``Level`` says by how much.
(Measured in one evaluate run: PianoEnv melodies have a peak-to-loudness ratio near 13 dB and all reach -16
LUFS with a true peak of -3.5 to -2 dBFS; 2 of 16 default-data corpus excerpts were peak-limited, to -17.7 and
-18.6 LUFS.)

Listening copies are never scored: scoring uses the rater's own render. Audio with no notes (dreams, dataset
clips) is resampled to 44.1 kHz (polyphase, ``resample_poly``) and then levelled the same way; it keeps the
bandwidth it was made with (8 kHz at 16 kHz).

Imports nothing from the project outside ``studio``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import pyloudnorm
from scipy.signal import resample_poly

from studio.synth import Renderer

LISTEN_RATE = 44100  # Hz
TARGET_LUFS = -16.0  # integrated loudness, LUFS (common for downloads; streaming services use about -14)
PEAK_CEILING_DBFS = -1.0  # true-peak ceiling, dBFS of the 4x oversampled signal
OVERSAMPLE = 4
MIN_SECONDS = 0.4  # one BS.1770 gating block: shorter audio has no integrated loudness


@dataclass(frozen=True)
class Level:
    """How a listening copy was levelled: loudness and true peak before and after, and the gain applied (dB).

    ``lufs_after`` is ``TARGET_LUFS`` unless the peak ceiling lowered the gain (``peak_limited``); silent audio
    has ``lufs_before = -inf`` and gain 0.
    """

    lufs_before: float
    true_peak_before: float
    gain_db: float
    lufs_after: float
    true_peak_after: float
    peak_limited: bool


def _mono_float64(wave: np.ndarray) -> np.ndarray:
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1 or wave.size == 0:
        raise ValueError(f"Listening copies need non-empty mono audio (1-D), got shape {wave.shape}.")
    if not np.isfinite(wave).all():
        raise ValueError("Audio contains NaN or inf samples; a listening copy of it would be noise. Fix the source.")
    return wave


def db(linear: float) -> float:
    """Amplitude ratio -> dB (-inf for 0)."""
    return 20.0 * math.log10(linear) if linear > 0 else -math.inf


def true_peak_dbfs(wave: np.ndarray) -> float:
    """Peak of a 4x oversampled copy of mono ``wave`` (any rate), in dBFS (1.0 = 0 dBFS); -inf for silence."""
    oversampled = resample_poly(_mono_float64(wave).astype(np.float32), OVERSAMPLE, 1)  # float32: 25 % faster
    return db(float(np.abs(oversampled).max()))


def loudness_lufs(wave: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, gated) of mono ``wave`` at ``sample_rate`` Hz, in LUFS.

    -inf for silence. Raises ValueError for audio shorter than one 0.4 s gating block.
    """
    wave = _mono_float64(wave)
    if wave.size < MIN_SECONDS * sample_rate:
        raise ValueError(f"Audio of {wave.size / sample_rate:.3f} s is shorter than one {MIN_SECONDS} s BS.1770 "
                         "block: its loudness is undefined. Render at least 0.4 s.")
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(wave))


def normalise(wave: np.ndarray, sample_rate: int, target_lufs: float = TARGET_LUFS,
              ceiling_dbfs: float = PEAK_CEILING_DBFS) -> tuple[np.ndarray, Level]:
    """One gain for mono ``wave`` (any rate): ``target_lufs`` integrated, true peak at most ``ceiling_dbfs``.

    Returns float32 audio of the same shape and its ``Level``. The ceiling wins over the target. Silence is
    returned unchanged (no gain brings it to a loudness).
    """
    wave = _mono_float64(wave)
    lufs, peak = loudness_lufs(wave, sample_rate), true_peak_dbfs(wave)
    if not math.isfinite(lufs):
        return wave.astype(np.float32), Level(lufs, peak, 0.0, lufs, peak, False)
    gain_db = target_lufs - lufs
    limited = peak + gain_db > ceiling_dbfs
    if limited:
        gain_db = ceiling_dbfs - peak
    out = wave * 10.0 ** (gain_db / 20.0)
    return out.astype(np.float32), Level(lufs, peak, gain_db, lufs + gain_db, peak + gain_db, limited)


def resample(wave: np.ndarray, from_rate: int, to_rate: int = LISTEN_RATE) -> np.ndarray:
    """Mono ``wave`` from ``from_rate`` to ``to_rate`` Hz (polyphase, exact ratio), as float64."""
    wave = _mono_float64(wave)
    if from_rate == to_rate:
        return wave
    g = math.gcd(int(from_rate), int(to_rate))
    return resample_poly(wave, int(to_rate) // g, int(from_rate) // g)


def listening_copy(wave: np.ndarray, sample_rate: int) -> tuple[np.ndarray, Level]:
    """A listening copy of audio that has no notes to re-render (dreams, dataset clips): mono ``wave`` at
    ``sample_rate`` Hz -> float32 at ``LISTEN_RATE`` Hz, levelled by ``normalise``."""
    return normalise(resample(wave, sample_rate), LISTEN_RATE)


class ListeningRenderer:
    """Renders pieces for people: ``render_midi(pm)`` -> (float32 mono at 44.1 kHz, ``Level``).

    Owns a 44.1 kHz ``studio.synth.Renderer`` (same soundfont, gain and effects as PianoEnv's by default),
    created on first use. Holds C state: one per process, never pickled.
    """

    def __init__(self, soundfont: str | os.PathLike | None = None, tail_seconds: float = 0.5):
        self.soundfont, self.tail_seconds = soundfont, tail_seconds
        self.sample_rate = LISTEN_RATE
        self._renderer: Renderer | None = None

    def render_midi(self, pm) -> tuple[np.ndarray, Level]:
        """A ``pretty_midi.PrettyMIDI`` rendered at 44.1 kHz and levelled (see the module docstring)."""
        if self._renderer is None:
            self._renderer = Renderer(self.soundfont, sample_rate=LISTEN_RATE)
        return normalise(self._renderer.render_midi(pm, tail_seconds=self.tail_seconds), LISTEN_RATE)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
