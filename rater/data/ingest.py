"""Bring a user's own audio with play and like counts into the same Clips format as the default dataset.

Two inputs: a manifest (CSV or Parquet: ``path, plays, likes`` and optional ``id, split``; paths relative to
the manifest's folder) or the Free Music Archive layout (``fma_metadata/tracks.csv`` joined with
``fma_*/NNN/NNNNNN.mp3``). Real collections always hold some broken files, so a bad row or file is skipped
and counted by reason in ``report.json``, never fatal. User clips have no gold score (NaN).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import librosa
import numpy as np
import pandas as pd

from rater.data.build import POOL_CONTEXT
from studio.files import write_json
from studio.progress import progress_bar
from rater.data.clips import Clips
from rater.data.popularity import validate_counts
from studio import SAMPLE_RATE

SPLIT_NAMES = ("train", "val", "test")
FMA_SPLITS = {"training": "train", "validation": "val", "test": "test"}
SILENCE_PEAK = 1e-3  # about -60 dBFS
EXAMPLES_PER_REASON = 5


def hash_split(clip_id: str) -> str:
    """Deterministic 80/10/10 split from the id alone, so a clip keeps its split when the manifest grows."""
    fraction = int(hashlib.sha256(str(clip_id).encode()).hexdigest()[:8], 16) / 16**8
    return "train" if fraction < 0.8 else "val" if fraction < 0.9 else "test"


def read_manifest(manifest: str | os.PathLike) -> pd.DataFrame:
    """Manifest rows with absolute paths, string ids and a split column (filled by hash when absent)."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"Manifest not found: {manifest}. Pass a CSV or Parquet file with path, plays, likes.")
    if manifest.suffix.lower() in (".parquet", ".pq"):
        try:
            table = pd.read_parquet(manifest)
        except ImportError as err:
            raise ImportError(f"Reading {manifest} needs a Parquet engine: `pip install pyarrow`, or use CSV.") from err
    else:
        table = pd.read_csv(manifest)
    missing = {"path", "plays", "likes"} - set(table.columns)
    if missing:
        raise ValueError(
            f"Manifest {manifest} lacks column(s) {sorted(missing)}; it needs path, plays, likes "
            f"(optional id, split). Found: {list(table.columns)}."
        )
    rows = pd.DataFrame(
        {
            "path": [str((manifest.parent / str(p)).resolve()) for p in table["path"]],
            "plays": pd.to_numeric(table["plays"], errors="coerce"),
            "likes": pd.to_numeric(table["likes"], errors="coerce"),
        }
    )
    rows["id"] = table["id"].astype(str) if "id" in table else [Path(str(p)).stem for p in table["path"]]
    rows["split"] = table["split"].astype(str) if "split" in table else ""
    bad = set(rows["split"]) - set(SPLIT_NAMES) - {""}
    if bad:
        raise ValueError(f"Manifest {manifest} has split values {sorted(bad)}; use train, val or test (or omit).")
    return rows


def read_fma(fma_root: str | os.PathLike) -> pd.DataFrame:
    """FMA tracks as manifest rows: listens as plays, favorites as likes, the official split when present."""
    root = Path(fma_root)
    tracks_csv = root / "fma_metadata" / "tracks.csv"
    if not tracks_csv.is_file():
        raise FileNotFoundError(
            f"{tracks_csv} not found: --fma-root must hold fma_metadata/ and fma_small/ (or fma_medium/, ...)."
        )
    tracks = pd.read_csv(tracks_csv, index_col=0, header=[0, 1])
    for column in (("track", "listens"), ("track", "favorites")):
        if column not in tracks.columns:
            raise ValueError(f"{tracks_csv} has no column {column}: is it FMA's tracks.csv (two header rows)?")
    audio_dirs = sorted(p for p in root.glob("fma_*") if p.is_dir() and p.name != "fma_metadata")
    if not audio_dirs:
        raise FileNotFoundError(f"No audio folder (fma_small, fma_medium, ...) under {root}.")

    def locate(track_id: int) -> str:
        name = f"{track_id:06d}"
        candidates = [d / name[:3] / f"{name}.mp3" for d in audio_dirs]
        return str(next((c for c in candidates if c.is_file()), candidates[0]))

    ids = [int(i) for i in tracks.index]
    has_split = ("set", "split") in tracks.columns
    split = tracks[("set", "split")].map(FMA_SPLITS).fillna("").to_numpy() if has_split else [""] * len(ids)
    return pd.DataFrame(
        {
            "path": [locate(i) for i in ids],
            "plays": pd.to_numeric(tracks[("track", "listens")], errors="coerce").to_numpy(),
            "likes": pd.to_numeric(tracks[("track", "favorites")], errors="coerce").to_numpy(),
            "id": [f"{i:06d}" for i in ids],
            "split": split,
        }
    )


