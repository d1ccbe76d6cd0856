"""PPO steps/s on PianoEnv with the real rater (batched in the main process) and the prior, / CartPole-v1.

Same PPO settings for both, measured in one run, 1 and 4 envs (target >= 0.7). Needs a trained rater
(`python train.py --agent rater`). Run from the repo root: ``python -m benchmarks.ppo_throughput [--ppo-steps 4096]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym

import envs
from rater.judges import load_judges
from agents.prior import GridConfig, default_prior
from agents.wrappers import PriorReward, RaterReward
from benchmarks.env_throughput import ppo_steps_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ppo-steps", type=int, default=4096, help="PPO timesteps timed per case (default 4096)")
    parser.add_argument("--beta", type=float, default=0.2, help="prior weight, 0 to leave the prior out (default 0.2)")
    args = parser.parse_args()
    judges = load_judges(None, device="auto", reference_data=None)
    prior = default_prior(GridConfig(), Path("runs/prior/prior.pt")) if args.beta > 0 else None

    def wrap(venv):
        venv = RaterReward(venv, judges.proxy, "final")
        return PriorReward(venv, prior, args.beta) if prior is not None else venv

    print("SB3 PPO steps/s, PianoEnv with the real rater (+ prior) / CartPole-v1, same PPO settings")
    for n_envs in (1, 4):
        cart = ppo_steps_per_second("CartPole-v1", n_envs, args.ppo_steps)
        piano = ppo_steps_per_second(f"envs:{envs.ENV_ID}", n_envs, args.ppo_steps, {"scorer": "deferred"}, wrap)
        print(f"    {n_envs} env(s): {piano:8.0f} / {cart:8.0f} = {piano / cart:.2f}  (target >= 0.7)")


if __name__ == "__main__":
    gym.logger.min_level = 40
    main()
