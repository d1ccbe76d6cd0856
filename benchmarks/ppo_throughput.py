"""PPO steps/s with the whole reward machinery (batched real rater + the exact KL penalty to the prior, actor
shaped like the prior) / PPO steps/s on the bare PianoEnv (no reward, SB3's default MlpPolicy), same run.

Also: the same prior-shaped policy on the bare env (what the bigger actor costs by itself), and CartPole-v1 for
scale. Settings as ``train.py --agent ppo`` (n_steps 256, batch 256, 4 epochs). Target: full / bare >= 0.8.
Needs the default rater and prior (``python train.py``). Run from the repo root:
``python -m benchmarks.ppo_throughput [--ppo-steps 4096]``.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import envs
from rater.judges import load_judges
from agents.kl import KLPPO, copy_prior_into, prior_policy_kwargs
from agents.prior import GridConfig, load_prior
from agents.wrappers import RaterReward


def steps_per_second(env_id: str, n_envs: int, steps: int, env_kwargs=None, wrap=None, prior=None, kl_coef=0.0) -> float:
    venv = make_vec_env(env_id, n_envs=n_envs, seed=0, vec_env_cls=SubprocVecEnv if n_envs > 1 else DummyVecEnv,
                        env_kwargs=env_kwargs)
    venv = wrap(venv) if wrap else venv
    settings = {"n_steps": 256, "batch_size": 256, "n_epochs": 4, "seed": 0, "device": "cpu", "verbose": 0}
    if prior is None:
        model = PPO("MlpPolicy", venv, **settings)
    else:
        model = KLPPO("MlpPolicy", venv, policy_kwargs=prior_policy_kwargs(prior), prior=prior, kl_coef=kl_coef, **settings)
        copy_prior_into(model.policy, prior)
    model.learn(256 * n_envs)  # warm-up: process start, first rollout
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    rate = steps / (time.perf_counter() - start)
    venv.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ppo-steps", type=int, default=4096, help="PPO timesteps timed per case (default 4096)")
    parser.add_argument("--n-envs", default="2", help="comma-separated env counts (default 2, the demo's)")
    parser.add_argument("--kl-coef", type=float, default=0.05, help="KL penalty weight (default 0.05)")
    parser.add_argument("--prior", default="runs/prior/prior.pt", help="the trained prior")
    args = parser.parse_args()
    torch.set_num_threads(1)
    judges = load_judges(None, device="cpu", reference_data=None)
    prior = load_prior(args.prior, GridConfig())
    piano = f"envs:{envs.ENV_ID}"
    deferred = {"scorer": "deferred"}

    print("SB3 PPO steps/s (train.py's settings), measured in one run")
    for n_envs in (int(n) for n in args.n_envs.split(",")):
        bare = steps_per_second(piano, n_envs, args.ppo_steps, deferred)
        bare_prior = steps_per_second(piano, n_envs, args.ppo_steps, deferred, prior=prior)
        full = steps_per_second(piano, n_envs, args.ppo_steps, deferred, lambda v: RaterReward(v, judges.proxy, "final"),
                                prior=prior, kl_coef=args.kl_coef)
        cart = steps_per_second("CartPole-v1", n_envs, args.ppo_steps)
        print(f"  {n_envs} env(s): bare PianoEnv {bare:6.0f} | bare + prior-shaped actor {bare_prior:6.0f} | "
              f"rater reward + KL + prior actor {full:6.0f} | CartPole {cart:6.0f}")
        print(f"      full / bare = {full / bare:.2f} (target >= 0.8); full / bare-with-prior-actor = {full / bare_prior:.2f}")


if __name__ == "__main__":
    gym.logger.min_level = 40
    main()
