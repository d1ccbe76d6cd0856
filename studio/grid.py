"""PianoEnv's grid and action encoding, and a pure melody renderer: one home for the env, the prior and the data.

Why in the foundation: the dataset build (``rater/``) renders melodies exactly as PianoEnv (``envs/``) plays
them, and the prior (``agents/``) quantises corpus melodies to the same grid, but the rater never imports the
env. This module imports nothing of the project but the renderer (``studio.synth``).

The encoding (``Discrete`` actions, one per time step): ``REST`` (0) ends what sounds and stays silent,
``HOLD`` (1) keeps what sounds, ``NOTE + i`` (2 + i) starts pitch ``low_pitch + i`` (and ends the previous
note) at velocity ``VELOCITY``. A melody on the grid is an int64 array of such actions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from studio import SAMPLE_RATE  # noqa: F401 - the grid's sample rate, re-exported
from studio.synth import BLOCK, Renderer, block_frames

REST, HOLD, NOTE = 0, 1, 2  # action NOTE + i = note-on of pitch low_pitch + i
VELOCITY = 90  # every note-on when the env has one velocity level
N_STEPS = 32  # steps per episode
STEP_SECONDS = 0.25  # nominal step: an eighth note at 120 bpm (rounded to whole 64-frame blocks when rendered)
STEPS_PER_BEAT = 2  # steps per quarter note: the grid is eighth notes
LOW_PITCH = 48  # C3
N_PITCHES = 36  # three octaves: MIDI 48..83
PROGRAM = 0  # General MIDI acoustic grand piano
GAIN = 0.2  # FluidSynth synth.gain
TAIL_SECONDS = 0.5  # release tail rendered after the last step


def step_frames(sample_rate: int = SAMPLE_RATE, step_seconds: float = STEP_SECONDS) -> int:
    """Frames per step: ``step_seconds`` rounded to whole FluidSynth blocks (3968 at 16 kHz, i.e. 0.248 s)."""
    return block_frames(step_seconds, sample_rate)


def episode_frames(
    n_steps: int = N_STEPS,
    sample_rate: int = SAMPLE_RATE,
    step_seconds: float = STEP_SECONDS,
    tail_seconds: float = TAIL_SECONDS,
) -> int:
    """Frames of one episode's audio: ``n_steps`` steps plus the release tail (134,976 = 8.436 s by default)."""
    return n_steps * step_frames(sample_rate, step_seconds) + block_frames(tail_seconds, sample_rate)


def note_action(pitch: int, low_pitch: int = LOW_PITCH) -> int:
    """The action that starts MIDI ``pitch``."""
    return NOTE + int(pitch) - low_pitch


def action_pitch(action: int, low_pitch: int = LOW_PITCH) -> int | None:
    """The MIDI pitch a note-on action starts, or None for ``REST``/``HOLD``."""
    return low_pitch + int(action) - NOTE if action >= NOTE else None


def actions_to_notes(
    actions: Sequence[int],
    low_pitch: int = LOW_PITCH,
    step_seconds: float = STEP_SECONDS,
    velocity: int = VELOCITY,
) -> np.ndarray:
    """Notes of ``Discrete`` actions as a (N, 4) float64 array ``pitch, start_s, end_s, velocity``.

    A note lasts from its note-on step through the ``HOLD`` steps after it; ``step_seconds`` is used as given
    (pass ``step_frames(sr) / sr`` for the exact rendered step).
    """
    notes, current = [], None
    for t, a in enumerate(actions):
        if current is not None and a != HOLD:
            notes.append((current[0], current[1] * step_seconds, t * step_seconds, velocity))
            current = None
        if a >= NOTE:
            current = (action_pitch(a, low_pitch), t)
    if current is not None:
        notes.append((current[0], current[1] * step_seconds, len(actions) * step_seconds, velocity))
    return np.array(notes, dtype=np.float64).reshape(-1, 4)


def melody_to_actions(
    melody: Sequence[tuple[int, float, float]],
    low_pitch: int = LOW_PITCH,
    n_pitches: int = N_PITCHES,
    steps_per_beat: int = STEPS_PER_BEAT,
) -> np.ndarray | None:
    """Quantise a monophonic melody ``(pitch, start_beat, end_beat)`` to actions, moved by octaves into range.

    Starts and ends round to the nearest step; a note that rounds to no steps is dropped (a later note on the
    same step wins). Returns None when the melody is empty or its span does not fit the pitch range.
    """
    if not len(melody):
        return None
    pitches = np.array([m[0] for m in melody])
    shift = 0
    while pitches.min() + shift < low_pitch:
        shift += 12
    while pitches.max() + shift >= low_pitch + n_pitches:
        shift -= 12
    if pitches.min() + shift < low_pitch:
        return None
    end = int(round(max(m[2] for m in melody) * steps_per_beat))
    actions = np.full(max(end, 1), REST, dtype=np.int64)
    for pitch, start, stop in melody:
        a, b = int(round(start * steps_per_beat)), int(round(stop * steps_per_beat))
        if b <= a or a >= len(actions):
            continue
        actions[a] = note_action(pitch + shift, low_pitch)
        actions[a + 1 : b] = HOLD
    return actions


