"""Gold v2: simulated listeners who hear melody in time, not only time-averaged spectra.

Each clip is heard twice: the round-1 spectral features (``listeners.FeatureExtractor``: clarity,
consonance, noisiness, register, loudness, silence, ...) and the notes a transcriber finds in it
(``transcribe.Transcriber``), from which ``hearing.melody_features`` computes expectancy (information content
and entropy under a frozen IDyOM-like model), tonal stability over time, motif repetition, metric
regularity, and the guards against hacks measured in the v1 oracle (leap rate, repeated notes, tiny range,
note density). The listeners remain simulated; every number is documented in ``docs/listeners.md``.
"""

from __future__ import annotations

import numpy as np

from rater.data import hearing
from rater.data.expectancy import load_model
from rater.data.listeners import FEATURE_NAMES, FeatureExtractor, Taste
from rater.data.transcribe import Transcriber

FEATURE_NAMES_V2 = (*FEATURE_NAMES, *hearing.MELODY_FEATURES)

# Centres are the medians measured on PianoEnv renders of train-split corpus top lines (docs/listeners.md);
# scales about their spread. IC and entropy sit on an inverted U (Gold et al. 2019): each listener prefers
# an intermediate surprise near the corpus's, with an individual ideal.
TASTES_V2 = (
    # spectral (v1) features, kept: they hear noise, silence, roughness, register, level, and (chroma) key
    Taste("clarity", "more", centre=0.35, scale=0.15, weight=0.3),
    Taste("key_fit", "more", centre=0.65, scale=0.10, weight=0.6),
    Taste("consonance", "more", centre=0.60, scale=0.10, weight=1.5),
    Taste("rhythm", "more", centre=0.50, scale=0.25, weight=0.4),
    Taste("noisiness", "more", centre=-3.0, scale=1.5, weight=-2.0),
    Taste("silence", "more", centre=0.25, scale=0.20, weight=-1.0),
    Taste("register", "sweet", centre=9.2, scale=1.0, weight=0.4, ideal_sd=0.3),
    Taste("loudness", "sweet", centre=-3.5, scale=1.5, weight=0.3, ideal_sd=0.3),
    Taste("repetition", "sweet", centre=0.35, scale=0.30, weight=0.3, ideal_sd=0.4),
    Taste("roughness", "ceiling", centre=0.0095, scale=0.002, weight=2.0),
    # melody in time: expectancy on an inverted U, key held over time, motifs, a beat
    Taste("ic", "sweet", centre=7.0, scale=2.5, weight=1.2, ideal_sd=0.3),
    Taste("entropy", "sweet", centre=6.1, scale=0.4, weight=0.2, ideal_sd=0.3),
    Taste("tonal", "more", centre=0.45, scale=0.15, weight=1.0),
    Taste("motif", "sweet", centre=0.25, scale=0.20, weight=0.4, ideal_sd=0.3),
    Taste("meter", "more", centre=0.80, scale=0.15, weight=0.5),
    Taste("steps", "more", centre=0.40, scale=0.15, weight=1.0),
    # guards (one-sided): too many leaps or repeated notes, too small a range; note density on a sweet spot
    Taste("leaps", "ceiling", centre=0.15, scale=0.10, weight=0.8),
    Taste("repeats", "ceiling", centre=0.12, scale=0.08, weight=0.8),
    Taste("range", "floor", centre=10.0, scale=2.0, weight=0.8),
    Taste("density", "sweet", centre=1.5, scale=1.0, weight=0.4, ideal_sd=0.3),
)
SOFT_CLIP = 2.0  # standardised features pass through SOFT_CLIP * tanh(x / SOFT_CLIP) before sweet spots and guards
HARMONIC = ("consonance",)  # judged on chords only
POLY_LOW, POLY_HIGH = 1.2, 2.0
MIN_CONFIDENCE = 0.3  # notes per onset: a single line ... too dense to follow one line
BIAS_MEAN_V2 = 0.0  # each listener's baseline inclination to like, in logits (v1: listeners.BIAS_MEAN)


def melody_confidence(polyphony: np.ndarray) -> np.ndarray:
    """How well a listener follows one melody line, in [MIN_CONFIDENCE, 1]: 1 up to POLY_LOW notes per onset,
    falling linearly to MIN_CONFIDENCE at POLY_HIGH (dense textures never hide the top line completely)."""
    share = np.clip((POLY_HIGH - np.asarray(polyphony, float)) / (POLY_HIGH - POLY_LOW), 0.0, 1.0)
    return MIN_CONFIDENCE + (1.0 - MIN_CONFIDENCE) * share


def adjust(x: np.ndarray, features: np.ndarray, tastes: tuple[Taste, ...], names: tuple[str, ...]) -> np.ndarray:
    """Standardised features (N, len(tastes)) as v2 listeners weigh them.

    The melody-line features (``hearing.MELODIC``) shrink towards their centres by ``melody_confidence``
    (in dense polyphony the transcribed top line is not a reliable melody, so it counts as typical), and the
    chord features (HARMONIC: chroma consonance) by ``1 - melody_confidence`` (a single line has no chords), then
    everything passes a soft clip ``SOFT_CLIP * tanh(x / SOFT_CLIP)`` so no single feature can sink a clip
    to 1e-10 (RL keeps a gradient, and degradations stay ordered).
    """
    confidence = melody_confidence(features[:, names.index("polyphony")])
    melodic = np.array([t.name in hearing.MELODIC for t in tastes])
    harmonic = np.array([t.name in HARMONIC for t in tastes])
    x = x.copy()
    x[:, melodic] *= confidence[:, None]
    x[:, harmonic] *= 1.0 - confidence[:, None]
    return SOFT_CLIP * np.tanh(x / SOFT_CLIP)


class FeatureExtractorV2:
    """Waveform -> FEATURE_NAMES_V2: the spectral features, then the melody features of its transcription."""

    def __init__(self, sample_rate: int = 16000):
        self.sample_rate = int(sample_rate)
        self.spectral = FeatureExtractor(self.sample_rate)
        self.transcribe = Transcriber(self.sample_rate)
        self.model = load_model()

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        """Features of one mono waveform, float64 of shape (len(FEATURE_NAMES_V2),)."""
        spectral = self.spectral(wave)  # validates the waveform
        notes, roughness = self.transcribe.analyse(np.asarray(wave, dtype=np.float32))
        melody = hearing.melody_features(notes, len(wave) / self.sample_rate, self.model, roughness)
        return np.concatenate([spectral, melody])
