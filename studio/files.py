"""Atomic file writing for everything Earworm saves: WAV, MIDI, JSON, checkpoints and dataset folders.

Long jobs get interrupted; a reader must never find half a file. ``atomic_path`` hands out a temporary sibling
(same folder, same suffix, so libraries that append extensions leave it alone) and moves it over the target only
once the write finished; on an error the temporary is removed and the old target stays as it was.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write (a file or a folder); on success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, data) -> Path:
    """JSON with sorted keys and no time-dependent content of its own, so equal data gives equal files."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def save_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """Save mono float audio as 16-bit PCM WAV."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or not np.isfinite(audio).all():
        raise ValueError(f"save_wav needs finite mono audio (1-D), got shape {audio.shape}.")
    with atomic_path(path) as tmp:
        sf.write(tmp, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    return Path(path)


def save_midi(path: str | os.PathLike, midi: pretty_midi.PrettyMIDI) -> Path:
    """Save a PrettyMIDI as a standard MIDI file."""
    with atomic_path(path) as tmp:
        midi.write(str(tmp))
    return Path(path)
