"""Build the default dataset: music21 pieces -> rendered (and degraded) clips -> gold, plays, likes -> Clips.

Why this shape: parsing and rendering are embarrassingly parallel, so both run in a process pool whose
workers each hold one FluidSynth Renderer and one ListenerPopulation (C state is never pickled). Parsed
note lists are cached per corpus file (see corpus.py); the finished dataset records a build key (config +
source code of every module that shapes the audio or the counts), and a rebuild with the same key just
loads it, so a warm build takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from tqdm import tqdm

from studio import SAMPLE_RATE, synth
from studio.files import write_json
from rater.data import clips as clips_module
from rater.data import corpus, degrade, listeners, popularity
from rater.data.clips import Clips
from rater.data.listeners import ListenerPopulation

SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
CHUNK = 24  # clips per worker task: large enough to amortise pickling, small enough for a smooth bar
STRENGTH_BINS = (0.0, 0.35, 0.7, 1.0)  # degraded clips only; clean ones are "none" in gold_by_degradation
# Workers start from a clean server process, not a fork of this one: forking a process that already holds
# FluidSynth, numba or torch threads can deadlock the children.
POOL_CONTEXT = multiprocessing.get_context("forkserver")

_WORKER: dict = {}
_LAST_BUILD: dict = {}  # tasks per Ray node of the last build in this process (for tests and benchmarks)


def _init_worker(soundfont: str, sample_rate: int, seed: int) -> None:
    _WORKER["renderer"] = synth.Renderer(soundfont, sample_rate=sample_rate)
    _WORKER["population"] = ListenerPopulation(seed=seed, sample_rate=sample_rate)


def _parse_task(path: Path, cache_dir: Path) -> list[corpus.Piece]:
    return corpus.load_pieces(path, cache_dir)


def _render_task(specs: list[corpus.ClipSpec], notes: dict[str, np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    waves = [corpus.render_clip(_WORKER["renderer"], spec, notes[spec.piece_id]) for spec in specs]
    return waves, np.asarray(_WORKER["population"](waves), dtype=np.float32)


class _InProcess:
    """The executor interface run in this process (``workers=0``): easiest to debug and profile."""

    def __init__(self, initializer, initargs):
        initializer(*initargs)

    def submit(self, fn, *args):
        future = Future()
        future.set_result(fn(*args))
        return future

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _WORKER.clear()


def code_version() -> str:
    """Hash of the source of every module whose change alters the built audio, gold or counts."""
    digest = hashlib.sha256()
    for module in (corpus, degrade, sys.modules[__name__], listeners, popularity, clips_module, synth):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def build_config(seed: int, n_clips: int, sources: dict[str, int], soundfont: Path, sample_rate: int) -> dict:
    """Every input of a default build that is not source code, JSON-ready."""
    import music21  # noqa: PLC0415

    stat = soundfont.stat()
    return {
        "seed": int(seed),
        "n_clips": int(n_clips),
        "sources": dict(sources),
        "sample_rate": int(sample_rate),
        "soundfont": {"path": str(soundfont), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
        "music21": music21.__version__,
        "code_version": code_version(),
    }


def build_key(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def assign_splits(piece_ids: list[str], seed: int) -> dict[str, str]:
    """Split whole pieces 80/10/10 (at least one piece in val and test once there are three)."""
    ids = sorted(set(piece_ids))
    order = np.random.default_rng([seed, 2]).permutation(len(ids))
    n = len(ids)
    n_val = max(1, round(SPLITS[1][1] * n)) if n >= 3 else 0
    n_test = max(1, round(SPLITS[2][1] * n)) if n >= 3 else 0
    names = ["val"] * n_val + ["test"] * n_test + ["train"] * (n - n_val - n_test)
    return {ids[i]: name for i, name in zip(order, names)}


def _current(out: Path, key: str) -> Clips | None:
    info_path = out / "info.json"
    if not info_path.is_file():
        return None
    try:
        recorded = json.loads(info_path.read_text()).get("build_key")
    except (OSError, json.JSONDecodeError):
        return None
    return Clips.load(out) if recorded == key else None


def build_report(clips: Clips, seconds: float | None = None) -> dict:
    """Counts by collection, degradation and split; gold by degradation and strength; gold-vs-p correlation."""
    meta = clips.meta
    scored = meta[np.isfinite(meta["gold"])]
    degraded = scored[scored["degradation"] != degrade.CLEAN]
    labels = [f"{a:.2f}-{b:.2f}" for a, b in zip(STRENGTH_BINS[:-1], STRENGTH_BINS[1:])]
    bins = pd.cut(degraded["strength"], STRENGTH_BINS, labels=labels)
    report = {
        "clips": len(meta),
        "pieces": int(meta["source"].nunique()),
        "hours": float(meta["length"].sum() / clips.sample_rate / 3600),
        "by_collection": meta["collection"].value_counts().sort_index().to_dict(),
        "by_degradation": meta["degradation"].value_counts().sort_index().to_dict(),
        "by_split": meta["split"].value_counts().sort_index().to_dict(),
        "pieces_by_split": meta.groupby("split")["source"].nunique().to_dict(),
        "gold_by_degradation": scored.groupby("degradation")["gold"].mean().round(4).to_dict(),
        "gold_by_strength": degraded.groupby(bins, observed=True)["gold"].mean().round(4).to_dict(),
        "gold_p_pearson": float(stats.pearsonr(scored["gold"], scored["p"])[0]) if len(scored) > 2 else float("nan"),
        "gold_p_spearman": float(stats.spearmanr(scored["gold"], scored["p"])[0]) if len(scored) > 2 else float("nan"),
        "plays_total": int(meta["plays"].sum()),
        "likes_total": int(meta["likes"].sum()),
        "data_hash": clips.data_hash,
    }
    if seconds is not None:
        report["build_seconds"] = round(seconds, 1)
    return report


def format_report(report: dict) -> str:
    """Human-readable build summary."""
    lines = [
        f"{report['clips']} clips from {report['pieces']} pieces ({report['hours']:.2f} h of audio)"
        + (f", built in {report['build_seconds']} s" if "build_seconds" in report else ""),
        f"by collection:  {report['by_collection']}",
        f"by degradation: {report['by_degradation']}",
        f"by split:       {report['by_split']} (pieces: {report['pieces_by_split']})",
        f"mean gold by degradation: {report['gold_by_degradation']}",
        f"mean gold by degradation strength: {report['gold_by_strength']}",
        f"{report['plays_total']} plays, {report['likes_total']} likes by the simulated listeners",
        f"gold vs observed p: Pearson {report['gold_p_pearson']:.3f}, Spearman {report['gold_p_spearman']:.3f} "
        "(the noise ceiling for the rater)",
    ]
    return "\n".join(lines)


def build_default_dataset(
    out_dir: str | os.PathLike = "data/default",
    seed: int = 0,
    n_clips: int = 2400,
    workers: int | None = None,
    progress: bool = True,
    sources: dict[str, int] | None = None,
    cache_dir: str | os.PathLike | None = None,
    soundfont: str | os.PathLike | None = None,
    sample_rate: int = SAMPLE_RATE,
    address: str | None = None,
) -> Clips:
    """Build (or load, when nothing changed) the default dataset in ``out_dir`` and write ``report.json``.

    ``workers``: processes (default: all cores; 0 runs in this process). ``sources``: files per corpus
    collection (default ``corpus.DEFAULT_SOURCES``). ``cache_dir``: parsed-note cache (default
    ``<out_dir>/../.cache``). ``address``: run the parse and render tasks on Ray instead of a process pool
    (``host:port``, ``auto`` or ``local``; see ``studio/cluster.py``); the output is the same bytes.
    """
    if n_clips < 1:
        raise ValueError(f"n_clips must be at least 1, got {n_clips}.")
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0 (0 = in this process), got {workers}.")
    out = Path(out_dir)
    cache = Path(cache_dir) if cache_dir is not None else out.parent / ".cache"
    sources = dict(sorted((corpus.DEFAULT_SOURCES if sources is None else sources).items()))  # order-free key
    font = synth.resolve_soundfont(soundfont)
    config = build_config(seed, n_clips, sources, font, sample_rate)
    key = build_key(config)
    existing = _current(out, key)
    if existing is not None:
        if progress:
            print(f"{out}: up to date (build key {key}), {len(existing)} clips loaded.")
        return existing

    started = time.perf_counter()
    paths = corpus.select_sources(sources)
    n_workers = (os.cpu_count() or 1) if workers is None else workers
    initargs = (str(font), sample_rate, seed)
    if address is not None:
        from studio.cluster import RayExecutor  # noqa: PLC0415 - Ray is an optional extra

        pool = RayExecutor(address, _init_worker, initargs)
    elif n_workers == 0:
        pool = _InProcess(_init_worker, initargs)
    else:
        pool = ProcessPoolExecutor(n_workers, POOL_CONTEXT, initializer=_init_worker, initargs=initargs)
    with pool:
        # Largest files first so a slow parse does not finish last on its own.
        ordered = sorted(paths, key=lambda p: -p.stat().st_size)
        futures = [pool.submit(_parse_task, path, cache) for path in ordered]
        parsed = {path: f.result() for path, f in zip(ordered, tqdm(futures, "parse", disable=not progress))}
        pieces = [piece for path in paths for piece in parsed[path]]
        specs = corpus.plan_clips(pieces, n_clips, seed)
        notes = {piece.id: piece.notes for piece in pieces}
        chunks = [specs[i : i + CHUNK] for i in range(0, len(specs), CHUNK)]
        futures = [pool.submit(_render_task, chunk, {s.piece_id: notes[s.piece_id] for s in chunk}) for chunk in chunks]
        waves, gold = [], []
        with tqdm(total=len(specs), desc="render", disable=not progress) as bar:
            for future in futures:
                chunk_waves, chunk_gold = future.result()
                waves.extend(chunk_waves)
                gold.append(chunk_gold)
                bar.update(len(chunk_waves))
    gold = np.concatenate(gold)
    if address is not None and progress:
        print(f"Ray tasks per node: {dict(pool.nodes)}")
    _LAST_BUILD["nodes"] = dict(getattr(pool, "nodes", {}))
    population = ListenerPopulation(seed=seed, sample_rate=sample_rate)
    plays, likes = population.simulate_counts(gold, np.random.default_rng([seed, 1]))
    split_of = assign_splits([s.piece_id for s in specs], seed)
    meta = pd.DataFrame(
        {
            "id": [f"{s.index:05d}" for s in specs],
            "source": [s.piece_id for s in specs],
            "collection": [s.collection for s in specs],
            "degradation": [s.degradation for s in specs],
            "strength": [s.strength for s in specs],
            "program": [s.program for s in specs],
            "split": [split_of[s.piece_id] for s in specs],
            "plays": np.asarray(plays, dtype=np.int64),
            "likes": np.asarray(likes, dtype=np.int64),
            "gold": gold.astype(np.float64),
            "bpm": [s.bpm for s in specs],
            "offset_q": [s.offset_q for s in specs],
        }
    )
    info = {"kind": "default", "build": config, "build_key": key}
    clips = Clips.from_waveforms(waves, meta, sample_rate, info=info)
    clips.save(out)
    report = build_report(clips, time.perf_counter() - started)
    write_json(out / "report.json", report)
    if progress:
        print(format_report(report))
    return clips


def load_or_build(out_dir: str | os.PathLike = "data/default", seed: int = 0) -> Clips:
    """The dataset in ``out_dir`` if one built with ``seed`` is there, else a fresh default build."""
    out = Path(out_dir)
    if (out / "info.json").is_file():
        clips = Clips.load(out)
        if clips.info.get("build", {}).get("seed", seed) == seed:
            return clips
    return build_default_dataset(out, seed=seed)
