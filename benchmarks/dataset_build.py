"""Time a cold and a warm default-dataset build in a temporary folder (budget: <= 90 s cold on 2 cores).

    python -m benchmarks.dataset_build [--n-clips 2400] [--workers N] [--baseline]

``--baseline`` also builds, cold, the same number of clips as excerpts only (``melody_fraction=0`` and no
melody-only tunes, what the build did before melodies), so the melodies' cost is printed as a ratio measured
in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rater.data import melodies
from rater.data.build import build_default_dataset
from rater.data.clips import Clips


def timed_builds(n_clips: int, workers: int | None, seed: int, labels: tuple[str, ...], **kwargs) -> tuple[dict, Clips]:
    """Build in a fresh temporary folder (a cold note cache) once per label; seconds per label and the dataset."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "default"
        timings = {}
        for label in labels:
            started = time.perf_counter()
            clips = build_default_dataset(out, seed=seed, n_clips=n_clips, workers=workers, progress=False, **kwargs)
            timings[label] = time.perf_counter() - started
    return timings, clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-clips", type=int, default=2400)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", action="store_true", help="also time an excerpts-only cold build")
    args = parser.parse_args()
    timings, clips = timed_builds(args.n_clips, args.workers, args.seed, ("cold", "warm"))
    audio_hours = clips.meta["length"].sum() / clips.sample_rate / 3600
    kinds = clips.meta["kind"].value_counts().to_dict()
    print(f"{len(clips)} clips ({kinds}), {audio_hours:.2f} h of audio")
    for label, seconds in timings.items():
        print(f"{label} build: {seconds:7.1f} s")
    if args.baseline:
        base, _ = timed_builds(args.n_clips, args.workers, args.seed, ("cold",), melody_fraction=0.0, tune_sources={})
        print(f"baseline (excerpts only, no tunes) cold build: {base['cold']:7.1f} s; "
              f"with melodies (fraction {melodies.MELODY_FRACTION}): {timings['cold'] / base['cold']:.2f}x")


if __name__ == "__main__":
    main()
