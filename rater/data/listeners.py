"""A simulated listener population: the "gold" taste behind the default dataset's plays and likes.

Nobody's real likes are available offline, so the default dataset's counts come from simulated listeners
who hear the waveform itself. Each listener weighs a handful of perceptual features (tonal clarity, key fit,
consonance, rhythmic regularity, noisiness, register, loudness, silence, repetition) with individual weights
and ideal points drawn from a seeded distribution. Because the gold score of *any* audio is known, it measures how
well the rater and the generators really do. Every formula is written out in ``docs/listeners.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from studio import SAMPLE_RATE

FRAME = 1024  # STFT frame at 16 kHz: 64 ms; 15.6 Hz bins separate semitones above ~180 Hz (CHROMA_BAND)
HOP = 512  # 32 ms
SILENCE_DB = -70.0  # frames quieter than this (RMS, dBFS) are silent, whatever the clip's level
SILENCE_RANGE_DB = 40.0  # ... and so are frames this far below the clip's loudest frame
MIN_FLUX_STD = 0.05  # onset-strength spread (log-power units) below which a clip has no onsets at all
EPS = 1e-10
CHROMA_BAND = (180.0, 4000.0)  # Hz range folded into the 12 pitch classes
RHYTHM_LAGS = (0.25, 1.5)  # seconds: beat periods from 40 to 240 BPM
REPETITION_LAGS = (0.5, 4.0)  # seconds: motif and phrase lengths
FEATURE_NAMES = (
    "clarity",  # chroma peakiness: 1 = one pitch class holds all the energy, 0 = flat chroma
    "key_fit",  # max Pearson correlation of mean chroma with the 24 Krumhansl-Kessler key profiles
    "consonance",  # 1 - mean interval roughness between the pitch classes sounding together in a frame
    "rhythm",  # peak normalised autocorrelation of onset strength at beat-like lags
    "noisiness",  # log10 of the mean spectral flatness of the sounding frames
    "register",  # log2 of the mean spectral centroid (Hz) of the sounding frames
    "loudness",  # RMS level of the sounding frames, dBFS / 10
    "silence",  # fraction of frames below SILENCE_DB
    "repetition",  # max over lags of mean chroma correlation between sounding frames that far apart
)
# Krumhansl & Kessler (1982) probe-tone profiles, C major and C minor.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
# Roughness of each interval class 0..6 (unison, semitone, tone, minor 3rd, major 3rd, 4th, tritone).
INTERVAL_ROUGHNESS = np.array([0.0, 1.0, 0.5, 0.1, 0.05, 0.0, 0.6])


def _roughness_matrix() -> np.ndarray:
    """(12, 12) roughness between pitch classes i and j, by interval class min(|i-j|, 12-|i-j|)."""
    distance = np.abs(np.subtract.outer(np.arange(12), np.arange(12)))
    return INTERVAL_ROUGHNESS[np.minimum(distance, 12 - distance)]


def _key_profiles() -> np.ndarray:
    """The 24 key profiles (12 major, 12 minor rotations), z-scored rows, shape (24, 12)."""
    rows = [np.roll(profile, k) for profile in (MAJOR_PROFILE, MINOR_PROFILE) for k in range(12)]
    profiles = np.array(rows)
    profiles -= profiles.mean(axis=1, keepdims=True)
    return profiles / np.linalg.norm(profiles, axis=1, keepdims=True)


def _chroma_matrix(sample_rate: int) -> np.ndarray:
    """(12, FRAME//2+1) matrix averaging the FFT bins in CHROMA_BAND of each pitch class (C=0).

    Averaging (not summing) keeps white noise's chroma flat although pitch classes own different bin counts.
    """
    freqs = np.fft.rfftfreq(FRAME, 1.0 / sample_rate)
    matrix = np.zeros((12, freqs.size))
    band = (freqs >= CHROMA_BAND[0]) & (freqs <= min(CHROMA_BAND[1], sample_rate / 2))
    midi = 69 + 12 * np.log2(freqs[band] / 440.0)
    matrix[np.round(midi).astype(int) % 12, np.flatnonzero(band)] = 1.0
    return matrix / matrix.sum(axis=1, keepdims=True)


class FeatureExtractor:
    """Waveform -> the perceptual features in FEATURE_NAMES, one STFT per clip, numpy only."""

    def __init__(self, sample_rate: int = SAMPLE_RATE):
        if sample_rate < 8000:
            raise ValueError(f"sample_rate must be at least 8000 Hz for the chroma band, got {sample_rate}.")
        self.sample_rate = int(sample_rate)
        self.window = np.hanning(FRAME).astype(np.float32)
        self.chroma_matrix = _chroma_matrix(self.sample_rate)
        self.key_profiles = _key_profiles()
        self.roughness = _roughness_matrix()
        self.freqs = np.fft.rfftfreq(FRAME, 1.0 / self.sample_rate)
        frames_per_second = self.sample_rate / HOP
        self.rhythm_lags = tuple(max(1, int(round(s * frames_per_second))) for s in RHYTHM_LAGS)
        self.repetition_lags = tuple(max(1, int(round(s * frames_per_second))) for s in REPETITION_LAGS)

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        """Features of one mono waveform, float64 of shape (len(FEATURE_NAMES),)."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(f"Expected a mono 1-D waveform, got shape {wave.shape}; mix down to mono first.")
        if not np.all(np.isfinite(wave)):
            raise ValueError("Waveform contains NaN or inf; clean it (e.g. np.nan_to_num) before scoring.")
        if wave.size < FRAME:
            wave = np.pad(wave, (0, FRAME - wave.size))
        n_frames = 1 + (wave.size - FRAME) // HOP
        frames = np.lib.stride_tricks.sliding_window_view(wave, FRAME)[::HOP][:n_frames]
        rms = np.sqrt(np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / FRAME)
        level_db = 20 * np.log10(rms + EPS)
        sounding = level_db > max(SILENCE_DB, level_db.max() - SILENCE_RANGE_DB)
        silence = 1.0 - sounding.mean()
        if not sounding.any():
            return np.array([0.0, 0.0, 0.0, 0.0, 0.0, np.log2(self.freqs[-1]), SILENCE_DB / 10, 1.0, 0.0])
        spectrum = np.fft.rfft(frames * self.window, axis=1)
        power = spectrum.real**2 + spectrum.imag**2 + EPS
        log_power = np.log(power)
        loud = power[sounding]
        flatness = np.exp(np.mean(log_power[sounding], axis=1)) / np.mean(loud, axis=1)
        centroid = (loud @ self.freqs) / loud.sum(axis=1)
        chroma = power @ self.chroma_matrix.T
        heard = chroma[sounding] / chroma[sounding].sum(axis=1, keepdims=True)
        clarity = (heard.max(axis=1) - 1 / 12) / (11 / 12)
        mean_chroma = heard.mean(axis=0)
        centered = mean_chroma - mean_chroma.mean()
        key_fit = float(np.max(self.key_profiles @ centered) / (np.linalg.norm(centered) + EPS))
        pairs = 1.0 - np.sum(heard**2, axis=1)  # sum over i != j of c_i c_j, since sum(c) = 1
        rough = np.einsum("ni,ij,nj->n", heard, self.roughness, heard) / np.maximum(pairs, EPS)
        return np.array(
            [
                float(clarity.mean()),
                max(key_fit, 0.0),
                float(1.0 - rough.mean()),
                self._rhythm(log_power),
                float(np.log10(flatness.mean())),
                float(np.log2(centroid.mean() + EPS)),
                float(level_db[sounding].mean() / 10),
                float(silence),
                self._repetition(chroma, sounding),
            ]
        )

    def _rhythm(self, log_power: np.ndarray) -> float:
        """Peak of the normalised onset-strength autocorrelation over RHYTHM_LAGS (0 when too short)."""
        flux = np.maximum(np.diff(log_power, axis=0), 0.0).mean(axis=1)
        lo, hi = self.rhythm_lags
        if flux.size <= lo + 2:
            return 0.0
        flux = flux - flux.mean()
        if flux.std() < MIN_FLUX_STD:
            return 0.0
        energy = float(flux @ flux)
        lags = range(lo, min(hi, flux.size - 2) + 1)
        return max(0.0, max(float(flux[:-lag] @ flux[lag:]) / energy * flux.size / (flux.size - lag) for lag in lags))

    def _repetition(self, chroma: np.ndarray, sounding: np.ndarray) -> float:
        """Max over REPETITION_LAGS of mean chroma correlation (over pitch classes) of frames that far apart."""
        centered = chroma - chroma.mean(axis=1, keepdims=True)
        unit = centered / (np.linalg.norm(centered, axis=1, keepdims=True) + EPS) * sounding[:, None]
        similarity = unit @ unit.T  # silent frames are zero rows, so they add nothing
        weight = sounding.astype(np.float64)
        pairs = np.correlate(weight, weight, "full")[len(weight) - 1 :]  # sounding pairs at each lag
        lo, hi = self.repetition_lags
        lags = [lag for lag in range(lo, min(hi, len(unit) - 1) + 1) if pairs[lag] >= 2]
        means = [np.trace(similarity, offset=lag) / pairs[lag] for lag in lags]
        return max(0.0, *means) if means else 0.0


@dataclass(frozen=True)
class Taste:
    """How the population hears one feature: centre and scale that standardise it, and the taste around them.

    ``kind="more"``: utility ``w * tanh((f - centre) / scale)`` (saturating, so no feature can be pushed to
    infinity for unbounded gain); a negative ``weight`` means less is better. ``kind="sweet"``: utility
    ``-w * (x - ideal)^2`` with ``x = (f - centre) / scale`` and each listener's ``ideal ~ N(0, ideal_sd)``.
    ``kind="ceiling"``: utility ``-w * max(0, x)^2`` (free below the centre, a growing penalty above it);
    ``kind="floor"``: ``-w * max(0, -x)^2`` (a penalty below the centre). They guard against hacks (leaps,
    repeated notes, a tiny range) without rewarding the opposite extreme.
    Each listener's ``w = |weight| * LogNormal(0, WEIGHT_SIGMA)``.
    """

    name: str
    kind: str
    centre: float
    scale: float
    weight: float
    ideal_sd: float = 0.0


TASTES = (
    Taste("clarity", "more", centre=0.35, scale=0.15, weight=0.5),
    Taste("key_fit", "more", centre=0.65, scale=0.10, weight=1.2),
    Taste("consonance", "more", centre=0.60, scale=0.10, weight=1.0),
    Taste("rhythm", "more", centre=0.50, scale=0.25, weight=0.7),
    Taste("noisiness", "more", centre=-3.0, scale=1.0, weight=-1.0),
    Taste("silence", "more", centre=0.25, scale=0.20, weight=-1.0),
    Taste("register", "sweet", centre=9.2, scale=1.0, weight=0.6, ideal_sd=0.3),
    Taste("loudness", "sweet", centre=-3.5, scale=1.5, weight=0.3, ideal_sd=0.3),
    Taste("repetition", "sweet", centre=0.35, scale=0.30, weight=0.4, ideal_sd=0.4),
)
WEIGHT_SIGMA = 0.5  # spread of individual weights (log scale)
BIAS_MEAN, BIAS_SD = -1.5, 0.5  # each listener's baseline inclination to like, in logits
PLAYS_MEDIAN, PLAYS_SIGMA = 60.0, 1.5  # plays ~ LogNormal(ln(median), sigma), rounded, at least 1


def _kinds(tastes: tuple[Taste, ...], kind: str) -> list[int]:
    return [i for i, t in enumerate(tastes) if t.kind == kind]


MORE = tuple(_kinds(TASTES, "more"))
SWEET = tuple(_kinds(TASTES, "sweet"))
FEATURE_ORDER = tuple(FEATURE_NAMES.index(t.name) for t in TASTES)


class ListenerPopulation:
    """Seeded listeners; calling it on waveforms returns the gold score (expected like rate, in [0, 1]).

    ``version=2`` (the default) hears melody in time (transcribed notes, expectancy, key stability, motifs,
    meter, guards against leaps / repeats / tiny range; ``rater.data.listeners_v2``); ``version=1`` is the
    round-1 population of time-averaged spectral features, kept for side-by-side tables.
    """

    def __init__(self, n_listeners: int = 256, seed: int = 0, sample_rate: int = SAMPLE_RATE, version: int = 2):
        if n_listeners < 1:
            raise ValueError(f"n_listeners must be at least 1, got {n_listeners}.")
        if version not in (1, 2):
            raise ValueError(f"version must be 1 (spectral statistics) or 2 (melody in time), got {version}.")
        self.n_listeners = int(n_listeners)
        self.seed = int(seed)
        self.sample_rate = int(sample_rate)
        self.version = int(version)
        if version == 1:
            self.extract = FeatureExtractor(self.sample_rate)
            self.tastes, self.feature_names, stream, bias_mean = TASTES, FEATURE_NAMES, 0x115, BIAS_MEAN
        else:
            from rater.data import listeners_v2  # noqa: PLC0415 - v2 imports this module

            self.extract = listeners_v2.FeatureExtractorV2(self.sample_rate)
            self.tastes, self.feature_names = listeners_v2.TASTES_V2, listeners_v2.FEATURE_NAMES_V2
            stream, bias_mean = 0x2115, listeners_v2.BIAS_MEAN_V2
        tastes = self.tastes
        n_tastes = len(tastes)
        rng = np.random.default_rng([self.seed, stream])
        spread = rng.lognormal(0.0, WEIGHT_SIGMA, (n_tastes, n_listeners))
        strength = np.abs([t.weight for t in tastes])[:, None] * spread
        ideal = np.array([t.ideal_sd for t in tastes])[:, None] * rng.standard_normal((n_tastes, n_listeners))
        self.bias = rng.normal(bias_mean, BIAS_SD, n_listeners)
        sign = np.sign([t.weight for t in tastes])[:, None]
        more, sweet = _kinds(tastes, "more"), _kinds(tastes, "sweet")
        hinges = _kinds(tastes, "ceiling") + _kinds(tastes, "floor")
        self._more, self._sweet, self._hinges = more, sweet, hinges
        self._order = [self.feature_names.index(t.name) for t in tastes]
        self._centre = np.array([t.centre for t in tastes])
        self._scale = np.array([t.scale for t in tastes])
        self._ceiling = np.array([t.kind == "ceiling" for t in tastes])
        # Rows of the (F', L) matrix: tanh terms, x and x^2 of the sweet-spot features, hinge^2 terms, constant.
        self.weights = np.concatenate(
            [
                sign[more] * strength[more],
                2 * strength[sweet] * ideal[sweet],
                -strength[sweet],
                -strength[hinges],
                -(strength[sweet] * ideal[sweet] ** 2).sum(axis=0, keepdims=True) + self.bias[None],
            ]
        )

    def features(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Raw perceptual features, shape (N, len(self.feature_names)), columns in that order."""
        if isinstance(waves, np.ndarray) and waves.ndim == 1:
            raise ValueError("Pass a batch (a list of waveforms or a 2-D array), not a single 1-D waveform.")
        n = len(self.feature_names)
        return np.array([self.extract(w) for w in waves], dtype=np.float64).reshape(len(waves), n)

    def design(self, features: np.ndarray) -> np.ndarray:
        """Standardised utility terms (N, F') so that logits = design @ weights."""
        x = (features[:, self._order] - self._centre) / self._scale
        if self.version == 2:
            from rater.data import listeners_v2  # noqa: PLC0415

            x = listeners_v2.adjust(x, features, self.tastes, self.feature_names)
        hinge = np.where(self._ceiling, np.maximum(x, 0.0), np.maximum(-x, 0.0)) ** 2
        ones = np.ones((len(features), 1))
        sweet = x[:, self._sweet]
        return np.concatenate([np.tanh(x[:, self._more]), sweet, sweet**2, hinge[:, self._hinges], ones], axis=1)

    def like_probabilities(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Each listener's probability of liking each clip, shape (N, n_listeners)."""
        logits = self.design(self.features(waves)) @ self.weights
        return expit(logits)

    def __call__(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Gold score per clip: the mean like probability over all listeners, float32 of shape (N,)."""
        if len(waves) == 0:
            return np.zeros(0, dtype=np.float32)
        return self.like_probabilities(waves).mean(axis=1).astype(np.float32)

    def simulate_counts(self, gold: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Plays (heavy-tailed exposure, independent of quality) and likes ~ Binomial(plays, gold), int64."""
        gold = np.asarray(gold, dtype=np.float64)
        if not np.all((gold >= 0) & (gold <= 1)):
            raise ValueError("gold must lie in [0, 1] (an expected like rate); got values outside or NaN.")
        plays = np.maximum(1, np.round(rng.lognormal(np.log(PLAYS_MEDIAN), PLAYS_SIGMA, gold.shape))).astype(np.int64)
        likes = rng.binomial(plays, gold).astype(np.int64)
        return plays, likes


GOLD_VERSION = 2  # the default listeners (data build, judges, oracle); 1 = round-1 spectral statistics
_DEFAULT: dict[tuple[int, int], ListenerPopulation] = {}


def gold_score(waves: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE, version: int = GOLD_VERSION) -> np.ndarray:
    """Gold score of each waveform under the default population (seed 0, 256 listeners, ``version``)."""
    key = (int(sample_rate), int(version))
    if key not in _DEFAULT:
        _DEFAULT[key] = ListenerPopulation(sample_rate=sample_rate, version=version)
    return _DEFAULT[key](waves)
