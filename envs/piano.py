"""PianoEnv: compose a short piece one time slot at a time; a frozen scorer rates the audio.

Action space
    One step is one time slot (default an eighth note at 120 bpm, ``step_seconds=0.25``, rounded to whole
    64-frame FluidSynth blocks). A slot's action is ``0`` = rest (all notes off), ``1`` = hold (keep what
    sounds), ``2 + i`` = note-on of pitch ``low_pitch + i`` (ends the previous notes), for
    ``n_pitches`` pitches (default 36: three octaves from C3 = MIDI 48).
    With ``chord_size == 1`` and ``velocity_levels == 1`` this is ``Discrete(n_pitches + 2)``. Otherwise it
    is ``MultiDiscrete([n_pitches + 2] * chord_size + [velocity_levels])`` (the last entry only when
    ``velocity_levels > 1``): slots with a note-on form a chord of up to ``chord_size`` distinct pitches; with
    no note-on, any ``hold`` keeps the sound and otherwise the step rests. Velocities are
    ``velocity_levels`` evenly spaced values in 40..110 (90 when there is one level). The encoding and the
    default grid live in ``studio.grid``.

Observation space
    ``Box(0, 1, (history * n_pitches + 1,), float32)``: a piano roll of the last ``history`` steps (oldest
    first; 1.0 = note started that step, 0.5 = note held, 0 = silent; steps before the start are 0) flattened
    row by row, then the position in the episode ``t / n_steps``. By default ``history = n_steps``: the whole
    episode so far is visible (what the real-music prior in ``agents/prior.py`` and the policy it starts are
    trained on).

Reward
    From an injected scorer (``scorer(list_of_waveforms) -> np.ndarray``): ``reward_mode="final"`` pays the
    score of the whole episode's audio (release tail included) on the last step and 0 before;
    ``"shaped"`` pays ``score(audio so far) - score(audio at the previous step)`` (potential-based, with
    score(nothing) = 0), so the episode's rewards sum to the final score. With ``scorer="deferred"`` the env
    pays 0 and leaves the audio to score in ``info`` (``"audio"`` at the end; ``"audio_so_far"`` each step
    in shaped mode), so a VecEnv wrapper can batch one rater across all envs. With ``scorer=None`` the
    default trained rater (``rater.scorer.Scorer.load()``) is used, or a clear error says how to train one.

Episode end
    Terminates after ``n_steps`` steps (default 32); never truncates. At the end all notes are released, a
    ``tail_seconds`` release tail is rendered, and ``info`` holds ``"audio"`` (mono float32, in [-1, 1]),
    ``"midi"`` (a ``pretty_midi.PrettyMIDI``), ``"sample_rate"``, ``"notes"`` (pitch, start_s, end_s, velocity)
    and ``"roll"`` (the episode's piano roll, as in the observation).

Arguments
    ``scorer``, ``reward_mode``, ``n_steps``, ``step_seconds``, ``low_pitch``, ``n_pitches``,
    ``velocity_levels``, ``chord_size``, ``history`` (default ``n_steps``), ``program`` (GM program, 0 = piano), ``sample_rate``
    (16000), ``soundfont`` (see ``studio.synth.resolve_soundfont``), ``gain`` (0.2), ``tail_seconds`` (0.5),
    ``render_mode`` (None or ``"rgb_array"``: a piano-roll image of the episode so far).

Determinism: the env has no randomness of its own and every episode gets a fresh synthesizer voice on a
soundfont loaded once, so the same actions give bit-identical audio in every episode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pretty_midi
from gymnasium import spaces

from studio import grid
from studio.grid import HOLD, NOTE, REST  # noqa: F401 - REST re-exported for callers of envs.piano
from studio.synth import Renderer, block_frames

Scorer = Callable[[Sequence[np.ndarray]], np.ndarray]


class PianoEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        scorer: Scorer | str | None = None,
        reward_mode: str = "final",
        n_steps: int = grid.N_STEPS,
        step_seconds: float = grid.STEP_SECONDS,
        low_pitch: int = grid.LOW_PITCH,
        n_pitches: int = grid.N_PITCHES,
        velocity_levels: int = 1,
        chord_size: int = 1,
        history: int | None = None,
        program: int = grid.PROGRAM,
        sample_rate: int = grid.SAMPLE_RATE,
        soundfont: str | None = None,
        gain: float = grid.GAIN,
        tail_seconds: float = grid.TAIL_SECONDS,
        render_mode: str | None = None,
    ):
        check_reward_mode(reward_mode)
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}.")
        if not (0 <= low_pitch and low_pitch + n_pitches <= 128 and n_pitches >= 1):
            raise ValueError(f"Pitches {low_pitch}..{low_pitch + n_pitches - 1} must lie in MIDI 0..127.")
        history = n_steps if history is None else history
        if n_steps < 1 or history < 1 or chord_size < 1 or velocity_levels < 1:
            raise ValueError("n_steps, history, chord_size and velocity_levels must all be >= 1.")
        self.scorer = _resolve_scorer(scorer)
        self.deferred = isinstance(self.scorer, str)
        self.reward_mode = reward_mode
        self.n_steps, self.low_pitch, self.n_pitches = n_steps, low_pitch, n_pitches
        self.chord_size, self.history, self.program = chord_size, history, program
        self.render_mode = render_mode

        self.renderer = Renderer(soundfont=soundfont, sample_rate=sample_rate, gain=gain)
        self.sample_rate = self.renderer.sample_rate
        self.step_frames = block_frames(step_seconds, self.sample_rate)
        self.step_seconds = self.step_frames / self.sample_rate
        self.tail_frames = block_frames(tail_seconds, self.sample_rate)
        levels = np.linspace(40, 110, velocity_levels).round().astype(int)
        self.velocities = np.array([grid.VELOCITY]) if velocity_levels == 1 else levels

        n_choices = n_pitches + NOTE
        if chord_size == 1 and velocity_levels == 1:
            self.action_space = spaces.Discrete(n_choices)
        else:
            extra = [velocity_levels] if velocity_levels > 1 else []
            self.action_space = spaces.MultiDiscrete([n_choices] * chord_size + extra)
        self.observation_space = spaces.Box(0.0, 1.0, (history * n_pitches + 1,), np.float32)

        # Episode state, allocated once and reused.
        self._audio = np.zeros(n_steps * self.step_frames + self.tail_frames, dtype=np.float32)
        self._roll = np.zeros((n_steps + history, n_pitches), dtype=np.float32)  # `history` blank rows first
        self._voice = None
        self._sounding: list[tuple[int, int, int]] = []  # (pitch, start_step, velocity)
        self._notes: list[tuple[int, int, int, int]] = []  # (pitch, start_step, end_step, velocity)
        self._t = 0
        self._last_score = 0.0

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self._voice is not None:
            self._voice.close()
        self._voice = self.renderer.voice()  # fresh synth: nothing sounds across episodes, output is exact
        self._voice.program(0, self.program)
        self._audio.fill(0.0)
        self._roll.fill(0.0)
        self._sounding.clear()
        self._notes.clear()
        self._t = 0
        self._last_score = 0.0
        return self._observation(), {}

    def step(self, action):
        if self._voice is None:
            raise RuntimeError("Call reset() before step().")
        if self._t >= self.n_steps:
            raise RuntimeError("The episode has ended; call reset().")
        pitches, hold, velocity = self._decode(action)
        t = self._t
        row = self._roll[self.history + t]
        if pitches or not hold:
            for pitch, start, vel in self._sounding:
                self._voice.noteoff(0, pitch)
                self._notes.append((pitch, start, t, vel))
            self._sounding.clear()
        for pitch in pitches:
            self._voice.noteon(0, pitch, velocity)
            self._sounding.append((pitch, t, velocity))
        for pitch, start, _ in self._sounding:
            row[pitch - self.low_pitch] = 1.0 if start == t else 0.5
        start_frame = t * self.step_frames
        self._voice.write(self._audio, start_frame, start_frame + self.step_frames)
        self._t += 1

        terminated = self._t == self.n_steps
        info: dict[str, Any] = {}
        if terminated:
            self._release()
        end_frame = self._audio.shape[0] if terminated else self._t * self.step_frames
        reward = self._reward(end_frame, terminated, info)
        if terminated:
            info.update(self.episode_result())
        return self._observation(), reward, terminated, False, info

    def render(self):
        if self.render_mode == "rgb_array":
            return piano_roll_image(self._roll[self.history :], self.low_pitch)
        return None

    def close(self):
        if self._voice is not None:
            self._voice.close()
            self._voice = None
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None

    # ------------------------------------------------------------------ helpers
    def episode_result(self) -> dict[str, Any]:
        """The finished episode's audio (a copy), MIDI, notes and sample rate."""
        seconds = self.step_seconds
        notes = [(p, s * seconds, e * seconds, v) for p, s, e, v in self._notes]
        return {
            "audio": self._audio.copy(),
            "midi": notes_to_midi(notes, self.program),
            "notes": notes,
            "roll": self._roll[self.history :].copy(),
            "sample_rate": self.sample_rate,
        }

    def _decode(self, action) -> tuple[list[int], bool, int]:
        if not self.action_space.contains(action):
            raise ValueError(f"Action {action!r} is not in {self.action_space}.")
        if isinstance(self.action_space, spaces.Discrete):
            a = int(action)
            pitch = grid.action_pitch(a, self.low_pitch)
            return ([] if pitch is None else [pitch]), a == HOLD, int(self.velocities[0])
        slots = np.asarray(action)[: self.chord_size]
        velocity = int(self.velocities[int(np.asarray(action)[-1])]) if len(self.velocities) > 1 else grid.VELOCITY
        pitches = sorted({grid.action_pitch(a, self.low_pitch) for a in slots if a >= NOTE})
        return pitches, bool((slots == HOLD).any()), velocity

    def _release(self) -> None:
        for pitch, start, vel in self._sounding:
            self._voice.noteoff(0, pitch)
            self._notes.append((pitch, start, self.n_steps, vel))
        self._sounding.clear()
        start = self.n_steps * self.step_frames
        self._voice.write(self._audio, start, start + self.tail_frames)
        np.clip(self._audio, -1.0, 1.0, out=self._audio)

    def _reward(self, end_frame: int, terminated: bool, info: dict) -> float:
        if self.reward_mode == "final" and not terminated:
            return 0.0
        if self.deferred:
            if self.reward_mode == "shaped":
                info["audio_so_far"] = self._audio[:end_frame].copy()
            return 0.0
        score = float(self.scorer([self._audio[:end_frame]])[0])
        if not np.isfinite(score):
            raise ValueError(f"The scorer returned {score} for step {self._t}; check the scorer/rater checkpoint.")
        reward = reward_from_score(self.reward_mode, score, self._last_score)
        self._last_score = score
        return reward

    def _observation(self) -> np.ndarray:
        return roll_observation(self._roll, self._t, self.history, self.n_steps)


