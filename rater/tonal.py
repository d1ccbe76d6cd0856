"""The tonal rater: a small network that can hear key and melodic order, on a log-frequency spectrogram.

Why this shape (issue 14): the seed CNN (per-frame convolution on log-mel, then a time average) cannot
compute a transposition-invariant key fit nor anything about order. This network is built so it can:

1. **Pitch-equivariant front end** on the log-frequency input (``rater/logfreq.py``, 2 bins per semitone):
   a Conv2d over (frequency, time) with a stride of one semitone along frequency and two frames in time,
   then a convolution along frequency dilated by an octave (harmonics). (A further 3x3 layer cost ~2.5x the
   training time for this one on the 2-core machine.) A transposition by whole semitones shifts
   the feature map ``H`` (B, C, pitches, T) along its pitch axis.
2. **Octave folding** of ``H`` to 12 pitch classes (mean over octaves): ``Q`` (B, C, 12, T).
3. **Key-invariant readout**: the clip's mean pitch-class profile is correlated circularly with ``n_keys``
   learned key profiles (all 12 rotations, so major/minor modes and their 12 tonics are 24 of them with
   ``n_keys >= 2``), followed by a log-sum-exp over the rotations: invariant to transposition, and the
   learnable version of the Krumhansl key fit. The magnitudes of the 12-point DFT of the same profile are
   added (also transposition-invariant).
4. **Key-relative sequence**: each frame's pitch-class features are rotated by the soft estimate of the
   clip's tonic (a softmax over the rotations), giving scale-degree features that do not depend on the key;
   with octave-band (register and timbre) features and the frame level, they feed a **temporal model** of
   dilated residual convolutions over time, so order matters. Pooling over time (masked mean and max)
   happens only at the end.
5. Optional **auxiliary head**: per (pitch, frame) logits of "note sounding" and "note onset" from ``H``,
   trained on the piano roll of the notes a clip was rendered from (multi-task).

Along frequency the front end pads by replicating the edge rows: a constant background then gives the same
response at every pitch, so it adds equally to all 12 pitch classes and the key readout stays exactly
transposition-invariant for energy away from the edges (tested). Padded frames are zeroed after every layer and left out of every pooling, so a clip's score does not depend
on the batch it is padded into (tested). Normalisation is one scalar mean and std over all bins (per-bin
statistics would break the equivariance).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from rater.model import frame_mask


@dataclass(frozen=True)
class TonalConfig:
    """Sizes of the tonal rater."""

    n_bins: int = 144  # log-frequency input rows (12 * octaves * bins_per_semitone)
    bins_per_semitone: int = 2
    front_channels: int = 16  # channels of the pitch-equivariant front end
    n_keys: int = 8  # learned key profiles (each correlated at all 12 rotations)
    temporal_channels: int = 32  # channels of the temporal model
    temporal_layers: int = 4  # dilated residual convolutions over time, dilation 1, 2, 4, ...
    hidden: int = 64  # Dense width of the head
    dropout: float = 0.1
    summary: bool = False  # add the clip's per-bin mean and std over time (a linear "wide" path, like the ridge)
    correlate: bool = False  # key readout on mean-removed, unit-norm profiles (a Pearson correlation, like Krumhansl's)

    def __post_init__(self) -> None:
        sizes = (self.n_bins, self.bins_per_semitone, self.front_channels, self.n_keys, self.temporal_channels,
                 self.temporal_layers, self.hidden)  # fmt: skip
        if min(sizes) < 1:
            raise ValueError(f"TonalConfig sizes must be >= 1, got {self}.")
        if self.n_bins % (12 * self.bins_per_semitone):
            raise ValueError(f"n_bins ({self.n_bins}) must be whole octaves of 12 * {self.bins_per_semitone} bins.")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")

    @property
    def n_pitches(self) -> int:
        """Semitone rows of the front end's output."""
        return self.n_bins // self.bins_per_semitone

    @property
    def octaves(self) -> int:
        return self.n_pitches // 12

    def to_dict(self) -> dict:
        """Plain dict (for checkpoints)."""
        return dataclasses.asdict(self)


def rotations(profile: torch.Tensor) -> torch.Tensor:
    """All 12 circular rotations of the last axis: (..., 12) -> (..., 12 rotations, 12), ``out[..., r, i] = x[..., (i + r) % 12]``."""
    index = (torch.arange(12, device=profile.device)[None] + torch.arange(12, device=profile.device)[:, None]) % 12
    return profile[..., index]


