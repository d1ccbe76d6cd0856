"""Melodies in the agent's domain: corpus top lines and folk tunes on PianoEnv's grid, clean and degraded.

Why: the rater scores monophonic piano melodies from PianoEnv, so the default dataset holds such melodies,
rendered exactly as the env renders them (``studio.grid.render_melody``: same grid, pitch range, program,
velocity, gain, sample rate and tail; one clip is one episode long). A melody is a piece's top line
(``studio.grid.skyline``) quantised to the grid and moved by octaves into the env's range; a clip is one
episode-long window of it, starting on a note-on at a beat.

Degradations on the grid (``GRID_DEGRADATIONS``) are moves the agent could play itself, and include the
listeners' order tests: ``pitch_shuffle`` (same pitches and rhythm, order broken), ``random_pitches``,
``random_onsets`` (same pitch sequence, random rhythm) and ``octave_jumps`` (same pitch classes, big leaps:
what the first gold-oracle hack played). The note-level degradations of ``degrade.py`` that keep a melody
monophonic, ``detune`` and the audio-level ones apply as they do to excerpts. All take a strength in (0, 1]
and a seeded generator; a grid degradation at strength ``s`` changes ``max(1, round(s * k))`` of the ``k``
notes (at least two for a shuffle).

``load_melodies`` gives other parts the top lines of one split of the default dataset's pieces as action
arrays, for "real melodies through PianoEnv" references and order tests (with the functions below as the
scrambles).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio import grid
from rater.data import corpus, degrade

KIND = "melody"
MELODY_FRACTION = 0.3  # of the default dataset's clips
# Tunes per ABC collection used as melody-only pieces, beside the excerpts' pieces (whose top lines are melodies
# too). About 0.04 s of parsing per tune, cached.
TUNE_SOURCES = {"essenFolksong": 240, "oneills1850": 120}
MIN_NOTES = 6  # note-ons an episode window needs to count as a melody
MAX_REST_FRACTION = 0.5  # ... and at most this share of silent steps

Actions = np.ndarray  # (n_steps,) int64 PianoEnv Discrete actions: 0 rest, 1 hold, 2 + i note-on


@dataclass(frozen=True)
class MelodySpec:
    """Everything needed to render one melody clip reproducibly: a window of a piece's top line, degraded."""

    index: int
    piece_id: str
    collection: str
    degradation: str
    strength: float
    start_step: int
    seed: int


def piece_actions(piece: corpus.Piece) -> Actions | None:
    """A piece's top line on the env grid (whole piece), or None when it does not fit the env's pitch range."""
    return grid.melody_to_actions(grid.skyline(piece.notes))


def window(actions: Actions, start: int, n_steps: int = grid.N_STEPS) -> Actions:
    """``n_steps`` actions from ``start``, padded with rests; a leading hold (a note begun before) becomes a rest."""
    out = np.full(n_steps, grid.REST, dtype=np.int64)
    part = np.asarray(actions[start : start + n_steps], dtype=np.int64)
    out[: len(part)] = part
    lead = np.flatnonzero(out != grid.HOLD)
    out[: lead[0] if len(lead) else n_steps] = grid.REST
    return out


def _sounding(actions: Actions) -> np.ndarray:
    """Per step: does a note sound (a note-on, or a hold that continues one)?"""
    actions = np.asarray(actions)
    steps = np.arange(len(actions))
    last = np.maximum.accumulate(np.where(actions != grid.HOLD, steps, -1))  # last non-hold step so far
    return (last >= 0) & (actions[np.maximum(last, 0)] >= grid.NOTE)


def is_melody(win: Actions) -> bool:
    """At least MIN_NOTES note-ons and at most MAX_REST_FRACTION silent steps."""
    return int((np.asarray(win) >= grid.NOTE).sum()) >= MIN_NOTES and 1 - _sounding(win).mean() <= MAX_REST_FRACTION


