"""Augmentation in the log-mel domain: gain, pitch shift and time stretch on batches of log-mel spectrograms.

Why the mel domain and not the waveform: the training loop caches every clip's log-mel once, so augmenting
there costs no re-rendering, no resampling and no dataset rebuild; and because every operation is a
differentiable gather-and-interpolate in torch, dreaming can ascend the rater's score *through* random
augmentations (robust dreams) on the same code path. The approximations are the usual ones: gain adds a
constant to ``log(mel)``; a pitch shift by ``s`` semitones moves energy at ``f`` to ``f * 2**(s/12)``, read
off the mel axis through the Slaney mel <-> Hz mapping librosa uses; a time stretch resamples frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rater.mel import MelConfig


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms; each is drawn uniformly per clip. Zero disables a transform."""

    gain_db: float = 6.0  # level change in [-gain_db, +gain_db] dB
    pitch_semitones: float = 1.0  # pitch shift in [-s, +s] semitones
    stretch: float = 0.1  # duration factor in [1 - stretch, 1 + stretch]

    def __post_init__(self) -> None:
        if self.gain_db < 0 or self.pitch_semitones < 0 or not 0 <= self.stretch < 1:
            raise ValueError(f"Augment ranges must be >= 0 (stretch < 1), got {self}.")


_F_SP = 200.0 / 3  # Slaney mel scale (librosa's default, htk=False): linear below 1 kHz ...
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0  # ... logarithmic above


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """Slaney mel of frequencies in Hz (matches ``librosa.hz_to_mel(htk=False)``)."""
    log_part = _MIN_LOG_MEL + torch.log(hz.clamp_min(_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(hz >= _MIN_LOG_HZ, log_part, hz / _F_SP)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`."""
    log_part = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (mel.clamp_min(_MIN_LOG_MEL) - _MIN_LOG_MEL))
    return torch.where(mel >= _MIN_LOG_MEL, log_part, mel * _F_SP)


def _interpolate(x: torch.Tensor, position: torch.Tensor, dim: int, fill: float) -> torch.Tensor:
    """Linear interpolation of ``x`` at fractional indices ``position`` along ``dim`` (``fill`` outside)."""
    size = x.shape[dim]
    low = position.floor().clamp(0, size - 1)
    frac = (position - low).clamp(0, 1)
    low = low.long()
    high = (low + 1).clamp(max=size - 1)
    shape = list(x.shape)
    shape[dim] = position.shape[dim]
    value = torch.lerp(torch.gather(x, dim, low.expand(shape)), torch.gather(x, dim, high.expand(shape)), frac.expand(shape))
    inside = (position >= 0) & (position <= size - 1)
    return torch.where(inside.expand(shape), value, torch.full_like(value, fill))


def pitch_shift(logmel: torch.Tensor, semitones: torch.Tensor, mel: MelConfig) -> torch.Tensor:
    """Shift each clip of (B, n_mels, T) by ``semitones[b]`` along the mel axis."""
    lo, hi = hz_to_mel(torch.tensor([mel.fmin, mel.fmax], dtype=torch.float64)).tolist()
    step = (hi - lo) / (mel.n_mels + 1)
    centres = mel_to_hz(lo + step * torch.arange(1, mel.n_mels + 1, dtype=torch.float64)).to(logmel)
    source = centres[None] / torch.pow(2.0, semitones.to(logmel)[:, None] / 12.0)  # (B, n_mels)
    position = (hz_to_mel(source) - lo) / step - 1.0
    return _interpolate(logmel, position[:, :, None], dim=1, fill=math.log(mel.log_floor))


def time_stretch(logmel: torch.Tensor, lengths: torch.Tensor, factor: torch.Tensor, mel: MelConfig):
    """Resample each clip's frames to ``factor[b]`` times its duration; returns (log-mel, new lengths)."""
    factor = factor.to(logmel)
    new_lengths = ((lengths.to(logmel) - 1) * factor).floor().long() + 1
    n_out = int(new_lengths.max())
    position = torch.arange(n_out, device=logmel.device, dtype=logmel.dtype)[None] / factor[:, None]  # (B, n_out)
    position = torch.where(position <= (lengths[:, None] - 1).to(logmel), position, torch.full_like(position, -1.0))
    return _interpolate(logmel, position[:, None, :], dim=2, fill=math.log(mel.log_floor)), new_lengths


def augment(
    logmel: torch.Tensor,
    lengths: torch.Tensor,
    generator: torch.Generator,
    config: AugmentConfig | None = None,
    mel: MelConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random gain, pitch shift and time stretch per clip of a (B, n_mels, T) batch; differentiable.

    ``generator`` (a CPU ``torch.Generator``) makes the draws reproducible. Returns the augmented log-mel and
    the new valid frame counts.
    """
    config = config or AugmentConfig()
    mel = mel or MelConfig(n_mels=logmel.shape[1])
    if logmel.dim() != 3 or logmel.shape[1] != mel.n_mels:
        raise ValueError(f"augment expects log-mel of shape (batch, {mel.n_mels}, frames), got {tuple(logmel.shape)}.")
    batch = logmel.shape[0]
    lengths = lengths.to(logmel.device)

    def draw(width: float) -> torch.Tensor:
        return ((torch.rand(batch, generator=generator, dtype=torch.float64) * 2 - 1) * width).to(logmel.device)

    gain, semitones, stretch = draw(config.gain_db), draw(config.pitch_semitones), 1.0 + draw(config.stretch)
    if config.gain_db > 0:
        logmel = logmel + (gain * math.log(10) / 10).to(logmel)[:, None, None]
    if config.pitch_semitones > 0:
        logmel = pitch_shift(logmel, semitones, mel)
    if config.stretch > 0:
        logmel, lengths = time_stretch(logmel, lengths, stretch, mel)
    return logmel, lengths
