"""Log-mel spectrogram frontend in torch: the rater's view of audio.

It lives in torch, not librosa, so dreaming can backpropagate from the rater's score to the waveform and so
a batch is transformed on the GPU when there is one. The mel filterbank is ``librosa.filters.mel`` built
once as a buffer, so the numbers match ``librosa.feature.melspectrogram`` (tested). ``center=True`` with
zero padding means a clip's frames do not depend on how much zero padding follows it in a batch:
``frames(n) = 1 + n // hop`` frames are valid for ``n`` samples.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import librosa
import numpy as np
import torch
from studio import SAMPLE_RATE


@dataclass(frozen=True)
class MelConfig:
    """Every parameter that changes the log-mel numbers (checkpoints and caches are keyed on it)."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 2048
    hop: int = 512
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float = 8000.0
    power: float = 2.0
    log_floor: float = 1e-6  # added before the log: keeps silence finite and gradients alive

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop <= 0 or self.n_mels <= 0:
            raise ValueError(f"MelConfig sizes must be positive, got {self}.")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"Need 0 <= fmin < fmax <= sample_rate/2, got fmin={self.fmin}, fmax={self.fmax}.")
        if self.log_floor <= 0:
            raise ValueError(f"log_floor must be positive, got {self.log_floor}.")

    def to_dict(self) -> dict:
        """Plain dict (for checkpoints and JSON)."""
        return dataclasses.asdict(self)

    @property
    def digest(self) -> str:
        """Short stable hash of the configuration (cache file names)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def n_features(self) -> int:
        """Rows of the spectrogram (the cache's width); same as ``n_mels``."""
        return self.n_mels

    def frames(self, n_samples: int | np.ndarray | torch.Tensor):
        """Number of valid frames for ``n_samples`` samples (works elementwise on arrays and tensors)."""
        return 1 + n_samples // self.hop


class LogMel(torch.nn.Module):
    """Waveforms (B, T) or (T,) -> natural-log mel power ``log(mel + log_floor)``, shape (B, n_mels, frames)."""

    def __init__(self, config: MelConfig | None = None, **overrides):
        super().__init__()
        self.config = dataclasses.replace(config or MelConfig(), **overrides)
        c = self.config
        basis = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)
        self.register_buffer("basis", torch.from_numpy(basis.astype(np.float32)), persistent=False)
        self.register_buffer("window", torch.hann_window(c.n_fft, periodic=True), persistent=False)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Log-mel of a batch; differentiable with respect to ``waves``."""
        if waves.dim() == 1:
            waves = waves[None]
        if waves.dim() != 2:
            raise ValueError(f"LogMel expects waveforms of shape (batch, samples) or (samples,), got {tuple(waves.shape)}.")
        c = self.config
        spec = torch.stft(
            waves.float(), c.n_fft, hop_length=c.hop, window=self.window, center=True, pad_mode="constant",
            return_complex=True,
        )  # fmt: skip
        power = spec.abs() ** c.power if c.power != 2.0 else spec.real**2 + spec.imag**2
        return torch.log(torch.matmul(self.basis, power) + c.log_floor)
