"""The over-optimisation frontier: PPO against the default rater for several prior weights ``beta`` and reward modes.

Round 1's setting, kept as an ablation (the default is now PPO from the prior with a KL penalty:
``benchmarks/rl_ablation.py``): PPO from scratch, entropy bonus 0.01, no early stop. For each (beta, reward
mode), one PPO run (same seed, same budget) and the summary of its best-by-held-out
checkpoint: proxy, held-out and gold scores (gold = expected like rate by the simulated listeners), diversity
and notes in key, next to the random policy and the real corpus excerpts. Learning speed: the env step at which
the monitored proxy score first passed the corpus excerpts' median, and the highest proxy seen in training. Needs the default rater and prior (``python train.py``
trains both). Run from the repo root: ``python -m benchmarks.beta_frontier [--timesteps 60000]``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents import sb3

COLS = ("proxy", "heldout", "gold", "distinct_per_100", "mean_edit_distance", "in_key")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--betas", default="0,0.02,0.1,0.3", help="comma-separated prior weights (default 0,0.02,0.1,0.3)")
    parser.add_argument("--reward-modes", default="final", help="comma-separated: final, shaped (default final)")
    parser.add_argument("--timesteps", type=int, default=60_000, help="PPO steps per run (default 60000)")
    parser.add_argument("--seed", type=int, default=0, help="seed for every run (default 0)")
    parser.add_argument("--prior", default="runs/prior/prior.pt", help="trained prior to share (default runs/prior/prior.pt)")
    args = parser.parse_args()

    runs = Path(tempfile.mkdtemp(prefix="frontier-"))
    (runs / "prior").mkdir()
    shutil.copy(args.prior, runs / "prior" / "prior.pt")
    results = {}
    for mode in args.reward_modes.split(","):
        for beta in (float(b) for b in args.betas.split(",")):
            name = f"beta={beta} {mode}"
            summary = sb3.main(["--algo", "ppo", "--init", "scratch", "--kl-coef", "0", "--ent-coef", "0.01", "--no-early-stop",
                                "--beta", str(beta), "--reward-mode", mode, "--timesteps",
                                str(args.timesteps), "--seed", str(args.seed), "--runs-dir", str(runs),
                                "--run-name", name.replace(" ", "-")])
            results[name] = (summary, proxy_curve(runs / name.replace(" ", "-") / "tb"))
    reference = summary["reference"]
    print(f"\nPPO, {args.timesteps} steps, seed {args.seed}; 'best' = checkpoint with the best held-out score, 'latest' = end")
    extra = ("gold>=p90 at", "proxy>p50 at", "max proxy")
    print(f"{'':22}" + "".join(f"{c:>19}" for c in COLS + extra))
    print(f"{'random':22}" + "".join(f"{summary['rows']['random'][c]:19.3f}" for c in COLS))
    for name, (s, curve) in results.items():
        reached = s.get("gold_target_reached")
        gold_at = f"{reached['steps']} ({reached['seconds']}s)" if reached else "never"
        passed = [step for step, value in curve if value > reference["proxy"]["p50"]]
        proxy_at = str(passed[0]) if passed else "never"
        for which in ("best", "latest"):
            row = s["rows"][f"ppo ({which})"]
            cells = "".join(f"{row[c]:19.3f}" for c in COLS)
            if which == "best":
                cells += f"{gold_at:>19}{proxy_at:>19}{max(v for _, v in curve):19.3f}"
            print(f"{name + ' ' + which:22}" + cells)
    print(f"{'corpus excerpts p50':22}" + "".join(f"{reference[c]['p50']:19.3f}" for c in COLS[:3]))
    print(f"{'corpus excerpts p90':22}" + "".join(f"{reference[c]['p90']:19.3f}" for c in COLS[:3]))
    shutil.rmtree(runs)


def proxy_curve(tb_dir: Path) -> list[tuple[int, float]]:
    events = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0}).Reload()
    return [(e.step, e.value) for e in events.Scalars("judges/proxy")]


if __name__ == "__main__":
    main()
