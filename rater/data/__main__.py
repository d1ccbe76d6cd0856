"""Command line for datasets: ``python -m rater.data build`` (default corpus, a manifest, or an FMA folder)."""

from __future__ import annotations

import argparse
import sys

MELODY_FRACTION = 0.3  # rater.data.melodies.MELODY_FRACTION (not imported here: --help stays fast)
DEFAULT_OUT = {"default": "data/default", "manifest": "data/manifest", "fma": "data/fma"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m rater.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build",
        help="build a dataset of clips with plays and likes",
        description="Build the default dataset from the music21 corpus (rendered with FluidSynth, plays and likes "
        "from simulated listeners), or ingest your own audio with --manifest or --fma-root. Reruns with unchanged "
        "inputs load the finished dataset in seconds.",
    )
    build.add_argument("--out", help="output folder (default: data/default, data/manifest or data/fma)")
    build.add_argument("--seed", type=int, default=0, help="seed for excerpts, degradations, listeners, splits")
    build.add_argument("--n-clips", type=int, default=2400, help="clips in the default dataset (default 2400)")
    build.add_argument("--melody-fraction", type=float, default=MELODY_FRACTION,
                       help=f"share of the default dataset's clips that are melodies on PianoEnv's grid, the rest "
                       f"polyphonic excerpts (default {MELODY_FRACTION})")
    build.add_argument("--workers", type=int, default=None, help="processes (default: all cores; 0 = in-process)")
    source = build.add_mutually_exclusive_group()
    source.add_argument("--manifest", help="CSV/Parquet with path, plays, likes [, id, split] (paths relative to it)")
    source.add_argument("--fma-root", help="folder with fma_metadata/tracks.csv and fma_small/ (or _medium, ...)")
    build.add_argument("--max-seconds", type=float, default=30.0, help="crop user audio to this length (default 30)")
    build.add_argument("--cache-dir", help="parsed-note cache for the default build (default: <out>/../.cache)")
    build.add_argument("--address", help="parse/render (default build) or decode (--manifest, --fma-root) on Ray "
                       "tasks: host:port of a cluster, auto, or local (needs the ray extra; output is byte-identical "
                       "to the local build)")
    build.add_argument("--no-progress", action="store_true", help="no progress bars or summary")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    progress = not args.no_progress
    if args.manifest or args.fma_root:
        from rater.data import ingest  # noqa: PLC0415 - librosa import only when ingesting

        kind = "manifest" if args.manifest else "fma"
        reader = ingest.read_manifest(args.manifest) if args.manifest else ingest.read_fma(args.fma_root)
        ingest.ingest(
            reader,
            args.out or DEFAULT_OUT[kind],
            kind,
            max_seconds=args.max_seconds,
            workers=args.workers,
            progress=progress,
            address=args.address,
        )
        return 0
    from rater.data.build import build_default_dataset  # noqa: PLC0415

    build_default_dataset(
        args.out or DEFAULT_OUT["default"],
        seed=args.seed,
        n_clips=args.n_clips,
        melody_fraction=args.melody_fraction,
        workers=args.workers,
        progress=progress,
        cache_dir=args.cache_dir,
        address=args.address,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
