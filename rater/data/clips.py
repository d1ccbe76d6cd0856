"""The on-disk dataset container every data source produces and the rater trains on.

One directory holds ``meta.csv`` (one row per clip), ``audio.npy`` (every clip's int16 samples, concatenated)
and ``info.json``. A single int16 array halves memory against float32 and loads memory-mapped, so a dataset
of hours opens instantly and worker processes share the pages. Saves are atomic (a temporary sibling
directory, then ``os.replace``) so an interrupted build never leaves a half-written dataset behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from studio.files import atomic_path

import numpy as np
import pandas as pd

from rater.data.popularity import popularity

REQUIRED_COLUMNS = (
    "id", "source", "collection", "degradation", "strength", "program", "split", "plays", "likes", "gold",
)  # fmt: skip
DERIVED_COLUMNS = ("p", "offset", "length")
SPLITS = ("train", "val", "test")
INT16_SCALE = 32767.0


def to_int16(wave: np.ndarray) -> np.ndarray:
    """Float waveform in [-1, 1] -> int16 (values outside are clipped)."""
    return np.round(np.clip(wave, -1.0, 1.0) * INT16_SCALE).astype(np.int16)


@dataclass
class Clips:
    """Clips with their metadata: ``meta`` rows index into the concatenated int16 ``audio``."""

    sample_rate: int
    meta: pd.DataFrame
    audio: np.ndarray
    info: dict = field(default_factory=dict)

    @classmethod
    def from_waveforms(
        cls, waves: Sequence[np.ndarray], meta: pd.DataFrame, sample_rate: int, info: dict | None = None
    ) -> Clips:
        """Pack float waveforms and their metadata; fills ``offset``/``length`` and computes ``p``."""
        missing = [c for c in REQUIRED_COLUMNS if c not in meta.columns]
        if missing:
            raise ValueError(f"meta is missing columns {missing}; required: {list(REQUIRED_COLUMNS)}.")
        if len(waves) != len(meta):
            raise ValueError(f"Got {len(waves)} waveforms but {len(meta)} meta rows; pass one row per waveform.")
        if len(waves) == 0:
            raise ValueError("No waveforms given: a dataset needs at least one clip.")
        bad_splits = sorted(set(meta["split"]) - set(SPLITS))
        if bad_splits:
            raise ValueError(f"Unknown split names {bad_splits}; use {list(SPLITS)}.")
        arrays = []
        for i, wave in enumerate(waves):
            wave = np.asarray(wave)
            if wave.ndim != 1 or wave.size == 0:
                raise ValueError(f"Waveform {i} has shape {wave.shape}; pass non-empty mono 1-D arrays.")
            if not np.all(np.isfinite(wave)):
                raise ValueError(f"Waveform {i} contains NaN or inf; clean or drop it before packing.")
            arrays.append(to_int16(wave))
        lengths = np.array([a.size for a in arrays], dtype=np.int64)
        meta = meta.reset_index(drop=True).copy()
        meta["plays"] = meta["plays"].astype(np.int64)
        meta["likes"] = meta["likes"].astype(np.int64)
        meta["gold"] = meta["gold"].astype(np.float64)
        meta["p"] = popularity(meta["plays"].to_numpy(), meta["likes"].to_numpy())
        meta["offset"] = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        meta["length"] = lengths
        return cls(int(sample_rate), meta, np.concatenate(arrays), dict(info or {}))

    def __len__(self) -> int:
        return len(self.meta)

    def waveform(self, i: int) -> np.ndarray:
        """Clip ``i`` as float32 in [-1, 1]."""
        offset, length = int(self.meta.at[i, "offset"]), int(self.meta.at[i, "length"])
        return self.audio[offset : offset + length].astype(np.float32) / np.float32(INT16_SCALE)

    def waveforms(self, indices: Sequence[int] | None = None) -> list[np.ndarray]:
        """Several clips as float32 (all of them when ``indices`` is None)."""
        return [self.waveform(int(i)) for i in (range(len(self)) if indices is None else indices)]

    def undegraded(self, split: str, kind: str | None = "excerpt") -> np.ndarray:
        """Row indices of the clean (undegraded) clips of one split: the real-music reference, shape (n,).

        ``kind``: ``"excerpt"`` (polyphonic corpus excerpts, the default), ``"melody"`` (melodies played as
        PianoEnv plays them) or None for both. Datasets without a ``kind`` column (ingested audio) ignore it.
        """
        if split not in SPLITS:
            raise ValueError(f"Unknown split {split!r}; use one of {list(SPLITS)}.")
        rows = (self.meta["degradation"] == "none") & (self.meta["split"] == split)
        if kind is not None and "kind" in self.meta.columns:
            if kind not in set(self.meta["kind"]):
                raise ValueError(f"No clips of kind {kind!r} here; this dataset has {sorted(set(self.meta['kind']))}.")
            rows &= self.meta["kind"] == kind
        return np.flatnonzero(rows.to_numpy())

    def split(self, name: str) -> Clips:
        """The clips of one split, repacked contiguously (metadata rows renumbered from 0)."""
        if name not in SPLITS:
            raise ValueError(f"Unknown split {name!r}; use one of {list(SPLITS)}.")
        rows = np.flatnonzero(self.meta["split"].to_numpy() == name)
        meta = self.meta.iloc[rows].reset_index(drop=True).copy()
        audio = (
            np.concatenate([self.audio[o : o + n] for o, n in zip(meta["offset"], meta["length"])])
            if len(rows)
            else np.zeros(0, dtype=np.int16)
        )
        meta["offset"] = np.concatenate([[0], np.cumsum(meta["length"].to_numpy())[:-1]]).astype(np.int64)[: len(meta)]
        info = {k: v for k, v in self.info.items() if k != "data_hash"}
        return Clips(self.sample_rate, meta, np.ascontiguousarray(audio), {**info, "split": name})

    @property
    def data_hash(self) -> str:
        """sha256 over the audio samples, the metadata CSV and the sample rate (cached in ``info``)."""
        if "data_hash" not in self.info:
            digest = hashlib.sha256()
            digest.update(str(self.sample_rate).encode())
            digest.update(self.meta.to_csv(index=False).encode())
            audio = np.ascontiguousarray(self.audio, dtype="<i2")
            for start in range(0, audio.size, 1 << 24):
                digest.update(audio[start : start + (1 << 24)].tobytes())
            self.info["data_hash"] = digest.hexdigest()
        return self.info["data_hash"]

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``meta.csv``, ``audio.npy`` and ``info.json`` atomically into ``directory``."""
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            self.meta.to_csv(tmp / "meta.csv", index=False)
            np.save(tmp / "audio.npy", np.ascontiguousarray(self.audio, dtype=np.int16))
            info = {**self.info, "sample_rate": self.sample_rate, "clips": len(self), "data_hash": self.data_hash}
            (tmp / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
        return Path(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike, mmap: bool = True) -> Clips:
        """Open a saved dataset; ``audio`` is memory-mapped read-only unless ``mmap=False``."""
        path = Path(directory)
        missing = [n for n in ("meta.csv", "audio.npy", "info.json") if not (path / n).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{path} is not a Clips dataset (missing {missing}). Build one with `python -m rater.data build`."
            )
        info = json.loads((path / "info.json").read_text())
        meta = pd.read_csv(path / "meta.csv", dtype={"id": str, "source": str}, keep_default_na=False, na_values=[""])
        audio = np.load(path / "audio.npy", mmap_mode="r" if mmap else None)
        sample_rate = int(info.pop("sample_rate"))
        info.pop("clips", None)
        expected = int(meta["offset"].iloc[-1] + meta["length"].iloc[-1]) if len(meta) else 0
        if audio.size != expected:
            raise ValueError(f"{path}: audio.npy has {audio.size} samples but meta.csv expects {expected}; rebuild it.")
        return cls(sample_rate, meta, audio, info)
