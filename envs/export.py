"""Write episode audio and MIDI to disk atomically, so an interrupted save never leaves half a file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def save_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """Save mono float audio as 16-bit PCM WAV."""
    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or not np.isfinite(audio).all():
        raise ValueError(f"save_wav needs finite mono audio (1-D), got shape {audio.shape}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    sf.write(tmp, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)
    return path


def save_midi(path: str | os.PathLike, midi: pretty_midi.PrettyMIDI) -> Path:
    """Save a PrettyMIDI as a standard MIDI file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    midi.write(str(tmp))
    os.replace(tmp, path)
    return path
