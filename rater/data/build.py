"""Build the default dataset: music21 pieces -> rendered (and degraded) clips -> gold, plays, likes -> Clips.

Two kinds of clips: polyphonic *excerpts* of corpus pieces on 8 GM instruments (``corpus.py``), and monophonic
*melodies* on PianoEnv's grid, rendered exactly as the env plays them (``melodies.py``): the top lines of the
same pieces plus folk tunes parsed one by one (``tunes.py``). Splits are by piece, whatever the kind.

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
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from studio import SAMPLE_RATE, grid, synth
from studio.files import write_json
from studio.progress import progress_bar
from rater.data import corpus, degrade, melodies, tunes
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
    renderer = synth.Renderer(soundfont, sample_rate=sample_rate)
    _WORKER["renderer"] = renderer
    _WORKER["melody_renderer"] = (
        renderer if renderer.gain == grid.GAIN else synth.Renderer(soundfont, sample_rate=sample_rate, gain=grid.GAIN)
    )
    _WORKER["population"] = ListenerPopulation(seed=seed, sample_rate=sample_rate)


def _no_setup() -> None:
    pass


def _parse_task(path: Path, cache_dir: Path) -> list[corpus.Piece]:
    return corpus.load_pieces(path, cache_dir)


def _parse_tunes_task(path: Path, numbers: list[int], cache_dir: Path) -> list[corpus.Piece]:
    return tunes.load_tunes(path, numbers, cache_dir)


def _input_key(spec) -> tuple[str, str]:
    """What a spec renders from: a melody's actions or an excerpt's piece notes, by kind and piece."""
    return (melodies.KIND if isinstance(spec, melodies.MelodySpec) else "excerpt", spec.piece_id)


def _render_one(spec, source: np.ndarray) -> np.ndarray:
    if isinstance(spec, melodies.MelodySpec):
        return melodies.render_melody_clip(_WORKER["melody_renderer"], spec, source)
    return corpus.render_clip(_WORKER["renderer"], spec, source)


def _render_task(specs: list, inputs: dict[tuple[str, str], np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Render a chunk of excerpt and melody specs (``inputs`` by ``_input_key``) and score them with the listeners."""
    waves = [_render_one(spec, inputs[_input_key(spec)]) for spec in specs]
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


def code_files() -> list[Path]:
    """Every file that can alter the built audio, gold or counts.

    That is the whole ``rater/data`` package (sources and data files such as a frozen listener model, so a new
    listener module cannot be forgotten here) and the renderer and grid in ``studio/``.
    """
    package = Path(__file__).resolve().parent
    files = sorted(p for p in package.iterdir() if p.is_file() and p.suffix in (".py", ".json", ".npz", ".pkl"))
    return files + [Path(synth.__file__).resolve(), Path(grid.__file__).resolve()]


