"""Offline FluidSynth rendering: soundfont resolution, exact per-episode voices, note lists and MIDI.

Why not pyfluidsynth's ``Synth`` directly: a reused synth is not bit-identical across episodes even after
``system_reset()`` (per-voice state survives), and a fresh ``Synth`` + ``sfload`` costs ~10-20 ms. Here a
long-lived *owner* synth loads the soundfont once and every render or episode gets a fresh, cheap synth
(~0.4 ms) that shares the owner's loaded font, so output is exact and fast. Audio comes from
``fluid_synth_write_float`` straight into caller-owned float32 buffers (no dither, no int16 clipping), in
64-frame blocks because FluidSynth applies events on 64-frame boundaries.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
from studio import SAMPLE_RATE

BLOCK = 64  # FluidSynth's internal block: events land on these boundaries.
DRUM_CHANNEL = 9
FLUID_WARN = 2
SOUNDFONT_ENV = "EARWORM_SOUNDFONT"
SYSTEM_SOUNDFONT_DIR = Path("/usr/share/sounds/sf2")
SOUNDFONT_DIR = Path(__file__).resolve().parent.parent / "soundfonts"


class SynthError(RuntimeError):
    """FluidSynth or a soundfont could not be used; the message says how to fix it."""


def _load_library() -> ctypes.CDLL:
    try:
        import fluidsynth  # noqa: PLC0415 - import errors become one clear message below
    except (ImportError, OSError) as err:
        raise SynthError(
            f"libfluidsynth could not be loaded ({err}). Install it: `sudo apt-get install libfluidsynth3` "
            "on Debian/Ubuntu (`make setup` does this), `brew install fluid-synth` on macOS; "
            "then `pip install pyfluidsynth`."
        ) from err
    lib = fluidsynth._fl
    p, i, d, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_char_p
    signatures = {
        "new_fluid_settings": (p, []),
        "delete_fluid_settings": (None, [p]),
        "fluid_settings_setint": (i, [p, f, i]),
        "fluid_settings_setnum": (i, [p, f, d]),
        "new_fluid_synth": (p, [p]),
        "delete_fluid_synth": (None, [p]),
        "fluid_synth_sfload": (i, [p, f, i]),
        "fluid_synth_get_sfont_by_id": (p, [p, i]),
        "fluid_synth_add_sfont": (i, [p, p]),
        "fluid_synth_remove_sfont": (i, [p, p]),
        "fluid_synth_program_select": (i, [p, i, i, i, i]),
        "fluid_synth_noteon": (i, [p, i, i, i]),
        "fluid_synth_noteoff": (i, [p, i, i]),
        "fluid_synth_all_notes_off": (i, [p, i]),
        "fluid_synth_pitch_bend": (i, [p, i, i]),
        "fluid_synth_write_float": (i, [p, i, p, i, i, p, i, i]),
        "fluid_set_log_function": (p, [i, p, p]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    # A fresh synth warns "No preset found" for every channel until the shared font is attached; we check
    # every call's return value ourselves, so FluidSynth's warning level only adds noise.
    lib.fluid_set_log_function(FLUID_WARN, None, None)
    return lib


_LIB: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _LIB
    if _LIB is None:
        _LIB = _load_library()
    return _LIB


def resolve_soundfont(path: str | os.PathLike | None = None) -> Path:
    """Pick the soundfont: explicit path > $EARWORM_SOUNDFONT > soundfonts/*.sf2 > system FluidR3_GM > TimGM6mb.

    TimGM6mb ships inside the pretty_midi package, so a fresh install always has one.
    """
    explicit = path if path is not None else os.environ.get(SOUNDFONT_ENV) or None
    if explicit is not None:
        chosen = Path(explicit).expanduser()
        if not chosen.is_file():
            source = "--soundfont" if path is not None else f"${SOUNDFONT_ENV}"
            raise SynthError(
                f"Soundfont not found: {chosen} (from {source}). Pass an existing .sf2 file, or unset it to "
                f"use the default (see soundfonts/README.md)."
            )
        return chosen
    local = sorted(SOUNDFONT_DIR.glob("*.sf2"))
    if local:
        return local[0]
    if (SYSTEM_SOUNDFONT_DIR / "FluidR3_GM.sf2").is_file():
        return SYSTEM_SOUNDFONT_DIR / "FluidR3_GM.sf2"
    bundled = Path(str(resources.files("pretty_midi") / "TimGM6mb.sf2"))
    if bundled.is_file():
        return bundled
    raise SynthError(
        "No soundfont found. Put a .sf2 in soundfonts/, set $EARWORM_SOUNDFONT, or "
        "`sudo apt-get install fluid-soundfont-gm` (see soundfonts/README.md)."
    )


def block_frames(seconds: float, sample_rate: int) -> int:
    """Frames for ``seconds`` rounded to whole FluidSynth blocks (at least one)."""
    return max(BLOCK, int(round(seconds * sample_rate / BLOCK)) * BLOCK)


class Voice:
    """A fresh synth sharing the renderer's loaded font: exact, cheap, for one episode or one render."""

    def __init__(self, renderer: Renderer):
        self._renderer = renderer  # keeps the owner (and so the shared font) alive while this voice lives
        self._lib = renderer._lib
        self._font = renderer._font
        self._sfid = renderer._sfid
        self._ptr = self._lib.new_fluid_synth(renderer._settings)
        if not self._ptr:
            raise SynthError("FluidSynth could not create a synthesizer (out of memory?).")
        self._lib.fluid_synth_add_sfont(self._ptr, self._font)
        self._right = renderer._scratch
        self.sample_rate = renderer.sample_rate
        renderer._live.add(self._ptr)

    def program(self, channel: int, program: int, bank: int = 0) -> None:
        """Select a General MIDI program (0-127) on a channel; drums use bank 128."""
        if not 0 <= program <= 127:
            raise ValueError(f"GM program must be in 0..127, got {program}.")
        if self._lib.fluid_synth_program_select(self._ptr, channel, self._sfid, bank, program) != 0:
            raise SynthError(f"The soundfont has no preset bank {bank} program {program}; pick another program.")

    def noteon(self, channel: int, key: int, velocity: int) -> None:
        if not (0 <= key <= 127 and 1 <= velocity <= 127):
            raise ValueError(f"MIDI key must be 0..127 and velocity 1..127, got key={key} velocity={velocity}.")
        self._lib.fluid_synth_noteon(self._ptr, channel, key, velocity)

    def noteoff(self, channel: int, key: int) -> None:
        self._lib.fluid_synth_noteoff(self._ptr, channel, key)

    def all_notes_off(self) -> None:
        self._lib.fluid_synth_all_notes_off(self._ptr, -1)

    def pitch_bend(self, channel: int, cents: float) -> None:
        """Detune a channel by ``cents`` (default bend range is +-200 cents)."""
        value = int(np.clip(8192 + cents / 200.0 * 8192, 0, 16383))
        self._lib.fluid_synth_pitch_bend(self._ptr, channel, value)

    def write(self, out: np.ndarray, start: int, stop: int) -> None:
        """Render frames [start, stop) as mono (mean of L and R) into ``out`` in place, no allocation."""
        n = stop - start
        if n % BLOCK or out.dtype != np.float32 or not out.flags.c_contiguous or stop > out.shape[0]:
            raise ValueError("write() needs a contiguous float32 buffer and a whole number of 64-frame blocks.")
        done = 0
        while done < n:
            chunk = min(n - done, self._right.shape[0])
            left_ptr = out.ctypes.data + (start + done) * 4
            self._lib.fluid_synth_write_float(self._ptr, chunk, left_ptr, 0, 1, self._right.ctypes.data, 0, 1)
            view = out[start + done : start + done + chunk]
            view += self._right[:chunk]
            view *= 0.5
            done += chunk

    def close(self) -> None:
        if self._ptr:
            self._renderer._free_voice(self._ptr)
            self._ptr = None

    def __del__(self) -> None:
        if getattr(self, "_ptr", None):
            self.close()


class Renderer:
    """Owns one loaded soundfont and renders note lists, PrettyMIDI objects and episodes through fresh Voices.

    Holds C state: create one per process (e.g. in a worker initializer), never pickle it.
    """

    def __init__(
        self,
        soundfont: str | os.PathLike | None = None,
        sample_rate: int = SAMPLE_RATE,
        gain: float = 0.2,
        reverb: bool = False,
        chorus: bool = False,
    ):
        if not 8000 <= sample_rate <= 96000:
            raise ValueError(f"sample_rate must be in 8000..96000 Hz, got {sample_rate}.")
        self._lib = _lib()
        self.soundfont = resolve_soundfont(soundfont)
        self.sample_rate = int(sample_rate)
        self.gain = float(gain)
        self._settings = self._lib.new_fluid_settings()
        lib, s = self._lib, self._settings
        lib.fluid_settings_setnum(s, b"synth.sample-rate", float(sample_rate))
        lib.fluid_settings_setnum(s, b"synth.gain", self.gain)
        lib.fluid_settings_setint(s, b"synth.midi-channels", 16)
        lib.fluid_settings_setint(s, b"synth.reverb.active", int(reverb))
        lib.fluid_settings_setint(s, b"synth.chorus.active", int(chorus))
        lib.fluid_settings_setint(s, b"synth.cpu-cores", 1)
        self._owner = lib.new_fluid_synth(s)
        self._sfid = lib.fluid_synth_sfload(self._owner, str(self.soundfont).encode(), 0)
        if self._sfid < 0:
            lib.delete_fluid_synth(self._owner)
            lib.delete_fluid_settings(s)
            self._owner = None
            raise SynthError(
                f"FluidSynth could not read the soundfont {self.soundfont}: is it a valid .sf2 file? "
                "Pass another with --soundfont or $EARWORM_SOUNDFONT (see soundfonts/README.md)."
            )
        self._font = lib.fluid_synth_get_sfont_by_id(self._owner, self._sfid)
        self._scratch = np.zeros(8192, dtype=np.float32)
        # Pointers of live voices, so close() can free them before the shared font, whatever order the
        # garbage collector finalises objects in (it clears weak references before finalisers run).
        self._live: set[int] = set()

    def voice(self) -> Voice:
        """A fresh synth on the shared font: identical calls give bit-identical audio."""
        if self._owner is None:
            raise SynthError("This Renderer is closed.")
        return Voice(self)

    def render_notes(
        self,
        notes: Iterable[Sequence[float]],
        program: int = 0,
        tail_seconds: float = 0.5,
        detune_cents: float = 0.0,
    ) -> np.ndarray:
        """Render ``(pitch, start_s, end_s, velocity)`` notes on one GM program to mono float32 in [-1, 1]."""
        return self._render_events([(0, program, list(notes))], tail_seconds, detune_cents)

    def render_midi(self, pm, tail_seconds: float = 0.5) -> np.ndarray:
        """Render a ``pretty_midi.PrettyMIDI`` (one channel per instrument, drums on channel 10)."""
        tracks, channel = [], 0
        for inst in pm.instruments:
            notes = [(n.pitch, n.start, n.end, n.velocity) for n in inst.notes]
            if inst.is_drum:
                tracks.append((DRUM_CHANNEL, -inst.program - 1, notes))
                continue
            if channel == DRUM_CHANNEL:
                channel += 1
            if channel > 15:
                raise ValueError("render_midi supports at most 15 melodic instruments (MIDI has 16 channels).")
            tracks.append((channel, inst.program, notes))
            channel += 1
        return self._render_events(tracks, tail_seconds, 0.0)

    def _render_events(self, tracks, tail_seconds: float, detune_cents: float) -> np.ndarray:
        sr = self.sample_rate
        events = []  # (frame, is_on, channel, key, velocity); note-offs sort before note-ons at a frame
        for channel, _, notes in tracks:
            for pitch, start, end, velocity in notes:
                if end <= start or start < 0:
                    raise ValueError(f"Bad note (pitch={pitch}, start={start}, end={end}): need 0 <= start < end.")
                on = int(round(start * sr / BLOCK)) * BLOCK
                off = max(on + BLOCK, int(round(end * sr / BLOCK)) * BLOCK)
                events.append((on, 1, channel, int(pitch), int(velocity)))
                events.append((off, 0, channel, int(pitch), 0))
        events.sort()
        last = events[-1][0] if events else 0
        out = np.zeros(last + block_frames(tail_seconds, sr), dtype=np.float32)
        voice = self.voice()
        try:
            for channel, program, _ in tracks:
                if program < 0:
                    voice.program(channel, -program - 1, bank=128)
                else:
                    voice.program(channel, program)
                if detune_cents:
                    voice.pitch_bend(channel, detune_cents)
            cursor = 0
            for frame, is_on, channel, key, velocity in events:
                if frame > cursor:
                    voice.write(out, cursor, frame)
                    cursor = frame
                if is_on:
                    voice.noteon(channel, key, velocity)
                else:
                    voice.noteoff(channel, key)
            voice.write(out, cursor, out.shape[0])
        finally:
            voice.close()
        np.clip(out, -1.0, 1.0, out=out)
        return out

    def _free_voice(self, ptr: int) -> None:
        if ptr in self._live:
            self._live.discard(ptr)
            self._lib.fluid_synth_remove_sfont(ptr, self._font)
            self._lib.delete_fluid_synth(ptr)

    def close(self) -> None:
        if self._owner is not None:
            for ptr in list(self._live):
                self._free_voice(ptr)
            self._lib.delete_fluid_synth(self._owner)
            self._lib.delete_fluid_settings(self._settings)
            self._owner = None

    def __del__(self) -> None:
        if getattr(self, "_owner", None) is not None:
            self.close()