def skyline(notes: np.ndarray) -> list[tuple[int, float, float]]:
    """The top line of (N, >=3) notes ``pitch, start, end, ...`` sorted or not: a monophonic melody.

    At each onset the highest note starting there joins the line, unless a higher note that began earlier is
    still sounding (then the top voice is holding, and a lower voice's move is not melody). Each line note
    ends at its own end or at the next line note's start, whichever comes first.
    """
    if len(notes) == 0:
        return []
    notes = np.asarray(notes, dtype=np.float64)
    pitch, start, end = np.clip(np.round(notes[:, 0]), 0, 127).astype(np.int64), notes[:, 1], notes[:, 2]
    onsets, at = np.unique(start, return_inverse=True)
    # Pitches held over each onset (begun before it, ending after it), as a (onsets, 128) count roll.
    first, last = at + 1, np.searchsorted(onsets, end, side="left")
    spans = last > first
    roll = np.zeros((len(onsets) + 1, 128), dtype=np.int64)
    np.add.at(roll, (first[spans], pitch[spans]), 1)
    np.add.at(roll, (last[spans], pitch[spans]), -1)
    held = np.cumsum(roll, axis=0)[:-1] > 0
    top_held = np.where(held.any(axis=1), 127 - np.argmax(held[:, ::-1], axis=1), -1)
    top = np.full(len(onsets), -1)
    np.maximum.at(top, at, pitch)
    is_top = pitch == top[at]
    top_end = np.full(len(onsets), -np.inf)
    np.maximum.at(top_end, at[is_top], end[is_top])
    keep = top >= top_held
    line = [(int(p), float(s), float(e)) for p, s, e in zip(top[keep], onsets[keep], top_end[keep])]
    return [(p, s, min(e, line[k + 1][1]) if k + 1 < len(line) else e) for k, (p, s, e) in enumerate(line)]


def render_melody(
    renderer: Renderer,
    notes: np.ndarray,
    n_steps: int = N_STEPS,
    step_seconds: float = STEP_SECONDS,
    tail_seconds: float = TAIL_SECONDS,
    program: int = PROGRAM,
    gain: float = GAIN,
    detune_cents: float = 0.0,
) -> np.ndarray:
    """Play ``notes`` (N, 4: pitch, start_s, end_s, velocity) as one PianoEnv episode: mono float32 in [-1, 1].

    Output shape: ``(episode_frames(n_steps, renderer.sample_rate, step_seconds, tail_seconds),)``. Notes are
    cut at the end of the last step (where the env releases everything) and the release tail follows, so a
    melody from ``actions_to_notes(actions, step_seconds=step_frames(sr) / sr)`` renders bit-identically to
    PianoEnv's ``info["audio"]`` for the same actions. Notes need not lie on the grid (degraded melodies).
    ``renderer`` must have been made with ``gain`` (the env's synth gain). ``detune_cents`` bends the whole
    melody (a degradation; the env never detunes).
    """
    if abs(renderer.gain - gain) > 1e-12:
        raise ValueError(f"The renderer has gain {renderer.gain} but PianoEnv renders at {gain}; "
                         f"create it with Renderer(gain={gain}).")
    sr = renderer.sample_rate
    total = episode_frames(n_steps, sr, step_seconds, tail_seconds)
    end_frame = n_steps * step_frames(sr, step_seconds)
    end_s = end_frame / sr
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    notes = notes[(notes[:, 1] >= 0) & (notes[:, 1] < end_s) & (notes[:, 2] > notes[:, 1])].copy()
    notes[:, 2] = np.minimum(notes[:, 2], end_s)
    # Note-offs land on whole blocks; the tail runs from the last one to the episode's end, as in the env.
    on = np.round(notes[:, 1] * sr / BLOCK).astype(np.int64) * BLOCK
    off = np.maximum(on + BLOCK, np.round(notes[:, 2] * sr / BLOCK).astype(np.int64) * BLOCK)
    last_off = int(off.max()) if len(off) else 0
    tail = (total - last_off) / sr
    audio = renderer.render_notes(notes, program=program, tail_seconds=tail, detune_cents=detune_cents)
    if audio.shape[0] != total:
        raise AssertionError(f"render_melody produced {audio.shape[0]} frames, expected {total}.")
    return audio
