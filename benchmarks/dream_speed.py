"""Time dreaming 8 clips of 4 s (budget: <= 5 min on 2 CPU cores) and compare the two parametrisations.

For each parametrisation (raw waveform, STFT log-magnitude + phase) and learning rate, one naive dream from
the same seeded noise: proxy score at a few checkpoints of the climb, final spectral flatness, wall time.
Then one regularised run with the default flags, whose time is the budget's number.

    python -m benchmarks.dream_speed [--rater PATH] [--steps 300] [--n-clips 8] [--seconds 4]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import torch

from agents.dream import Args, config_from_args, dream, mode_config, rater_path, spectral_flatness
from rater.scorer import Scorer

SWEEP = {"wave": (0.003, 0.01, 0.03), "stft": (0.02, 0.05, 0.1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rater", default="")
    parser.add_argument("--steps", type=int, default=Args.steps)
    parser.add_argument("--n-clips", type=int, default=Args.n_clips)
    parser.add_argument("--seconds", type=float, default=Args.seconds)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--skip-sweep", action="store_true", help="only time the regularised run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    proxy = Scorer.load(rater_path(args.rater), device="cpu")
    defaults = Args(seconds=args.seconds, steps=args.steps, seed=args.seed, n_clips=args.n_clips)
    base = replace(config_from_args(defaults), log_every=max(1, args.steps // 6))
    rows = []
    if not args.skip_sweep:
        for param, lrs in SWEEP.items():
            for lr in lrs:
                config = mode_config("naive", replace(base, param=param, lr=lr))
                result = dream(proxy, config)
                climb = [round(h["score"], 4) for h in result.history]
                rows.append({"param": param, "lr": lr, "climb": climb, "final": float(result.scores.mean()),
                             "flatness": float(spectral_flatness(result.waves).mean()),
                             "seconds": round(result.seconds_taken, 1)})
                print(json.dumps(rows[-1]), flush=True)
    result = dream(proxy, mode_config("regularised", base))
    print(f"regularised ({base.param}): {args.n_clips} clips x {args.seconds:g} s, {args.steps} steps: "
          f"{result.seconds_taken:.1f} s, proxy {result.scores.mean():.4f}, "
          f"flatness {spectral_flatness(result.waves).mean():.3f}, {args.threads} thread(s) (budget 300 s)")


if __name__ == "__main__":
    main()
