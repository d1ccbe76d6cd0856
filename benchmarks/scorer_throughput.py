"""Scorer throughput: 8-s clips scored per second, batched vs one at a time, on CPU (and CUDA when present).

The piano environment scores every finished episode, so batching the reward is what makes many parallel
environments pay off. Target: batched >= 5x one-at-a-time on CPU. Weights do not change the speed, so
without a trained checkpoint an untrained default rater is timed (and the output says so). ``--ensembles``
also times untrained tonal reward ensembles of K = 1, 3 and 5 members and the seed arch (K = 1, the
baseline of the ratios), all in the same run: ms per 8-s episode one at a time and batched.

    python -m benchmarks.scorer_throughput [--rater PATH] [--n-clips 64] [--seconds 8] [--repeats 3] [--ensembles]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rater.logfreq import LogFreqConfig
from rater.mel import MelConfig
from rater.model import Rater, RaterConfig
from rater.scorer import Scorer, build_checkpoint, checkpoint_path, read_checkpoint
from rater.tonal import TonalConfig, TonalRater


def untrained(arch: str, k: int, device: str) -> Scorer:
    """A reward ensemble of ``k`` untrained members of ``arch`` (speed does not depend on the weights)."""
    torch.manual_seed(0)
    if arch == "seed":
        config, frontend, states = RaterConfig(), MelConfig(), [Rater(RaterConfig()).state_dict() for _ in range(k)]
    else:
        config, frontend, states = TonalConfig(), LogFreqConfig(), [TonalRater(TonalConfig()).state_dict() for _ in range(k)]
    payload = build_checkpoint(states, config, frontend, 0.0, 1.0, arch=arch, roles=["reward"] * k, rule="uwo", lam=1.0)
    return Scorer.from_checkpoint(payload, device=device)


def load_scorer(path: str, device: str) -> tuple[Scorer, str]:
    """The checkpoint's reward rater, or an untrained default one when there is no checkpoint."""
    if checkpoint_path(path or None).is_file():
        return Scorer.from_checkpoint(read_checkpoint(path or None), device=device), str(checkpoint_path(path or None))
    torch.manual_seed(0)
    config = RaterConfig()
    payload = build_checkpoint([Rater(config).state_dict()], config, MelConfig(), 0.0, 1.0)
    return Scorer.from_checkpoint(payload, device=device), "untrained default rater (no checkpoint found)"


def best_seconds(fn, repeats: int) -> float:
    """Fastest of ``repeats`` timed calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rater", default="", help="checkpoint (default: $EARWORM_RATER or runs/rater/checkpoints/rater.pt)")
    parser.add_argument("--n-clips", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ensembles", action="store_true", help="also time tonal ensembles K = 1, 3, 5 against the seed arch")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = int(args.seconds * MelConfig().sample_rate)
    t = np.arange(n) / MelConfig().sample_rate
    waves = [
        (0.2 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t) + 0.02 * rng.standard_normal(n)).astype(np.float32)
        for _ in range(args.n_clips)
    ]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"{args.n_clips} clips x {args.seconds:g} s, torch threads {torch.get_num_threads()}")
    for device in devices:
        scorer, source = load_scorer(args.rater, device)
        batched = best_seconds(lambda: scorer(waves), args.repeats)
        single = best_seconds(lambda: [scorer([w]) for w in waves], args.repeats)
        print(
            f"{device}: batched {args.n_clips / batched:8.1f} clips/s | one at a time {args.n_clips / single:8.1f} clips/s"
            f" | ratio {single / batched:5.1f}x (target >= 5x)  [{source}]"
        )
        if args.ensembles:
            base = None
            for arch, k in (("seed", 1), ("tonal", 1), ("tonal", 3), ("tonal", 5)):
                scorer = untrained(arch, k, device)
                one = best_seconds(lambda: [scorer([w]) for w in waves[:16]], args.repeats) / 16 * 1000
                many = best_seconds(lambda: scorer(waves), args.repeats) / len(waves) * 1000
                base = base or one
                print(f"{device}: {arch:>5} K={k}: {one:6.1f} ms per {args.seconds:g}-s episode one at a time "
                      f"({one / base:4.2f}x seed), {many:6.1f} ms batched")


if __name__ == "__main__":
    main()
