"""Log-frequency spectrogram frontend in torch: the tonal rater's view of audio.

A torch STFT followed by a fixed triangular filterbank whose centres are spaced ``bins_per_semitone`` per
equal-tempered semitone, from MIDI pitch ``low_pitch`` upwards. Equal spacing in log frequency makes a
transposition by ``s`` semitones a shift by ``s * bins_per_semitone`` bins (exact up to the filter shapes),
so convolutions along this axis are pitch-equivariant and transposition augmentation is a roll. Everything is
a differentiable torch op, so dreaming can backpropagate from the score to the waveform.

Filters: triangles in Hz centred on the pitch frequencies, reaching the neighbouring centres; where that is
narrower than the STFT bin spacing (low notes), the half-width is widened to one STFT bin so every filter
sees energy. Each filter's weights sum to 1 (an average of power, not a sum), so levels do not depend on
filter width. ``center=True`` with zero padding: ``frames(n) = 1 + n // hop`` valid frames for ``n`` samples.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class LogFreqConfig:
    """Every parameter that changes the log-frequency numbers (checkpoints and caches are keyed on it)."""

    sample_rate: int = 16000
    n_fft: int = 4096  # 3.9 Hz STFT bins at 16 kHz: semitones resolved from ~70 Hz
    hop: int = 512  # 32 ms frames
    low_pitch: int = 36  # MIDI pitch of the lowest bin centre (C2, 65.4 Hz)
    octaves: int = 6  # bins cover low_pitch .. low_pitch + 12 * octaves (C2..C8 with the default: 4.2 kHz)
    bins_per_semitone: int = 2
    log_floor: float = 1e-6  # added before the log: keeps silence finite and gradients alive

    def __post_init__(self) -> None:
        if min(self.sample_rate, self.n_fft, self.hop, self.octaves, self.bins_per_semitone) <= 0:
            raise ValueError(f"LogFreqConfig sizes must be positive, got {self}.")
        if self.log_floor <= 0:
            raise ValueError(f"log_floor must be positive, got {self.log_floor}.")
        top = self.pitch_hz(self.low_pitch + 12 * self.octaves)
        if self.low_pitch < 0 or top >= self.sample_rate / 2:
            raise ValueError(
                f"Bins up to {top:.0f} Hz do not fit below Nyquist ({self.sample_rate / 2:.0f} Hz); "
                "lower --octaves or --low-pitch."
            )

    @staticmethod
    def pitch_hz(pitch) -> float | np.ndarray:
        """Frequency in Hz of (fractional) MIDI pitch numbers (A4 = 69 = 440 Hz)."""
        return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)

    @property
    def n_bins(self) -> int:
        """Number of log-frequency bins: ``12 * octaves * bins_per_semitone``."""
        return 12 * self.octaves * self.bins_per_semitone

    @property
    def n_features(self) -> int:
        """Rows of the spectrogram (the cache's width); same as :attr:`n_bins`."""
        return self.n_bins

    def centres(self) -> np.ndarray:
        """(n_bins,) fractional MIDI pitch of each bin centre."""
        return self.low_pitch + np.arange(self.n_bins) / self.bins_per_semitone

    def to_dict(self) -> dict:
        """Plain dict (for checkpoints and JSON)."""
        return dataclasses.asdict(self)

    @property
    def digest(self) -> str:
        """Short stable hash of the configuration (cache file names)."""
        return hashlib.sha256(json.dumps({"logfreq": self.to_dict()}, sort_keys=True).encode()).hexdigest()[:12]

    def frames(self, n_samples: int | np.ndarray | torch.Tensor):
        """Number of valid frames for ``n_samples`` samples (works elementwise on arrays and tensors)."""
        return 1 + n_samples // self.hop


def filterbank(config: LogFreqConfig) -> np.ndarray:
    """(n_bins, n_fft // 2 + 1) float32 triangular filters, each row summing to 1."""
    fft_hz = np.arange(config.n_fft // 2 + 1) * config.sample_rate / config.n_fft
    spacing = config.sample_rate / config.n_fft
    step = 1.0 / config.bins_per_semitone
    centres = config.centres()
    hz, low, high = config.pitch_hz(centres), config.pitch_hz(centres - step), config.pitch_hz(centres + step)
    below = np.maximum(hz - low, spacing)[:, None]
    above = np.maximum(high - hz, spacing)[:, None]
    offset = fft_hz[None] - hz[:, None]
    weights = np.clip(np.where(offset < 0, 1 + offset / below, 1 - offset / above), 0.0, None)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


class LogFreq(torch.nn.Module):
    """Waveforms (B, T) or (T,) -> natural-log power ``log(filtered + log_floor)``, shape (B, n_bins, frames)."""

    def __init__(self, config: LogFreqConfig | None = None, **overrides):
        super().__init__()
        self.config = dataclasses.replace(config or LogFreqConfig(), **overrides)
        c = self.config
        self.register_buffer("basis", torch.from_numpy(filterbank(c)), persistent=False)
        self.register_buffer("window", torch.hann_window(c.n_fft, periodic=True), persistent=False)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Log-frequency power of a batch; differentiable with respect to ``waves``."""
        if waves.dim() == 1:
            waves = waves[None]
        if waves.dim() != 2:
            raise ValueError(f"LogFreq expects waveforms of shape (batch, samples) or (samples,), got {tuple(waves.shape)}.")
        c = self.config
        spec = torch.stft(
            waves.float(), c.n_fft, hop_length=c.hop, window=self.window, center=True, pad_mode="constant",
            return_complex=True,
        )  # fmt: skip
        power = spec.real**2 + spec.imag**2
        return torch.log(torch.matmul(self.basis, power) + c.log_floor)


def transpose(spec: torch.Tensor, bins: torch.Tensor, fill: float) -> torch.Tensor:
    """Shift each clip of a (B, n_bins, T) log-frequency batch up by ``bins[b]`` (integer) bins.

    Exact for a log-frequency axis up to the filter shapes: energy at bin ``i`` moves to ``i + bins[b]``;
    bins shifted in from outside the range get ``fill`` (the log floor: silence).
    """
    n = spec.shape[1]
    source = torch.arange(n, device=spec.device)[None] - bins.to(spec.device).long()[:, None]  # (B, n_bins)
    inside = (source >= 0) & (source < n)
    gathered = torch.gather(spec, 1, source.clamp(0, n - 1)[:, :, None].expand_as(spec))
    return torch.where(inside[:, :, None], gathered, torch.full_like(gathered, fill))


def augment_logfreq(
    spec: torch.Tensor,
    lengths: torch.Tensor,
    generator: torch.Generator,
    gain_db: float = 0.0,
    semitones: int = 0,
    stretch: float = 0.0,
    config: LogFreqConfig | None = None,
    return_steps: bool = False,
):
    """Random gain, transposition and time stretch per clip of a (B, n_bins, T) batch; differentiable.

    Gain adds ``U(-gain_db, gain_db)`` dB (exact: a constant on ``log`` power, up to the floor); transposition
    rolls by a whole number of semitones drawn uniformly from ``-semitones..semitones`` (exact on this axis);
    stretch resamples frames by ``U(1 - stretch, 1 + stretch)`` (``rater.augment.time_stretch``). Draws come
    from ``generator`` (CPU) in a fixed order, so they are reproducible. Returns (spec, new lengths), plus the
    transposition of each clip in semitones (B,) with ``return_steps`` (to move note targets alike).
    """
    from rater.augment import time_stretch  # noqa: PLC0415 - avoids a cycle through rater.augment's imports

    config = config or LogFreqConfig()
    if spec.dim() != 3 or spec.shape[1] != config.n_bins:
        raise ValueError(f"augment_logfreq expects shape (batch, {config.n_bins}, frames), got {tuple(spec.shape)}.")
    if gain_db < 0 or semitones < 0 or not 0 <= stretch < 1:
        raise ValueError(f"Augment ranges must be >= 0 (stretch < 1), got gain {gain_db}, semitones {semitones}, stretch {stretch}.")
    batch = spec.shape[0]
    uniform = torch.rand(3, batch, generator=generator, dtype=torch.float64) * 2 - 1
    steps = torch.randint(-semitones, semitones + 1, (batch,), generator=generator)
    lengths = lengths.to(spec.device)
    if gain_db > 0:
        spec = spec + (uniform[0] * gain_db * np.log(10) / 10).to(spec)[:, None, None]
    if semitones > 0:
        spec = transpose(spec, steps * config.bins_per_semitone, fill=float(np.log(config.log_floor)))
    if stretch > 0:
        spec, lengths = time_stretch(spec, lengths, (1.0 + uniform[2] * stretch).to(spec.device), config)
    if return_steps:
        return spec, lengths, steps if semitones > 0 else torch.zeros_like(steps)
    return spec, lengths