def code_version() -> str:
    """Hash of the names and contents of ``code_files()``."""
    digest = hashlib.sha256()
    for path in code_files():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build_config(
    seed: int,
    n_clips: int,
    sources: dict[str, int],
    soundfont: Path,
    sample_rate: int,
    tune_sources: dict[str, int] | None = None,
    melody_fraction: float = 0.0,
) -> dict:
    """Every input of a default build that is not source code, JSON-ready."""
    import music21  # noqa: PLC0415

    stat = soundfont.stat()
    return {
        "seed": int(seed),
        "n_clips": int(n_clips),
        "melody_fraction": float(melody_fraction),
        "sources": dict(sources),
        "tune_sources": dict(tune_sources or {}),
        "sample_rate": int(sample_rate),
        "soundfont": {"path": str(soundfont), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
        "music21": music21.__version__,
        "code_version": code_version(),
    }


def planned_reads(
    sources: dict[str, int], tune_sources: dict[str, int]
) -> tuple[list[Path], list[tunes.Tune], list[str]]:
    """The corpus files and tunes a build with these sources parses, and their ids (``collection/file[#tune]``).

    Raises ValueError when any lies in a collection reserved for evaluation (``corpus.RESERVED``) or is a file
    the listeners' expectancy model is trained on (``tunes.NEVER_CLIPS``).
    """
    paths = corpus.select_sources(sources)
    picks = tunes.select_tunes(tune_sources, exclude=paths)
    root = corpus.corpus_root()
    read = [path.relative_to(root).as_posix() for path in paths] + [tune.id for tune in picks]
    reserved = sorted({name.split("/")[0] for name in read} & set(corpus.RESERVED))
    if reserved:
        raise ValueError(f"Refusing to read collections reserved for evaluation: {reserved} (corpus.RESERVED).")
    model_data = sorted({name.split("#")[0] for name in read} & set(tunes.NEVER_CLIPS))
    if model_data:
        raise ValueError(f"Refusing to make clips of {model_data}: the listeners' expectancy model is trained on them "
                         "(tunes.NEVER_CLIPS); ask for other files.")
    return paths, picks, read


def parse_sources(
    sources: dict[str, int], tune_sources: dict[str, int], cache_dir: Path, pool=None, progress: bool = False
) -> tuple[list[corpus.Piece], list[corpus.Piece], list[str]]:
    """Parse (or load from the cache) the excerpt files and the melody-only tunes.

    Returns the excerpt pieces, the tune pieces (tunes whose notes repeat an earlier piece's are dropped, so a
    tune printed twice cannot sit in two splits) and every corpus file or tune read, as ids like
    ``essenFolksong/han1.abc#12``. ``pool``: an executor (default: this process).
    """
    paths, picks, read = planned_reads(sources, tune_sources)
    executor = pool if pool is not None else _InProcess(_no_setup, ())
    # Largest files first so a slow parse does not finish last on its own; tunes (small tasks) after them.
    ordered = sorted(paths, key=lambda p: -p.stat().st_size)
    futures = [executor.submit(_parse_task, path, cache_dir) for path in ordered]
    groups = tunes.group_by_file(picks)
    tune_futures = [executor.submit(_parse_tunes_task, path, numbers, cache_dir) for path, numbers in groups.items()]
    parsed = {path: f.result() for path, f in zip(ordered, progress_bar(futures, "parse", disable=not progress))}
    tune_pieces = [piece for f in progress_bar(tune_futures, "tunes", disable=not progress) for piece in f.result()]
    pieces = [piece for path in paths for piece in parsed[path]]
    seen = {piece.notes[:, :3].tobytes() for piece in pieces}
    unique = []
    for piece in tune_pieces:
        key = piece.notes[:, :3].tobytes()
        if key not in seen:
            seen.add(key)
            unique.append(piece)
    return pieces, unique, read


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


def _kind_report(meta: pd.DataFrame, scored: pd.DataFrame) -> dict:
    """Counts and mean gold of one kind of clip: by degradation, and by strength bin ("clean" = undegraded)."""
    labels = [f"{a:.2f}-{b:.2f}" for a, b in zip(STRENGTH_BINS[:-1], STRENGTH_BINS[1:])]
    strength = pd.cut(scored["strength"], STRENGTH_BINS, labels=labels).astype(str)
    strength = strength.where(scored["degradation"] != degrade.CLEAN, "clean")
    return {
        "clips": len(meta),
        "pieces": int(meta["source"].nunique()),
        "by_collection": meta["collection"].value_counts().sort_index().to_dict(),
        "by_degradation": meta["degradation"].value_counts().sort_index().to_dict(),
        "gold": round(float(scored["gold"].mean()), 4),
        "gold_by_degradation": scored.groupby("degradation")["gold"].mean().round(4).to_dict(),
        "gold_by_strength": scored.groupby(strength)["gold"].mean().round(4).to_dict(),
        "gold_by_degradation_strength": {
            name: group.groupby(strength[group.index])["gold"].mean().round(4).to_dict()
            for name, group in scored[scored["degradation"] != degrade.CLEAN].groupby("degradation")
        },
    }


def build_report(clips: Clips, seconds: float | None = None) -> dict:
    """Counts by kind, collection, degradation and split; gold by kind, degradation and strength; gold vs p."""
    meta = clips.meta
    scored = meta[np.isfinite(meta["gold"])]
    degraded = scored[scored["degradation"] != degrade.CLEAN]
    labels = [f"{a:.2f}-{b:.2f}" for a, b in zip(STRENGTH_BINS[:-1], STRENGTH_BINS[1:])]
    bins = pd.cut(degraded["strength"], STRENGTH_BINS, labels=labels)
    kind = meta["kind"] if "kind" in meta.columns else pd.Series("excerpt", index=meta.index)
    by_kind = {name: _kind_report(meta[kind == name], scored[kind[scored.index] == name]) for name in sorted(set(kind))}
    report = {
        "clips": len(meta),
        "by_kind": by_kind,
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
        *(
            f"{name:8} {k['clips']} clips from {k['pieces']} pieces, mean gold (by the simulated listeners) "
            f"{k['gold']:.3f}; "
            f"by strength {k['gold_by_strength']}"
            for name, k in report.get("by_kind", {}).items()
        ),
        f"by collection:  {report['by_collection']}",
        f"by degradation: {report['by_degradation']}",
        f"by split:       {report['by_split']} (pieces: {report['pieces_by_split']})",
        f"mean gold by degradation: {report['gold_by_degradation']}",
        f"mean gold by degradation strength: {report['gold_by_strength']}",
        *(
            f"{name} by degradation: "
            + ", ".join(f"{d} {k['by_degradation'][d]} ({g:.3f})" for d, g in k["gold_by_degradation"].items())
            for name, k in report.get("by_kind", {}).items()
        ),
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
    tune_sources: dict[str, int] | None = None,
    melody_fraction: float = melodies.MELODY_FRACTION,
    address: str | None = None,
) -> Clips:
    """Build (or load, when nothing changed) the default dataset in ``out_dir`` and write ``report.json``.

    ``n_clips``: clips in all, ``round(melody_fraction * n_clips)`` of them melodies on PianoEnv's grid and the
    rest excerpts. ``workers``: processes (default: all cores; 0 runs in this process). ``sources``: files per
    corpus collection for excerpts and melodies (default ``corpus.DEFAULT_SOURCES``). ``tune_sources``: tunes
    per ABC collection for melodies only (default ``melodies.TUNE_SOURCES``). ``cache_dir``: parsed-note cache
    (default ``<out_dir>/../.cache``). ``address``: run the parse and render tasks on Ray instead of a process
    pool (``host:port``, ``auto`` or ``local``; see ``studio/cluster.py``); the output is the same bytes.
    """
    if n_clips < 1:
        raise ValueError(f"n_clips must be at least 1, got {n_clips}.")
    if not 0.0 <= melody_fraction <= 1.0:
        raise ValueError(f"melody_fraction must be in [0, 1], got {melody_fraction}.")
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0 (0 = in this process), got {workers}.")
    out = Path(out_dir)
    cache = Path(cache_dir) if cache_dir is not None else out.parent / ".cache"
    sources = dict(sorted((corpus.DEFAULT_SOURCES if sources is None else sources).items()))  # order-free key
    tune_sources = dict(sorted((melodies.TUNE_SOURCES if tune_sources is None else tune_sources).items()))
    font = synth.resolve_soundfont(soundfont)
    config = build_config(seed, n_clips, sources, font, sample_rate, tune_sources, melody_fraction)
    key = build_key(config)
    existing = _current(out, key)
    if existing is not None:
        if progress:
            print(f"{out}: up to date (build key {key}), {len(existing)} clips loaded.")
        return existing

    started = time.perf_counter()
    n_melodies = int(round(melody_fraction * n_clips))
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
        pieces, tune_pieces, read = parse_sources(sources, tune_sources, cache, pool, progress)
        specs = corpus.plan_clips(pieces, n_clips - n_melodies, seed) if n_clips > n_melodies else []
        melody_specs, melody_actions = (
            melodies.plan_melodies(pieces + tune_pieces, n_melodies, seed, first_index=len(specs))
            if n_melodies
            else ([], {})
        )
        inputs = {("excerpt", piece.id): piece.notes for piece in pieces}
        inputs.update({(melodies.KIND, piece_id): actions for piece_id, actions in melody_actions.items()})
        kinds = ["excerpt"] * len(specs) + [melodies.KIND] * len(melody_specs)
        specs = specs + melody_specs
        chunks = [specs[i : i + CHUNK] for i in range(0, len(specs), CHUNK)]
        futures = [
            pool.submit(_render_task, chunk, {_input_key(s): inputs[_input_key(s)] for s in chunk}) for chunk in chunks
        ]
        waves, gold = [], []
        with progress_bar(total=len(specs), desc="render", disable=not progress) as bar:
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
    split_of = assign_splits([p.id for p in pieces + tune_pieces], seed)
    melody_bpm = round(60.0 * sample_rate / (grid.STEPS_PER_BEAT * grid.step_frames(sample_rate)), 2)
    is_melody = [isinstance(s, melodies.MelodySpec) for s in specs]
    meta = pd.DataFrame(
        {
            "id": [f"{s.index:05d}" for s in specs],
            "source": [s.piece_id for s in specs],
            "collection": [s.collection for s in specs],
            "kind": kinds,
            "degradation": [s.degradation for s in specs],
            "strength": [s.strength for s in specs],
            "program": [grid.PROGRAM if m else s.program for s, m in zip(specs, is_melody)],
            "split": [split_of[s.piece_id] for s in specs],
            "plays": np.asarray(plays, dtype=np.int64),
            "likes": np.asarray(likes, dtype=np.int64),
            "gold": gold.astype(np.float64),
            "bpm": [melody_bpm if m else s.bpm for s, m in zip(specs, is_melody)],
            "offset_q": [s.start_step / grid.STEPS_PER_BEAT if m else s.offset_q for s, m in zip(specs, is_melody)],
        }
    )
    info = {"kind": "default", "build": config, "build_key": key, "read": read}
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
