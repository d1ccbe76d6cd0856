"""The RL ablation table: random; the prior alone; PPO from scratch (round 1's setting); PPO from the prior with the
exact KL penalty (single rater, and an ensemble rater when one is given); and the reference row, test-split top
lines played through PianoEnv, all scored by the same judges in the same run.

Columns: proxy (the reward rater), heldout (mean of held-out raters), report (the reporting-only held-out
rater), gold (expected like rate **by the simulated listeners**), distinct pieces per 100, in-key, leaps (> 7
semitones), repeated notes, and the interval-histogram Jensen-Shannon divergence (bits) from the test-split
top lines. PPO rows use the best checkpoint (chosen by the selecting held-out rater), sampled stochastically.
Needs the default data, rater and prior (``python train.py`` makes all three). Run from the repo root:
``python -m benchmarks.rl_ablation [--timesteps 20000] [--ensemble-rater PATH]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from agents import sb3
from rater.judges import load_judges
from studio.theory import interval_histogram, interval_js
from agents.prior import GridConfig, actions_to_notes, corpus_tokens, episode_windows, fitted_windows, load_prior
from agents.rollout import collect_episodes, model_policy, prior_policy, random_policy, summarise
from envs.piano import PianoEnv

COLS = ("proxy", "heldout", "heldout_report", "gold", "distinct_per_100", "in_key", "leaps", "repeated", "interval_js")


def play(sequences: np.ndarray) -> list[dict]:
    """Episodes of PianoEnv playing fixed action sequences ``(N, n_steps)``."""
    env = PianoEnv(scorer="deferred")
    episodes = []
    for seq in sequences:
        env.reset(seed=0)
        for a in seq:
            _, _, terminated, _, info = env.step(int(a))
        episodes.append(info)
    env.close()
    return episodes


def row(episodes: list[dict], judges, reference_hist: np.ndarray) -> dict:
    values, scores = summarise(episodes, judges)
    values["interval_js"] = interval_js([e["notes"] for e in episodes], reference_hist)
    values["gold_p90"] = float(np.percentile(scores["gold"], 90))
    values["gold_p50"] = float(np.percentile(scores["gold"], 50))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=20_000, help="PPO steps per run (default 20000)")
    parser.add_argument("--episodes", type=int, default=32, help="episodes per row (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed for every run (default 0)")
    parser.add_argument("--kl-coef", type=float, default=0.05, help="KL penalty of the from-prior rows (default 0.05)")
    parser.add_argument("--data", default="data/default", help="the default dataset (its test split gives the reference)")
    parser.add_argument("--prior", default="runs/prior/prior.pt", help="the trained prior (default runs/prior/prior.pt)")
    parser.add_argument("--rater", default="", help="single rater checkpoint (default: the default rater)")
    parser.add_argument("--ensemble-rater", default="", help="an ensemble rater checkpoint for the last row (skipped if empty)")
    parser.add_argument("--out", default="runs/benchmarks/rl_ablation.json", help="where the table is saved as JSON")
    args = parser.parse_args()

    grid = GridConfig()
    prior = load_prior(args.prior, grid)
    judges = load_judges(args.rater or None, reference_data=args.data)
    _, test = corpus_tokens(Path(args.data), {}, grid.steps_per_beat)
    top_lines = fitted_windows(episode_windows(test, grid, stride=grid.n_steps), grid)
    reference_hist = interval_histogram([actions_to_notes(s, grid) for s in top_lines])
    n, seed = args.episodes, args.seed
    rows, seconds = {}, {}
    rows["random"] = row(collect_episodes(lambda env: random_policy(env, seed), n, seed), judges, reference_hist)
    rows["prior alone"] = row(collect_episodes(lambda env: prior_policy(prior), n, seed), judges, reference_hist)

    runs = Path(tempfile.mkdtemp(prefix="ablation-"))
    (runs / "prior").mkdir()
    shutil.copy(args.prior, runs / "prior" / "prior.pt")
    common = ["--algo", "ppo", "--timesteps", str(args.timesteps), "--seed", str(seed), "--runs-dir", str(runs),
              "--data", args.data, "--eval-episodes", "4"]
    rater = ["--rater", args.rater] if args.rater else []
    configs = {
        "PPO from scratch (round 1)": ["--init", "scratch", "--kl-coef", "0", "--beta", "0.2", "--ent-coef", "0.01",
                                       "--no-early-stop", *rater],
        "PPO from prior + KL": ["--kl-coef", str(args.kl_coef), *rater],
    }
    if args.ensemble_rater:
        configs["PPO from prior + KL, ensemble"] = ["--kl-coef", str(args.kl_coef), "--rater", args.ensemble_rater]
    fits, curves = {}, {}
    for name, extra in configs.items():
        run_name = name.replace(" ", "-").replace(",", "").replace("(", "").replace(")", "").replace("+", "")
        start = time.time()
        summary = sb3.main([*common, *extra, "--run-name", run_name])
        seconds[name] = round(time.time() - start, 1)
        fits[name] = summary.get("overoptimisation_fit")
        curves[name] = json.loads((runs / run_name / "overoptimisation.json").read_text())["curve"]
        model = sb3.ALGOS["ppo"].load(runs / run_name / "checkpoints" / "best.zip", device="cpu")
        rows[name] = row(collect_episodes(lambda env: model_policy(model, deterministic=False), n, seed), judges, reference_hist)
    rows["test-split top lines (reference)"] = row(play(top_lines), judges, reference_hist)
    shutil.rmtree(runs)

    print(f"\n{args.timesteps} PPO steps per run, seed {seed}, {n} episodes per row ({len(top_lines)} reference top lines); "
          "gold = expected like rate by the simulated listeners")
    print(f"{'':34}" + "".join(f"{c[:12]:>13}" for c in COLS) + f"{'gold p90':>10}")
    for name, values in rows.items():
        print(f"{name:34}" + "".join(f"{values[c]:13.3f}" for c in COLS) + f"{values['gold_p90']:10.3f}")
    for name, fit in fits.items():
        if fit and fit.get("a") is not None:
            peak = f"d* = {fit['d_peak']:.2f}, gain {fit['gain_peak']:+.3f}" if fit.get("d_peak") else "no turnover"
            print(f"Gao fit, {name}: gold gain = d({fit['a']:.3f} - {fit['b']:.3f} ln d), {peak}, R² {fit['r2']:.2f}")
    print("seconds per PPO run (training + summary):", seconds)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "fits": fits, "curves": curves, "seconds": seconds, "args": vars(args)}, indent=1))


if __name__ == "__main__":
    main()