def window_starts(actions: Actions, n_steps: int = grid.N_STEPS) -> np.ndarray:
    """Steps on a beat where a note starts and the episode-long window from there is a melody (``is_melody``)."""
    actions = np.asarray(actions)
    padded = np.r_[actions, np.full(n_steps, grid.REST)]  # windows past the end are padded with rests
    notes = np.r_[0, np.cumsum(padded >= grid.NOTE)]
    sounding = np.r_[0, np.cumsum(_sounding(padded))]
    starts = np.arange(0, max(1, len(actions) - n_steps // 2), grid.STEPS_PER_BEAT)
    starts = starts[actions[starts] >= grid.NOTE]
    n_notes = notes[starts + n_steps] - notes[starts]
    silent = 1 - (sounding[starts + n_steps] - sounding[starts]) / n_steps
    return starts[(n_notes >= MIN_NOTES) & (silent <= MAX_REST_FRACTION)].astype(np.int64)


# ---------------------------------------------------------------- degradations on the grid


def _note_steps(win: Actions) -> np.ndarray:
    return np.flatnonzero(win >= grid.NOTE)


def _some(k: int, strength: float, rng: np.random.Generator, least: int = 1) -> np.ndarray:
    """``max(least, round(strength * k))`` of ``k`` indices (all when fewer), sorted."""
    m = min(k, max(least, int(round(strength * k))))
    return np.sort(rng.choice(k, m, replace=False))


def pitch_shuffle(win: Actions, strength: float, rng: np.random.Generator) -> Actions:
    """Permute the pitches of some notes among themselves; rhythm and the set of pitches stay."""
    out = np.array(win, dtype=np.int64, copy=True)
    steps = _note_steps(out)
    if len(steps) < 2:
        return out
    chosen = steps[_some(len(steps), strength, rng, least=2)]
    out[chosen] = out[rng.permutation(chosen)]
    return out


def random_pitches(win: Actions, strength: float, rng: np.random.Generator) -> Actions:
    """Replace some pitches by uniform random ones over the melody's range (at least an octave, in the env's)."""
    out = np.array(win, dtype=np.int64, copy=True)
    steps = _note_steps(out)
    if len(steps) == 0:
        return out
    low, high = int(out[steps].min()), int(out[steps].max())
    high = min(grid.NOTE + grid.N_PITCHES - 1, max(high, low + 12))
    low = max(grid.NOTE, min(low, high - 12))
    chosen = steps[_some(len(steps), strength, rng)]
    out[chosen] = rng.integers(low, high + 1, len(chosen))
    return out


def random_onsets(win: Actions, strength: float, rng: np.random.Generator) -> Actions:
    """Keep the pitch sequence, redraw some inter-onset intervals (1-6 steps, ignoring the beat), re-lay it out."""
    steps = _note_steps(win)
    out = np.full(len(win), grid.REST, dtype=np.int64)
    if len(steps) == 0:
        return out
    ends = np.r_[steps[1:], len(win)]
    lengths = np.array([1 + int(np.argmax(np.r_[win[s + 1 : e] != grid.HOLD, True])) for s, e in zip(steps, ends)])
    gaps = np.diff(np.r_[steps, len(win)])
    chosen = _some(len(steps), strength, rng)
    gaps[chosen] = rng.integers(1, 7, len(chosen))
    t = int(steps[0])
    for pitch_action, length, gap in zip(win[steps], lengths, gaps):
        if t >= len(win):
            break
        out[t] = pitch_action
        out[t + 1 : min(len(win), t + min(length, gap))] = grid.HOLD
        t += int(gap)
    return out


def octave_jumps(win: Actions, strength: float, rng: np.random.Generator) -> Actions:
    """Move some notes an octave up or down (the other way when it leaves the env's range): same pitch classes."""
    out = np.array(win, dtype=np.int64, copy=True)
    steps = _note_steps(out)
    if len(steps) == 0:
        return out
    top = grid.NOTE + grid.N_PITCHES - 1
    for step in steps[_some(len(steps), strength, rng)]:
        direction = 12 if rng.random() < 0.5 else -12
        for move in (direction, -direction):
            if grid.NOTE <= out[step] + move <= top:
                out[step] += move
                break
    return out


GRID_DEGRADATIONS: dict[str, Callable[[Actions, float, np.random.Generator], Actions]] = {
    "pitch_shuffle": pitch_shuffle,
    "random_pitches": random_pitches,
    "random_onsets": random_onsets,
    "octave_jumps": octave_jumps,
}
# degrade.py's note-level degradations that keep a melody a melody (clusters and register leave the agent's
# domain: it plays one note at a time in three octaves; random_pitch is random_pitches here).
NOTE_DEGRADATIONS = ("wrong_key", "broken_rhythm", "tempo", "dynamics", "note_dropout", "loop")
DEGRADATIONS: tuple[str, ...] = (
    *GRID_DEGRADATIONS, *NOTE_DEGRADATIONS, *degrade.RENDER_DEGRADATIONS, *degrade.AUDIO_DEGRADATIONS,
)  # fmt: skip


def check_degradation(name: str, strength: float) -> None:
    """Raise ValueError naming the problem when ``name`` or ``strength`` is not usable for a melody."""
    if name != degrade.CLEAN and name not in DEGRADATIONS:
        raise ValueError(f"Unknown melody degradation {name!r}; choose one of {(degrade.CLEAN, *DEGRADATIONS)}.")
    if name == degrade.CLEAN and strength != 0.0:
        raise ValueError(f"The clean clip has strength 0, got {strength}.")
    if name != degrade.CLEAN and not 0.0 < strength <= 1.0:
        raise ValueError(f"Degradation strength must be in (0, 1], got {strength} for {name!r}.")


# ---------------------------------------------------------------- planning and rendering


def plan_melodies(
    pieces: list[corpus.Piece], n_clips: int, seed: int, first_index: int = 0
) -> tuple[list[MelodySpec], dict[str, Actions]]:
    """Draw ``n_clips`` melody clips cycling over shuffled pieces: window, degradation, strength, seed.

    Returns the specs and each used piece's whole top line on the grid (what ``render_melody_clip`` needs).
    """
    usable = []
    for piece in pieces:
        actions = piece_actions(piece)
        if actions is not None:
            starts = window_starts(actions)
            if len(starts):
                usable.append((piece, actions, starts))
    if not usable:
        raise ValueError("No melodies to make clips from: no piece has an episode-long top line in the env's range.")
    rng = np.random.default_rng([seed, 11])
    specs, order, used = [], [], {}
    for index in range(first_index, first_index + n_clips):
        if not order:
            order = list(rng.permutation(len(usable)))
        piece, actions, starts = usable[order.pop()]
        used[piece.id] = actions
        start = int(rng.choice(starts))
        if rng.random() < corpus.CLEAN_FRACTION:
            degradation, strength = degrade.CLEAN, 0.0
        else:
            degradation = str(rng.choice(DEGRADATIONS))
            strength = round(1.0 - 0.95 * float(rng.random()), 3)
        specs.append(MelodySpec(index, piece.id, piece.collection, degradation, strength, start,
                                int(rng.integers(2**31))))
    return specs, used


def playable(notes: np.ndarray) -> np.ndarray:
    """Round pitches and velocities into MIDI's ranges, dropping notes off the keyboard or without length."""
    notes = np.array(notes, dtype=np.float64).reshape(-1, 4)
    notes[:, 0] = np.round(notes[:, 0])
    notes = notes[(notes[:, 0] >= 0) & (notes[:, 0] <= 127) & (notes[:, 2] > notes[:, 1])]
    notes[:, 3] = np.clip(np.round(notes[:, 3]), 1, 127)
    return notes


def render_melody_clip(renderer, spec: MelodySpec, actions: Actions) -> np.ndarray:
    """Render one planned melody clip: window, degrade, play as a PianoEnv episode. Mono float32, one episode long."""
    check_degradation(spec.degradation, spec.strength)
    rng = np.random.default_rng(spec.seed)
    sr = renderer.sample_rate
    win = window(actions, spec.start_step)
    if spec.degradation in GRID_DEGRADATIONS:
        win = GRID_DEGRADATIONS[spec.degradation](win, spec.strength, rng)
    notes = grid.actions_to_notes(win, step_seconds=grid.step_frames(sr) / sr)
    if spec.degradation in NOTE_DEGRADATIONS:
        notes = degrade.NOTE_DEGRADATIONS[spec.degradation](notes, spec.strength, rng)
    groups = [(notes, 0.0)]
    if spec.degradation == "detune":
        groups = degrade.detune_split(notes, spec.strength, rng)
    wave = np.zeros(grid.episode_frames(sample_rate=sr), dtype=np.float32)
    for group, cents in groups:
        wave += grid.render_melody(renderer, playable(group), detune_cents=cents)
    if spec.degradation in degrade.AUDIO_DEGRADATIONS:
        wave = degrade.degrade_audio(wave, spec.degradation, spec.strength, rng, sr)
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


def split_melodies(
    split: str = "test",
    seed: int = 0,
    per_piece: int = 1,
    cache_dir: str | os.PathLike = "data/.cache",
    sources: dict[str, int] | None = None,
    tune_sources: dict[str, int] | None = None,
) -> list[tuple[str, Actions]]:
    """``(piece id, window)`` pairs behind ``load_melodies`` (same arguments), for callers that need the pieces."""
    from rater.data import build  # noqa: PLC0415 - build imports this module

    if split not in ("train", "val", "test"):
        raise ValueError(f"Unknown split {split!r}; use 'train', 'val' or 'test'.")
    if per_piece < 1:
        raise ValueError(f"per_piece must be >= 1, got {per_piece}.")
    excerpt_pieces, tune_pieces, _ = build.parse_sources(
        corpus.DEFAULT_SOURCES if sources is None else sources,
        TUNE_SOURCES if tune_sources is None else tune_sources,
        Path(cache_dir),
    )
    pieces = excerpt_pieces + tune_pieces
    split_of = build.assign_splits([p.id for p in pieces], seed)
    out = []
    for piece in sorted(pieces, key=lambda p: p.id):
        if split_of[piece.id] != split:
            continue
        actions = piece_actions(piece)
        starts = window_starts(actions) if actions is not None else []
        if len(starts):
            picks = np.unique(np.linspace(0, len(starts) - 1, per_piece).round().astype(int))
            out.extend((piece.id, window(actions, int(starts[i]))) for i in picks)
    return out


def load_melodies(
    split: str = "test",
    seed: int = 0,
    per_piece: int = 1,
    cache_dir: str | os.PathLike = "data/.cache",
    sources: dict[str, int] | None = None,
    tune_sources: dict[str, int] | None = None,
) -> list[Actions]:
    """Top-line windows of the default dataset's pieces in ``split`` (for ``seed``), on PianoEnv's grid.

    Returns a list of (``grid.N_STEPS``,) int64 action arrays, ``per_piece`` evenly spaced windows per piece
    (fewer when a piece has fewer), pieces in sorted id order. Play one with ``env.step(a) for a in it`` or
    render it with ``grid.render_melody``. Parses with the build's note cache (seconds when the default
    dataset was built with this ``cache_dir``). The splits are the dataset's: a piece's excerpts, melody clips
    and these windows share one split. ``sources``/``tune_sources`` default to the default build's.
    """
    return [actions for _, actions in split_melodies(split, seed, per_piece, cache_dir, sources, tune_sources)]