def masked_mean(x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean of (B, ..., T) over valid frames (``mask`` (B, T), zero on padding) -> (B, ...)."""
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return (x * mask.reshape(shape)).sum(-1) / lengths.to(x.dtype).reshape(shape[:-1])


class TonalRater(nn.Module):
    """Log-frequency power (B, n_bins, frames) + valid frame counts (B,) -> score (B,) in normalised target units."""

    def __init__(self, config: TonalConfig | None = None):
        super().__init__()
        self.config = config or TonalConfig()
        c = self.config
        f = c.front_channels
        self.register_buffer("input_mean", torch.zeros(()))
        self.register_buffer("input_std", torch.ones(()))
        b = c.bins_per_semitone
        self.front = nn.ModuleList(
            [
                # one semitone per output row, two input frames per output frame (64 ms at the default hop)
                nn.Conv2d(1, f, (2 * b + 1, 3), stride=(b, 2), padding=(0, 1)),
                nn.Conv2d(f, f, (3, 1), dilation=(12, 1)),  # octave-spaced: harmonics
            ]
        )
        self.freq_padding = (b, 12)  # replicated edges along frequency (zeros would add fixed edge responses)
        self.keys = nn.Parameter(torch.randn(c.n_keys, f, 12) * 0.1)
        self.tonic = nn.Linear(c.n_keys, 1)
        t = c.temporal_channels
        self.relative = nn.Conv1d(12 * f, t, 1)
        self.register_proj = nn.Conv1d(c.octaves * f + 1, t, 1)
        self.temporal = nn.ModuleList(
            [nn.Conv1d(t, t, 3, padding=2**layer, dilation=2**layer) for layer in range(c.temporal_layers)]
        )
        pooled = 2 * t + c.n_keys + 7 * f + 1 + (2 * c.n_bins if c.summary else 0)
        self.head = nn.Sequential(nn.Linear(pooled, c.hidden), nn.ReLU(), nn.Dropout(c.dropout), nn.Linear(c.hidden, 1))
        self.aux = nn.Conv2d(f, 2, 1)  # note sounding / onset logits per (pitch, frame)

    def set_input_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Scalar normalisation of the input (training-split statistics over all bins and frames)."""
        self.input_mean.copy_(torch.as_tensor(mean, dtype=torch.float32).mean())
        self.input_std.copy_(torch.as_tensor(std, dtype=torch.float32).mean().clamp_min(1e-3))

    @staticmethod
    def output_frames(lengths: torch.Tensor) -> torch.Tensor:
        """Valid frames after the front end's stride of 2 in time: ``(lengths + 1) // 2``."""
        return (lengths + 1) // 2

    def pitch_features(self, spec: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pitch-equivariant features ``H`` (B, front_channels, n_pitches, ceil(T / 2)), zero on padded frames.

        Also returns the valid output frame counts (B,) and their mask (B, ceil(T / 2)).
        """
        x = ((spec - self.input_mean) / self.input_std) * frame_mask(lengths, spec.shape[-1])[:, None]
        out_lengths = self.output_frames(lengths)
        mask = frame_mask(out_lengths, (spec.shape[-1] + 1) // 2)
        x = x[:, None]
        for conv, pad in zip(self.front, self.freq_padding):
            x = torch.nn.functional.pad(x, (0, 0, pad, pad), mode="replicate")
            x = torch.relu(conv(x)) * mask[:, None, None]
        return x, out_lengths, mask

    def features(self, spec: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled clip features (B, 2 * temporal + n_keys + 7 * front) and ``H`` (for the auxiliary head)."""
        c = self.config
        if spec.dim() != 3 or spec.shape[1] != c.n_bins:
            raise ValueError(f"TonalRater expects log-frequency input of shape (batch, {c.n_bins}, frames), got {tuple(spec.shape)}.")
        lengths = lengths.to(spec.device).clamp(1, spec.shape[-1])
        input_lengths = lengths
        level = masked_mean((spec - self.input_mean) / self.input_std, frame_mask(lengths, spec.shape[-1]), lengths).mean(1)
        h, lengths, mask = self.pitch_features(spec, lengths)  # (B, F, P, T')
        batch, f, _, frames = h.shape
        chroma = h.reshape(batch, f, c.octaves, 12, frames).mean(2)  # (B, F, 12, T)
        profile = masked_mean(chroma, mask, lengths)  # (B, F, 12)
        if c.correlate:
            centred = profile - profile.mean(-1, keepdim=True)
            profile = centred / (centred.norm(dim=(1, 2), keepdim=True) + 1e-6)
        fit = torch.einsum("bfri,kfi->bkr", rotations(profile), self.keys)  # (B, keys, 12 rotations)
        key_fit = torch.logsumexp(fit, dim=-1)  # transposition-invariant
        tonic = torch.softmax(self.tonic(fit.transpose(1, 2))[..., 0], dim=-1)  # (B, 12) soft tonic
        # relative[b, f, i, t] = sum_r tonic[b, r] * chroma[b, f, (i + r) % 12, t]: scale degrees, key-invariant
        circulant = tonic[:, (torch.arange(12, device=spec.device)[None] - torch.arange(12, device=spec.device)[:, None]) % 12]
        relative = torch.einsum("bij,bfjt->bfit", circulant, chroma)
        spectrum = torch.fft.rfft(profile, dim=-1).abs().flatten(1)  # (B, F * 7), transposition-invariant
        register = h.reshape(batch, f, c.octaves, 12, frames).mean(3).flatten(1, 2)  # (B, F * octaves, T)
        energy = h.mean((1, 2))[:, None]  # (B, 1, T') frame activity
        m = mask[:, None]
        x = torch.relu(self.relative(relative.flatten(1, 2)) + self.register_proj(torch.cat([register, energy], 1))) * m
        for conv in self.temporal:
            x = (x + torch.relu(conv(x))) * m
        mean = x.sum(-1) / lengths.to(x.dtype)[:, None]
        peak = x.masked_fill(m == 0, float("-inf")).amax(-1)
        parts = [mean, peak, key_fit, spectrum, level[:, None]]
        if c.summary:
            full = frame_mask(input_lengths, spec.shape[-1])
            x_in = (spec - self.input_mean) / self.input_std
            centre = masked_mean(x_in, full, input_lengths)
            spread = (masked_mean(x_in**2, full, input_lengths) - centre**2).clamp_min(1e-6).sqrt()
            parts += [centre, spread]
        return torch.cat(parts, 1), h

    def forward(self, spec: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Score per clip (B,)."""
        return self.head(self.features(spec, lengths)[0])[:, 0]

    def forward_with_aux(self, spec: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score (B,) and auxiliary logits (B, 2, n_pitches, ceil(T / 2)): channel 0 note sounding, channel 1 onset."""
        pooled, h = self.features(spec, lengths)
        return self.head(pooled)[:, 0], self.aux(h)