REWARD_MODES = ("final", "shaped")


def check_reward_mode(mode: str) -> None:
    if mode not in REWARD_MODES:
        raise ValueError(f"reward_mode must be 'final' or 'shaped', got {mode!r}.")


def reward_from_score(mode: str, score: float, previous: float):
    """The reward rule: ``final`` pays the episode's score; ``shaped`` pays ``score - previous`` (potential-based,
    ``previous`` = the score at the last scored step, 0 before the first), so an episode's rewards sum to its score."""
    return score - previous if mode == "shaped" else score


def roll_observation(padded_roll: np.ndarray, t: int, history: int, n_steps: int) -> np.ndarray:
    """The observation at step ``t`` from a roll with ``history`` blank rows before step 0 (a new array)."""
    obs = np.empty(history * padded_roll.shape[1] + 1, dtype=np.float32)
    obs[:-1] = padded_roll[t : t + history].ravel()
    obs[-1] = t / n_steps
    return obs


def actions_to_roll(actions: Sequence[int], n_pitches: int = grid.N_PITCHES, history: int = 0) -> np.ndarray:
    """The piano roll PianoEnv builds from ``Discrete`` actions (rest/hold/note-on), with ``history`` blank rows first.

    Lets a prior or a monitor see exactly what the agent saw without rendering audio.
    """
    roll = np.zeros((len(actions) + history, n_pitches), dtype=np.float32)
    sounding = -1
    for t, a in enumerate(actions):
        if a >= NOTE:
            sounding = int(a) - NOTE
            roll[history + t, sounding] = 1.0
        elif a == HOLD and sounding >= 0:
            roll[history + t, sounding] = 0.5
        else:
            sounding = -1
    return roll


