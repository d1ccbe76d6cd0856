"""Time a cold and a warm default-dataset build in a temporary folder (budget: <= 3 min cold on 2 cores).

    python -m benchmarks.dataset_build [--n-clips 2400] [--workers N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rater.data.build import build_default_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-clips", type=int, default=2400)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "default"
        timings = {}
        for label in ("cold", "warm"):
            started = time.perf_counter()
            clips = build_default_dataset(
                out, seed=args.seed, n_clips=args.n_clips, workers=args.workers, progress=label == "cold"
            )
            timings[label] = time.perf_counter() - started
        audio_hours = clips.meta["length"].sum() / clips.sample_rate / 3600
    print(f"{len(clips)} clips, {audio_hours:.2f} h of audio")
    for label, seconds in timings.items():
        print(f"{label} build: {seconds:7.1f} s")


if __name__ == "__main__":
    main()
