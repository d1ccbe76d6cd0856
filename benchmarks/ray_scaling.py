"""Ray backend costs, measured in one run on a local two-node cluster (head + one worker node, 1 CPU each).

SINGLE-HOST FIGURES: both nodes share this machine's cores, so these numbers measure Ray's overhead against
the one-machine code paths, not scaling. docs/scaling.md turns the per-core rates into a capacity plan.

    python -m benchmarks.ray_scaling [--rater PATH] [--iterations 4] [--n-clips 96]

1. PPO env steps/s (sampling + learning, PianoEnv with the rater reward, beta 0): RLlib with 1 and 2
   env-runners against SB3 (the default backend) with 1 and 2 subprocess envs, same PPO settings.
2. Reward-actor clips/s: 8.5-s episode clips sent one per request by many concurrent callers (the actor
   batches them), against the same Scorer called in-process on the whole batch.
3. The default dataset build, local process pool (2 workers) against Ray tasks, same inputs, fresh caches;
   the outputs are checked byte-identical.
Needs the ray extra (``make setup-ray``; run with .venv-ray/bin/python).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def rater_checkpoint(path: str, tmp: Path) -> tuple[Path, str]:
    """The given/default rater, or an untrained default one saved to ``tmp`` (speed does not depend on weights)."""
    from rater.logfreq import LogFreqConfig  # noqa: PLC0415
    from rater.scorer import build_checkpoint, checkpoint_path, save_checkpoint  # noqa: PLC0415
    from rater.tonal import TonalConfig, TonalRater  # noqa: PLC0415

    if checkpoint_path(path or None).is_file():
        return checkpoint_path(path or None), str(checkpoint_path(path or None))
    torch.manual_seed(0)
    config, n_reward = TonalConfig(), 5  # the default arch and reward ensemble (rater.train's --n-reward)
    states = [TonalRater(config).state_dict() for _ in range(n_reward)]
    payload = build_checkpoint(states, config, LogFreqConfig(), 0.0, 1.0, arch="tonal", roles=["reward"] * n_reward,
                               rule="uwo", lam=1.0)  # fmt: skip
    return save_checkpoint(payload, tmp / "rater.pt"), "untrained default (tonal, 5-member uwo) rater"


def sb3_steps_per_second(n_envs: int, steps: int, rater: Path) -> float:
    """SB3 PPO as ``train.py --agent ppo`` runs it (rater batched in the main process), beta 0."""
    from agents.sb3 import make_envs  # noqa: PLC0415
    from agents.wrappers import RaterReward  # noqa: PLC0415
    from rater.scorer import Scorer  # noqa: PLC0415
    from stable_baselines3 import PPO  # noqa: PLC0415

    venv = RaterReward(make_envs(n_envs, 0, "final"), Scorer.load(rater, device="cpu"), "final")
    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=256, n_epochs=4, ent_coef=0.01, seed=0, device="cpu", verbose=0)
    model.learn(256 * n_envs)  # warm-up: processes, first rollout
    started = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    rate = steps / (time.perf_counter() - started)
    venv.close()
    return rate


def rllib_steps_per_second(n_runners: int, iterations: int, rater: Path, address: str) -> tuple[float, float, float]:
    """RLlib PPO as ``train.py --backend ray`` builds it, timed over ``iterations`` after one warm-up iteration.

    Returns (env steps/s of whole iterations, env steps/s of one env-runner sampling on its own, the rest of an
    iteration as a rate: learner update + weight sync + RLlib's bookkeeping). The sampling rate is timed inside
    each env-runner (``EnvRunner.sample``, policy inference and reward-actor calls included); RLlib's own
    timers are moving averages that still carry the slow first iteration, so they are not used.
    """
    import ray  # noqa: PLC0415
    from ray.tune.registry import register_env  # noqa: PLC0415

    from agents.ray_reward import make_env, start_reward_actors  # noqa: PLC0415
    from agents.rllib import ENV_NAME, Args, build_config  # noqa: PLC0415
    from studio.cluster import connect  # noqa: PLC0415
    from rater.scorer import read_checkpoint  # noqa: PLC0415

    connect(address)
    actors = start_reward_actors(read_checkpoint(rater), 1, "cpu", 64, 2.0, 0.0, 0.0)
    register_env(ENV_NAME, make_env)
    args = Args(env_runners=n_runners, beta=0.0)
    env_config = {"n_actors": 1, "reward_mode": "final", "beta": 0.0, "prior": None, "sample_rate": 16000}
    algo = build_config(args, env_config, "cpu").build_algo()
    algo.train()
    steps, started = 0, time.perf_counter()
    for _ in range(iterations):
        steps += int(algo.train()["env_runners"]["num_env_steps_sampled"])
    seconds = time.perf_counter() - started
    per_runner = float(np.median(algo.env_runner_group.foreach_env_runner(_timed_sample, local_env_runner=False)))
    batch = 256 * n_runners
    rest = seconds / iterations - 256 / per_runner  # runners sample in parallel: one runner's 256 steps
    algo.stop()
    for actor in actors:
        ray.kill(actor)
    return steps / seconds, per_runner, batch / max(rest, 1e-9)


def _timed_sample(runner, steps: int = 512) -> float:
    """Env steps/s of one env-runner sampling ``steps`` steps with its current policy (runs inside the runner)."""
    started = time.perf_counter()
    runner.sample(num_timesteps=steps, random_actions=False)
    return steps / (time.perf_counter() - started)


def reward_actor_clips_per_second(rater: Path, address: str, n_clips: int = 64, repeats: int = 3) -> tuple[float, float, float]:
    """(actor clips/s, in-process batched clips/s, mean clips per actor batch) for 8.5-s clips."""
    import ray  # noqa: PLC0415

    from agents.ray_reward import start_reward_actors  # noqa: PLC0415
    from studio.cluster import connect  # noqa: PLC0415
    from rater.scorer import Scorer, read_checkpoint  # noqa: PLC0415

    connect(address)
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(int(8.5 * 16000))).astype(np.float32) for _ in range(n_clips)]
    (actor,) = start_reward_actors(read_checkpoint(rater), 1, "cpu", 64, 2.0, 0.0, 0.0)
    refs = [ray.put([c]) for c in clips]
    ray.get([actor.score.remote(r, 16000) for r in refs])  # warm-up
    before = ray.get(actor.get_stats.remote())
    started = time.perf_counter()
    for _ in range(repeats):
        ray.get([actor.score.remote(r, 16000) for r in refs])
    actor_rate = repeats * n_clips / (time.perf_counter() - started)
    after = ray.get(actor.get_stats.remote())
    mean_batch = (after["clips"] - before["clips"]) / max(1, after["batches"] - before["batches"])
    ray.kill(actor)
    scorer = Scorer.load(rater, device="cpu")
    scorer(clips)
    started = time.perf_counter()
    for _ in range(repeats):
        scorer(clips)
    return actor_rate, repeats * n_clips / (time.perf_counter() - started), mean_batch


def build_seconds(address: str, n_clips: int, tmp: Path) -> tuple[float, float, bool]:
    """(local pool seconds, Ray seconds, byte-identical) for the same small default build, fresh caches."""
    from rater.data import build  # noqa: PLC0415

    sources = {"bach": 6, "ryansMammoth": 6}
    times = {}
    for name, kwargs in (("local", {"workers": 2}), ("ray", {"address": address})):
        started = time.perf_counter()
        build.build_default_dataset(tmp / name, seed=0, n_clips=n_clips, sources=sources, progress=False,
                                    cache_dir=tmp / f"cache-{name}", **kwargs)
        times[name] = time.perf_counter() - started
    same = all((tmp / "local" / f).read_bytes() == (tmp / "ray" / f).read_bytes() for f in ("audio.npy", "meta.csv", "info.json"))
    return times["local"], times["ray"], same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rater", default="", help="rater checkpoint (default: runs/rater/...; untrained if missing)")
    parser.add_argument("--iterations", type=int, default=4, help="timed RLlib iterations (512 steps each with 2 runners)")
    parser.add_argument("--n-clips", type=int, default=96, help="clips in the timed dataset build")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from studio.cluster import LocalCluster  # noqa: PLC0415

    results = {}
    with tempfile.TemporaryDirectory() as tmp_dir, LocalCluster(workers=1, cpus=1, object_store_mb=100) as cluster:
        tmp = Path(tmp_dir)
        rater, rater_name = rater_checkpoint(args.rater, tmp)
        print(f"Local two-node Ray cluster at {cluster.address} (1 CPU per node), rater: {rater_name}.")
        print("SINGLE-HOST FIGURES: both nodes share this machine's cores; they measure overhead, not scaling.\n")
        for n in (1, 2):
            results[f"sb3_{n}"] = sb3_steps_per_second(n, 256 * n * args.iterations, rater)
            rate, per_runner, learner = rllib_steps_per_second(n, args.iterations, rater, cluster.address)
            results.update({f"rllib_{n}": rate, f"rllib_{n}_sampling_per_runner": per_runner, f"rllib_{n}_learner": learner})
            print(f"PPO env steps/s, {n} env(s)/env-runner(s): RLlib {rate:6.0f} / SB3 {results[f'sb3_{n}']:6.0f} = "
                  f"{rate / results[f'sb3_{n}']:.2f}   (RLlib: one env-runner samples {per_runner:.0f} steps/s; the rest "
                  f"of an iteration, learner + sync, runs at {learner:.0f} steps/s)", flush=True)
        actor, local, batch = reward_actor_clips_per_second(rater, cluster.address)
        results.update(reward_actor_clips_s=actor, scorer_in_process_clips_s=local, reward_actor_mean_batch=batch)
        print(f"8.5-s clips/s: reward actor (one clip per request, {batch:.1f} clips per batch) {actor:6.0f} / "
              f"in-process Scorer on the whole batch {local:6.0f} = {actor / local:.2f}", flush=True)
        local_s, ray_s, same = build_seconds(cluster.address, args.n_clips, tmp)
        results.update(build_local_s=local_s, build_ray_s=ray_s, build_identical=same)
        print(f"Default build, {args.n_clips} clips from 12 files: Ray {ray_s:.1f} s / local pool (2 workers) "
              f"{local_s:.1f} s = {ray_s / local_s:.2f}; outputs byte-identical: {same}")
    print("\n" + json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in results.items()}, sort_keys=True))


if __name__ == "__main__":
    main()