def file_digest(path: str) -> str:
    """sha256 of the file's bytes: exact copies under other ids or names are the same recording."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def decode(path: str, sample_rate: int, max_seconds: float, min_seconds: float) -> tuple[np.ndarray | None, str]:
    """Load mono audio at ``sample_rate``, cropped to ``max_seconds``; or (None, "reason[: detail]") when unusable.

    Every check runs on the samples as decoded, at the file's own rate, before the conversions that could hide
    a problem: NaN or inf samples (``non_finite``) before averaging channels or resampling (either spreads
    them or raises); silence on the signal without its DC offset, since a constant signal is silent however
    far from zero it sits (``constant``: NaN written to integer PCM reads back as full-scale DC); float samples
    beyond full scale (``out_of_range``) before clipping to [-1, 1] would distort them silently. Only then are
    channels averaged and the audio resampled; the final clip only trims resampler overshoot.
    """
    if not Path(path).is_file():
        return None, "missing"
    if Path(path).stat().st_size == 0:
        return None, "empty"
    try:
        with warnings.catch_warnings():  # librosa warns before falling back to audioread; the reason is counted
            warnings.simplefilter("ignore")
            wave, native_rate = librosa.load(path, sr=None, mono=False, duration=max_seconds)
    except Exception as err:  # noqa: BLE001 - any decoder failure means this one file is unusable
        return None, f"corrupt: {type(err).__name__}: {err}"
    if wave.size == 0:
        return None, "empty"
    finite = np.isfinite(wave)
    if not finite.all():
        return None, f"non_finite: {int(wave.size - finite.sum())} of {wave.size} samples are NaN or inf"
    if wave.ndim == 2:
        wave = wave.mean(axis=0)
    if wave.size < min_seconds * native_rate:
        return None, "too_short"
    offset = float(wave.mean())
    if np.abs(wave - offset).max() < SILENCE_PEAK:
        return (None, "silent") if abs(offset) < SILENCE_PEAK else (None, f"constant: DC offset {offset:+.3f} only")
    peak = float(np.abs(wave).max())
    if peak > 1.0:
        return None, f"out_of_range: peak {peak:.2f} > 1 (float audio beyond full scale); normalise it and export again"
    if native_rate != sample_rate:
        wave = librosa.resample(wave, orig_sr=native_rate, target_sr=sample_rate)
    return np.clip(wave, -1.0, 1.0).astype(np.float32), "ok"


def _decode_task(args: tuple[str, int, float, float]) -> tuple[np.ndarray | None, str, str]:
    wave, reason = decode(*args)
    return wave, reason, file_digest(args[0]) if wave is not None else ""


def _decode_chunk(tasks: list[tuple[str, int, float, float]]) -> list[tuple[np.ndarray | None, str, str]]:
    return [_decode_task(t) for t in tasks]


RAY_CHUNK = 16  # files per Ray task


def ingest(
    rows: pd.DataFrame,
    out_dir: str | os.PathLike,
    collection: str,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float = 30.0,
    min_seconds: float = 1.0,
    workers: int | None = None,
    progress: bool = True,
    address: str | None = None,
) -> tuple[Clips, dict]:
    """Decode every valid row, skip and count the bad ones, save Clips and ``report.json`` in ``out_dir``.

    ``address``: decode on Ray tasks (``host:port``, ``auto`` or ``local``; every node must read the audio
    paths); the output is the same bytes as a local ingest.
    """
    if max_seconds < min_seconds or min_seconds <= 0:
        raise ValueError(f"Need 0 < min_seconds <= max_seconds, got min={min_seconds}, max={max_seconds}.")
    skipped: Counter = Counter()
    examples: dict[str, list[str]] = {}

    def skip(reason: str, path: str) -> None:
        reason, _, detail = reason.partition(": ")
        skipped[reason] += 1
        examples.setdefault(reason, [])
        if len(examples[reason]) < EXAMPLES_PER_REASON:
            examples[reason].append(f"{path} ({detail})" if detail else path)

    valid = validate_counts(rows["plays"].to_numpy(dtype=float), rows["likes"].to_numpy(dtype=float))
    for path in rows.loc[~valid, "path"]:
        skip("bad_counts", path)
    duplicate = rows["id"].duplicated() & valid
    for path in rows.loc[duplicate, "path"]:
        skip("duplicate_id", path)
    rows = rows[valid & ~duplicate].reset_index(drop=True)

    tasks = [(path, sample_rate, max_seconds, min_seconds) for path in rows["path"]]
    n_workers = (os.cpu_count() or 1) if workers is None else workers
    if address is not None:
        from studio.cluster import RayExecutor  # noqa: PLC0415 - Ray is an optional extra

        pool = RayExecutor(address)
        futures = [pool.submit(_decode_chunk, tasks[i : i + RAY_CHUNK]) for i in range(0, len(tasks), RAY_CHUNK)]
        results = [r for f in progress_bar(futures, "decode", disable=not progress) for r in f.result()]
    elif n_workers > 1 and len(tasks) > 8:
        with ProcessPoolExecutor(n_workers, POOL_CONTEXT) as pool:
            results = list(progress_bar(pool.map(_decode_task, tasks, chunksize=4), "decode", len(tasks), disable=not progress))
    else:
        results = [_decode_task(t) for t in progress_bar(tasks, "decode", disable=not progress)]
    kept, waves = [], []
    first_of: dict[str, str] = {}  # file digest -> id of the first row that used it
    for i, (wave, reason, digest) in enumerate(results):
        if wave is None:
            skip(reason, rows.at[i, "path"])
        elif digest in first_of:  # the same recording twice would sit in two splits: keep the first row only
            skip(f"duplicate_audio: same file as id {first_of[digest]}", rows.at[i, "path"])
        else:
            first_of[digest] = rows.at[i, "id"]
            kept.append(i)
            waves.append(wave)
    if not waves:
        raise ValueError(f"No usable clips: every row was skipped ({dict(skipped)}). Check paths and counts.")
    rows = rows.iloc[kept].reset_index(drop=True)
    split = [s if s else hash_split(i) for s, i in zip(rows["split"], rows["id"])]
    meta = pd.DataFrame(
        {
            "id": rows["id"].astype(str),
            "source": rows["id"].astype(str),
            "collection": collection,
            "degradation": "none",
            "strength": 0.0,
            "program": -1,
            "split": split,
            "plays": rows["plays"].astype(np.int64),
            "likes": rows["likes"].astype(np.int64),
            "gold": np.nan,
            "path": rows["path"],
        }
    )
    clips = Clips.from_waveforms(waves, meta, sample_rate, info={"kind": collection, "max_seconds": max_seconds})
    out = Path(out_dir)
    clips.save(out)
    report = {
        "rows": len(valid),
        "kept": len(waves),
        "skipped": dict(sorted(skipped.items())),
        "skipped_examples": examples,
        "by_split": meta["split"].value_counts().sort_index().to_dict(),
        "hours": float(sum(w.size for w in waves) / sample_rate / 3600),
        "data_hash": clips.data_hash,
    }
    write_json(out / "report.json", report)
    if progress:
        print(f"{report['kept']} of {report['rows']} rows kept ({report['hours']:.2f} h); skipped: {report['skipped']}")
    return clips, report


def ingest_manifest(
    manifest: str | os.PathLike, out_dir: str | os.PathLike = "data/manifest", **kwargs
) -> tuple[Clips, dict]:
    """Ingest a manifest (CSV or Parquet) into ``out_dir``; keyword arguments as for ``ingest``."""
    return ingest(read_manifest(manifest), out_dir, "manifest", **kwargs)


def ingest_fma(fma_root: str | os.PathLike, out_dir: str | os.PathLike = "data/fma", **kwargs) -> tuple[Clips, dict]:
    """Ingest a Free Music Archive folder into ``out_dir``; keyword arguments as for ``ingest``."""
    return ingest(read_fma(fma_root), out_dir, "fma", **kwargs)
