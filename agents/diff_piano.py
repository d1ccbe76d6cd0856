"""A differentiable piano: additive partials and decay envelopes fitted to the soundfont's piano, in torch.

Why: gradient ascent needs a renderer it can backpropagate through, and FluidSynth is not one. Each pitch of
PianoEnv's range is rendered once by the project's FluidSynth renderer (held for the longest note length, then
released); from its STFT we fit, per partial k, a frequency (the measured peak near k * f0, so stretched
tuning is kept), an initial amplitude, a decay rate while the key is held, and a release rate after note-off.
From that additive model we synthesise one *note template* per (pitch, length in grid steps). A piano roll
on PianoEnv's grid is then rendered by placing templates at onsets: a sum of matrix products over template
chunks, linear in the roll and fast on a CPU.

The fit is reported by ``fit_report``: per note, the mean absolute log-mel difference (dB) between the
additive note and FluidSynth's, beside the same distance for a naive model (harmonics at 1/k amplitude with
one shared decay), so the number has a scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from studio import grid as env_grid
from studio.synth import Renderer, block_frames

ANALYSIS_FFT = 2048
ANALYSIS_HOP = 256
MAX_PARTIALS = 24
ATTACK_SECONDS = 0.004


@dataclass(frozen=True)
class PianoGrid:
    """PianoEnv's grid: ``n_steps`` slots of ``step_seconds`` (rounded to 64-frame blocks), pitches
    ``low_pitch .. low_pitch + n_pitches - 1``, note lengths 1..``max_len`` steps, a release tail."""

    n_steps: int = env_grid.N_STEPS
    step_seconds: float = env_grid.STEP_SECONDS
    low_pitch: int = env_grid.LOW_PITCH
    n_pitches: int = env_grid.N_PITCHES
    max_len: int = 4
    tail_seconds: float = env_grid.TAIL_SECONDS
    velocity: int = env_grid.VELOCITY
    sample_rate: int = env_grid.SAMPLE_RATE

    def __post_init__(self):
        if self.n_steps < 1 or self.max_len < 1 or self.n_pitches < 1 or not 0 < self.step_seconds:
            raise ValueError(f"PianoGrid needs n_steps, max_len, n_pitches >= 1 and step_seconds > 0, got {self}.")
        if not (0 <= self.low_pitch and self.low_pitch + self.n_pitches <= 128):
            raise ValueError(f"Pitches {self.low_pitch}..{self.low_pitch + self.n_pitches - 1} must lie in MIDI 0..127.")

    @property
    def step_frames(self) -> int:
        return block_frames(self.step_seconds, self.sample_rate)

    @property
    def tail_frames(self) -> int:
        return block_frames(self.tail_seconds, self.sample_rate)

    @property
    def samples(self) -> int:
        """Length of one rendered clip in samples: the grid plus the release tail, as PianoEnv renders it."""
        return self.n_steps * self.step_frames + self.tail_frames

    @property
    def release_steps(self) -> int:
        """Grid steps a template rings on after its note-off (the tail, rounded up)."""
        return -(-self.tail_frames // self.step_frames)


@dataclass
class PianoFit:
    """Fitted additive parameters, arrays of shape (n_pitches, MAX_PARTIALS); unused partials have amp 0.

    ``freq`` in Hz, ``amp`` in linear sample units (the partial's level at its attack peak), ``decay`` and
    ``release`` in 1/s (natural-log slopes while held and after note-off). ``envelope`` (n_pitches,
    MAX_PARTIALS, frames) is the measured amplitude of each partial while the key is held, one value every
    ``ANALYSIS_HOP`` samples (flat before the attack peak): the held part of a note follows it, so the fast
    early decay of the piano's attack is kept; the single ``decay`` rate is reported, not used."""

    grid: PianoGrid
    freq: np.ndarray
    amp: np.ndarray
    decay: np.ndarray
    release: np.ndarray
    envelope: np.ndarray


def fluidsynth_note(renderer: Renderer, pitch: int, length_steps: int, grid: PianoGrid, tail_seconds: float) -> np.ndarray:
    """FluidSynth's piano (program 0) playing ``pitch`` for ``length_steps`` grid steps, mono float32."""
    end = length_steps * grid.step_frames / grid.sample_rate
    return renderer.render_notes([(pitch, 0.0, end, grid.velocity)], tail_seconds=tail_seconds)


def _stft_mag(wave: np.ndarray) -> np.ndarray:
    """|STFT| (frames, bins), frame n centred on sample n * ANALYSIS_HOP, Hann window, scaled so a sinusoid of
    amplitude A peaks near A."""
    window = np.hanning(ANALYSIS_FFT).astype(np.float32)
    padded = np.pad(wave, (ANALYSIS_FFT // 2, ANALYSIS_FFT))
    n = 1 + (len(wave)) // ANALYSIS_HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, ANALYSIS_FFT)[::ANALYSIS_HOP][:n]
    return np.abs(np.fft.rfft(frames * window, axis=1)) * (2.0 / window.sum())


def _slope_fit(times: np.ndarray, mags: np.ndarray) -> tuple[float, float]:
    """Least-squares fit of log(mag) = log(a) - rate * t, weighted toward the loud frames: (a at t=0, rate)."""
    keep = mags > mags.max() * 1e-3
    if keep.sum() < 2:
        return float(mags.max()), 50.0
    t, y = times[keep], np.log(mags[keep])
    w = np.sqrt(mags[keep] / mags[keep].max())
    slope, intercept = np.polyfit(t, y, 1, w=w)
    return float(np.exp(intercept)), float(max(0.0, -slope))


def fit_piano(renderer: Renderer, grid: PianoGrid) -> PianoFit:
    """Fit the additive model to every pitch of ``grid`` as FluidSynth renders it (takes ~1 s for 36 pitches)."""
    if renderer.sample_rate != grid.sample_rate:
        raise ValueError(f"Renderer at {renderer.sample_rate} Hz, grid at {grid.sample_rate} Hz; make them agree.")
    shape = (grid.n_pitches, MAX_PARTIALS)
    freq, amp, decay, release = (np.zeros(shape, np.float64) for _ in range(4))
    sr = grid.sample_rate
    hold = grid.max_len * grid.step_frames / sr
    envelope = np.zeros((*shape, int(hold * sr) // ANALYSIS_HOP + 2), np.float64)
    bin_hz = sr / ANALYSIS_FFT
    for i in range(grid.n_pitches):
        pitch = grid.low_pitch + i
        wave = fluidsynth_note(renderer, pitch, grid.max_len, grid, tail_seconds=1.0)
        mag = _stft_mag(wave)
        times = np.arange(mag.shape[0]) * ANALYSIS_HOP / sr
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        held = (times > 0.03) & (times < hold - 0.02)
        after = (times > hold + 0.02) & (times < hold + 0.8)
        average = mag[held].mean(axis=0)
        for k in range(1, MAX_PARTIALS + 1):
            if k * f0 * 1.04 >= 0.95 * sr / 2:
                break
            lo, hi = int(k * f0 * 0.97 / bin_hz), int(np.ceil(k * f0 * 1.04 / bin_hz)) + 1
            peak = lo + int(np.argmax(average[lo:hi]))
            if 0 < peak < len(average) - 1:  # parabolic interpolation of the peak on log magnitudes
                a, b, c = np.log(average[peak - 1 : peak + 2] + 1e-12)
                offset = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
            else:
                offset = 0.0
            freq[i, k - 1] = (peak + offset) * bin_hz
            track = mag[:, max(peak - 1, 0) : peak + 2].max(axis=1)
            _, decay[i, k - 1] = _slope_fit(times[held], track[held])
            env = track[: envelope.shape[-1]].copy()
            top = int(np.argmax(env[: max(2, int(0.15 * sr / ANALYSIS_HOP))]))
            env[:top] = env[top]
            envelope[i, k - 1, : len(env)] = env
            amp[i, k - 1] = env[top]
            level_at_off = env[min(int(round(hold * sr / ANALYSIS_HOP)), len(env) - 1)]
            tail = track[after]
            _, release[i, k - 1] = _slope_fit(times[after] - hold, np.minimum(tail, max(level_at_off, 1e-9)))
        # A partial buried under its neighbours' leakage is not a partial: drop it.
            amp[i, amp[i] < amp[i].max() * 10 ** (-50 / 20)] = 0.0
    release = np.maximum(release, decay)  # a released string never rings longer than a held one
    return PianoFit(grid, *(a.astype(np.float32) for a in (freq, amp, decay, release, envelope)))


def synth_notes(fit: PianoFit, lengths_steps: np.ndarray, amp_scale: np.ndarray | None = None) -> np.ndarray:
    """Additive notes: for each pitch, one template per length 1..max_len steps, each
    ``(length + release_steps) * step_frames`` samples long; shape (n_pitches, max_len, samples), float32.

    ``lengths_steps`` selects which lengths to build (all when it is ``arange(1, max_len + 1)``)."""
    grid = fit.grid
    sr, s = grid.sample_rate, grid.step_frames
    n = (grid.max_len + grid.release_steps) * s
    t = np.arange(n) / sr
    attack = np.minimum(1.0, t / ATTACK_SECONDS)
    out = np.zeros((grid.n_pitches, len(lengths_steps), n), np.float32)
    amp = fit.amp if amp_scale is None else fit.amp * amp_scale
    if amp.shape != fit.amp.shape:
        raise ValueError(f"amp_scale must have shape {fit.amp.shape}, got {amp.shape}.")
    for i in range(grid.n_pitches):
        active = np.flatnonzero(amp[i] > 0)
        phase = np.sin(2 * np.pi * fit.freq[i, active, None] * t[None])  # (partials, n)
        for j, length in enumerate(lengths_steps):
            off = length * s / sr
            frames = np.minimum(t, off) * sr / ANALYSIS_HOP
            held = np.stack([np.interp(frames, np.arange(fit.envelope.shape[-1]), fit.envelope[i, k]) for k in active])
            released = np.exp(-fit.release[i, active, None] * np.maximum(t - off, 0.0)[None])
            scale = 1.0 if amp_scale is None else amp_scale[i, active, None]
            env = scale * held * released
            note = (env * phase).sum(axis=0) * attack
            stop = (length + grid.release_steps) * s
            note[stop:] = 0.0
            out[i, j] = note
    return out


class DiffPiano(torch.nn.Module):
    """Renders piano rolls ``(batch, n_steps, n_pitches, max_len)`` of note strengths (1 = a note of that
    length starting at that step, at the fitted velocity) to waveforms ``(batch, grid.samples)``.

    Linear in the roll: the waveform is the sum of templates placed at the roll's onsets, computed as one
    matrix product per step-sized chunk of the templates."""

    def __init__(self, fit: PianoFit):
        super().__init__()
        self.grid = fit.grid
        templates = synth_notes(fit, np.arange(1, fit.grid.max_len + 1))  # (P, D, n)
        chunks = templates.shape[-1] // self.grid.step_frames
        w = templates.reshape(fit.grid.n_pitches * fit.grid.max_len, chunks, self.grid.step_frames)
        self.register_buffer("weights", torch.from_numpy(np.ascontiguousarray(w.transpose(1, 0, 2))))  # (J, P*D, S)

    def forward(self, roll: torch.Tensor) -> torch.Tensor:
        grid = self.grid
        if roll.dim() != 4 or roll.shape[1:] != (grid.n_steps, grid.n_pitches, grid.max_len):
            raise ValueError(f"roll must have shape (batch, {grid.n_steps}, {grid.n_pitches}, {grid.max_len}), "
                             f"got {tuple(roll.shape)}.")
        b, s = roll.shape[0], grid.step_frames
        x = roll.reshape(b, grid.n_steps, -1)
        chunks = self.weights.shape[0]
        out = roll.new_zeros(b, grid.n_steps + chunks, s)
        for j in range(chunks):
            out = out + torch.nn.functional.pad(x @ self.weights[j], (0, 0, j, chunks - j))
        return out.reshape(b, -1)[:, : grid.samples]


def notes_from_roll(roll: np.ndarray, grid: PianoGrid) -> list[tuple[int, float, float, int]]:
    """Notes ``(pitch, start_s, end_s, velocity)`` of a hard roll ``(n_steps, n_pitches, max_len)`` of 0/1.

    A note ends after its length, at the next onset of the same pitch, or at the grid's end, whichever is first
    (FluidSynth releases a key's voices at its note-off, so overlapping same-pitch notes cannot be kept)."""
    step = grid.step_frames / grid.sample_rate
    onsets = [(t, p, int(np.argmax(roll[t, p])) + 1) for t in range(grid.n_steps) for p in range(grid.n_pitches)
              if roll[t, p].max() > 0.5]
    notes = []
    for t, p, length in onsets:
        following = [u for u, q, _ in onsets if q == p and u > t]
        end = min(t + length, following[0] if following else grid.n_steps, grid.n_steps)
        notes.append((grid.low_pitch + p, t * step, end * step, grid.velocity))
    return sorted(notes, key=lambda n: (n[1], n[0]))


def roll_from_notes(notes, grid: PianoGrid) -> np.ndarray:
    """The hard roll ``(n_steps, n_pitches, max_len)`` of notes on the grid (lengths clipped to 1..max_len)."""
    step = grid.step_frames / grid.sample_rate
    roll = np.zeros((grid.n_steps, grid.n_pitches, grid.max_len), np.float32)
    for pitch, start, end, _ in notes:
        t = int(round(start / step))
        length = int(np.clip(round((end - start) / step), 1, grid.max_len))
        if 0 <= t < grid.n_steps and 0 <= pitch - grid.low_pitch < grid.n_pitches:
            roll[t, pitch - grid.low_pitch, length - 1] = 1.0
    return roll


def render_fluidsynth(renderer: Renderer, notes, grid: PianoGrid) -> np.ndarray:
    """FluidSynth's render of ``notes`` cut or padded to ``grid.samples`` (the clip PianoEnv would make)."""
    audio = renderer.render_notes(notes, tail_seconds=grid.tail_seconds) if notes else np.zeros(0, np.float32)
    out = np.zeros(grid.samples, np.float32)
    out[: min(len(audio), grid.samples)] = audio[: grid.samples]
    return out


def log_mel_db(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log-mel power in dB (64 bands, n_fft 1024, hop 256), floored at -80 dB below full scale."""
    import librosa  # noqa: PLC0415

    mel = librosa.feature.melspectrogram(y=wave, sr=sample_rate, n_fft=1024, hop_length=256, n_mels=64)
    return np.maximum(10 * np.log10(mel + 1e-10), -80.0)


def fit_report(fit: PianoFit, renderer: Renderer, length_steps: int = 2) -> dict:
    """Per-note spectral distance between FluidSynth's note and the fitted additive one (mean |log-mel| dB
    over cells where either is within 50 dB of FluidSynth's loudest cell), and the same for a naive model
    (harmonics at 1/k of the fitted fundamental's level, one shared exponential decay)."""
    grid = fit.grid
    ours = synth_notes(fit, np.array([length_steps]))[:, 0]
    naive_amp = np.where(fit.amp > 0, fit.amp.max(axis=1, keepdims=True) / np.arange(1, MAX_PARTIALS + 1), 0.0)
    times = np.arange(fit.envelope.shape[-1]) * ANALYSIS_HOP / grid.sample_rate
    naive_env = naive_amp[..., None] * np.exp(-np.median(fit.decay) * times)
    naive = PianoFit(grid, fit.freq, naive_amp.astype(np.float32), np.full_like(fit.decay, np.median(fit.decay)),
                     np.full_like(fit.release, np.median(fit.release)), naive_env.astype(np.float32))
    theirs_naive = synth_notes(naive, np.array([length_steps]))[:, 0]
    fitted, baseline = [], []
    for i in range(grid.n_pitches):
        real = fluidsynth_note(renderer, grid.low_pitch + i, length_steps, grid, tail_seconds=grid.tail_seconds)
        n = min(len(real), ours.shape[1])
        ref = log_mel_db(real[:n], grid.sample_rate)
        floor = ref.max() - 50.0
        for model, sink in ((ours[i, :n], fitted), (theirs_naive[i, :n], baseline)):
            est = log_mel_db(model, grid.sample_rate)
            mask = (ref > floor) | (est > floor)
            sink.append(float(np.abs(ref - est)[mask].mean()))
    return {"pitches": list(range(grid.low_pitch, grid.low_pitch + grid.n_pitches)),
            "fitted_db": fitted, "naive_db": baseline,
            "fitted_mean_db": float(np.mean(fitted)), "naive_mean_db": float(np.mean(baseline)),
            "partials_mean": float((fit.amp > 0).sum(axis=1).mean()), "length_steps": length_steps}