def _resolve_scorer(scorer):
    if scorer == "deferred" or callable(scorer):
        return scorer
    if scorer is not None:
        raise TypeError(f"scorer must be a callable, 'deferred' or None, got {scorer!r}.")
    try:
        from rater.scorer import Scorer as RaterScorer  # noqa: PLC0415 - optional, heavy (torch)
    except ImportError as err:
        raise RuntimeError(
            "PianoEnv needs a scorer: pass scorer=<callable>, or train the default rater with "
            "`python train.py --agent rater`."
        ) from err
    return RaterScorer.load()


def notes_to_midi(notes: Sequence[tuple[int, float, float, int]], program: int = 0) -> pretty_midi.PrettyMIDI:
    """Notes ``(pitch, start_s, end_s, velocity)`` as a one-instrument PrettyMIDI."""
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=program)
    inst.notes = [pretty_midi.Note(velocity=int(v), pitch=int(p), start=float(s), end=float(e)) for p, s, e, v in notes]
    pm.instruments.append(inst)
    return pm


def piano_roll_image(roll: np.ndarray, low_pitch: int = 48, scale: int = 6) -> np.ndarray:
    """An RGB uint8 image (pitch up, time right) of a (steps, pitches) roll; C rows are shaded for reading."""
    steps, pitches = roll.shape
    img = np.full((pitches, steps, 3), 24, dtype=np.uint8)
    img[((np.arange(pitches) + low_pitch) % 12 == 0)] = 48
    on = roll.T > 0
    img[on] = np.stack([np.full(on.sum(), 255), (roll.T[on] * 200).astype(np.uint8), np.full(on.sum(), 60)], -1)
    img = img[::-1]
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
