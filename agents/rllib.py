"""RL on a Ray cluster: ``python train.py --agent ppo --backend ray [--address ADDR]``.

Read top to bottom, one run is: join the cluster (or start Ray locally) -> the judges, as in the SB3 backend
-> reward actors holding the frozen rater -> RLlib PPO whose env-runners each build an unchanged PianoEnv
scored by those actors (plus the real-music prior's term) -> per iteration, the over-optimisation monitor on
the episodes the env-runners just finished, TensorBoard under the same namespaces (``judges/``, ``music/``,
``episodes/``), atomic checkpoints through RLlib's own ``save_to_path`` (``checkpoints/latest``, and
``checkpoints/best`` by held-out score) -> the same summary as the SB3 backend.

Fault tolerance: env-runners are restarted by RLlib when their node dies (``restart_failed_env_runners``),
reward actors by Ray (``max_restarts=-1``, calls retried), and ``--resume`` continues from the last
checkpoint if the driver itself is lost. The SB3 backend stays the default on one machine.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from agents.prior import GridConfig, default_prior
from agents.rollout import collect_episodes, model_policy, random_policy, summarise
from agents.sb3 import print_summary
from envs.piano import piano_roll_image
from studio.cluster import connect, require_ray
from rater.judges import Judges, load_judges
from rater.scorer import read_checkpoint
from studio.device import resolve_device
from studio.files import atomic_path, write_json
from studio.flags import parse_args
from studio.theory import diversity, mean_theory_stats

ENV_NAME = "earworm-piano-ray"
STATE_FILE = "earworm_state.json"  # beside RLlib's files in each checkpoint: our step count and monitor state


@dataclass
class Args:
    algo: str = field(default="ppo", metadata={"help": "ppo (the only algorithm of the Ray backend)"})
    address: str = field(default="", metadata={"help": "Ray cluster: host:port, auto, or empty to start Ray locally"})
    timesteps: int = field(default=60_000, metadata={"help": "environment steps to train for (all env-runners together)"})
    env_runners: int = field(default=2, metadata={"help": "RLlib env-runners (Ray actors, spread over the cluster)"})
    envs_per_runner: int = field(default=1, metadata={"help": "PianoEnvs stepped by each env-runner"})
    cpus_per_runner: float = field(default=1.0, metadata={"help": "CPUs Ray reserves for each env-runner"})
    reward_actors: int = field(default=1, metadata={"help": "reward actors serving the frozen rater (batched)"})
    reward_cpus: float = field(default=0.0, metadata={"help": "CPUs Ray reserves per reward actor (0: shares the node)"})
    reward_gpus: float = field(default=-1.0, metadata={"help": "GPUs per reward actor (-1: one when the cluster has any, else 0)"})
    reward_batch: int = field(default=64, metadata={"help": "most clips a reward actor scores in one pass"})
    reward_wait_ms: float = field(default=2.0, metadata={"help": "how long a reward actor waits to fill a batch"})
    seed: int = field(default=0, metadata={"help": "seed for the env-runners, the policy and the evaluation"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when present), cpu or cuda: for the judges and learner"})
    run_name: str = field(default="", metadata={"help": "run folder under --runs-dir (default: ppo-ray-seed<seed>)"})
    runs_dir: str = field(default="runs", metadata={"help": "where runs are written"})
    rater: str = field(default="", metadata={"help": "rater checkpoint (default: runs/rater/checkpoints/rater.pt, trained if missing)"})
    data: str = field(default="data/default", metadata={"help": "dataset whose real test excerpts give the judges' reference scale"})
    reward_mode: str = field(default="final", metadata={"help": "final (score at episode end) or shaped (score differences)"})
    beta: float = field(default=0.2, metadata={"help": "weight of log p_prior(action|history) in the reward (0 = off)"})
    ent_coef: float = field(default=0.01, metadata={"help": "entropy bonus"})
    learning_rate: float = field(default=3e-4, metadata={"help": "optimiser learning rate"})
    n_rollout_steps: int = field(default=256, metadata={"help": "steps per env per rollout (RLlib's rollout_fragment_length)"})
    media_every: int = field(default=5, metadata={"help": "log best/median audio and piano rolls every N iterations"})
    checkpoint_every: int = field(default=10_000, metadata={"help": "save an atomic checkpoint every N env steps"})
    eval_episodes: int = field(default=32, metadata={"help": "episodes per policy in the final summary"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads in the driver (the learner runs here)"})
    resume: bool = field(default=False, metadata={"help": "continue the run in --run-name from its latest checkpoint"})


def check_args(args: Args) -> None:
    if args.algo != "ppo":
        raise SystemExit(f"--backend ray trains PPO only, got --agent {args.algo}; use the SB3 backend for it.")
    if args.reward_mode not in ("final", "shaped"):
        raise SystemExit(f"--reward-mode must be final or shaped, got {args.reward_mode!r}.")
    if args.env_runners < 1 or args.envs_per_runner < 1 or args.n_rollout_steps < 1 or args.timesteps < 1:
        raise SystemExit("--env-runners, --envs-per-runner, --n-rollout-steps and --timesteps must be >= 1.")


def build_config(args: Args, env_config: dict, learner_device: str):
    """RLlib's PPOConfig mirroring the SB3 backend: 64x64 tanh MLPs, 4 epochs of 256-step minibatches,
    clipped objective without RLlib's adaptive KL-to-old-policy term."""
    from ray.rllib.algorithms.ppo import PPOConfig  # noqa: PLC0415

    train_batch = args.n_rollout_steps * args.env_runners * args.envs_per_runner
    return (
        PPOConfig()
        .environment(ENV_NAME, env_config=env_config, disable_env_checking=True)
        .env_runners(num_env_runners=args.env_runners, num_envs_per_env_runner=args.envs_per_runner,
                     num_cpus_per_env_runner=args.cpus_per_runner, rollout_fragment_length=args.n_rollout_steps,
                     gym_env_vectorize_mode="sync", sample_timeout_s=300.0)
        .learners(num_learners=0, num_gpus_per_learner=1 if learner_device.startswith("cuda") else 0)
        .resources(num_cpus_for_main_process=0)
        .training(lr=args.learning_rate, entropy_coeff=args.ent_coef, train_batch_size_per_learner=train_batch,
                  minibatch_size=min(256, train_batch), num_epochs=4, gamma=0.99, lambda_=0.95, clip_param=0.2,
                  use_kl_loss=False, vf_clip_param=float("inf"), grad_clip=0.5)
        .rl_module(model_config={"fcnet_hiddens": [64, 64], "fcnet_activation": "tanh", "vf_share_layers": False})
        .fault_tolerance(restart_failed_env_runners=True, max_num_env_runner_restarts=100,
                         env_runner_health_probe_timeout_s=10.0, env_runner_restore_timeout_s=60.0)
        .debugging(seed=args.seed, log_level="ERROR")
    )


class Monitor:
    """The SB3 backend's over-optimisation monitor for RLlib: per iteration, the judges on fresh episodes."""

    def __init__(self, judges: Judges, writer: SummaryWriter, media_every: int, max_scored: int = 32, window: int = 100):
        from collections import deque  # noqa: PLC0415

        self.judges, self.writer, self.media_every, self.max_scored = judges, writer, media_every, max_scored
        self.recent: deque = deque(maxlen=window)
        self.best_heldout = -np.inf
        self.gold_target: dict | None = None
        self.calls = 0

    def state(self) -> dict:
        return {"best_heldout": float(self.best_heldout), "gold_target": self.gold_target, "calls": self.calls}

    def load_state(self, state: dict) -> None:
        self.best_heldout = state.get("best_heldout", -np.inf)
        self.gold_target, self.calls = state.get("gold_target"), state.get("calls", 0)

    def __call__(self, episodes: list[dict], step: int, seconds: float) -> bool:
        """Log the judges, diversity and theory of ``episodes``; True when held-out reached a new best."""
        if not episodes:
            return False
        for e in episodes:
            self.recent.append(e["notes"])
        episodes = episodes[-self.max_scored :]
        scores = self.judges.score([e["audio"] for e in episodes])
        means = {k: float(np.mean(v)) for k, v in scores.items()}
        for name, value in means.items():
            self.writer.add_scalar(f"judges/{name}", value, step)
        ref = self.judges.reference
        if ref:
            self.writer.add_scalar("judges/gold_vs_corpus_p90", means["gold"] - ref["gold"]["p90"], step)
            if self.gold_target is None and means["gold"] >= ref["gold"]["p90"]:
                self.gold_target = {"steps": step, "seconds": round(seconds, 1)}
            self.writer.add_scalar("judges/heldout_over_proxy", means["heldout"] / max(abs(means["proxy"]), 1e-8), step)
        for name, value in {**diversity(list(self.recent)), **mean_theory_stats([e["notes"] for e in episodes])}.items():
            self.writer.add_scalar(f"music/{name}", value, step)
        self.calls += 1
        if self.calls % self.media_every == 1 % self.media_every:
            order = np.argsort(scores["proxy"])
            for tag, i in (("best", order[-1]), ("median", order[len(order) // 2])):
                ep = episodes[i]
                self.writer.add_audio(f"episodes/{tag}", torch.as_tensor(np.clip(ep["audio"], -1, 1))[None], step,
                                      sample_rate=ep["sample_rate"])
                self.writer.add_image(f"episodes/{tag}_roll", piano_roll_image(ep["roll"]), step, dataformats="HWC")
        better = bool(np.isfinite(means["heldout"]) and means["heldout"] > self.best_heldout)
        if better:
            self.best_heldout = means["heldout"]
            self.writer.add_scalar("judges/best_heldout", self.best_heldout, step)
        self.writer.flush()
        return better


def save_checkpoint(algo, path: Path, state: dict) -> None:
    """RLlib's ``save_to_path`` into a temporary folder, moved over ``path`` only when complete."""
    with atomic_path(path) as tmp:
        algo.save_to_path(str(tmp.resolve()))
        (tmp / STATE_FILE).write_text(json.dumps(state, sort_keys=True))


def read_state(checkpoint: Path) -> dict:
    return json.loads((checkpoint / STATE_FILE).read_text())


def node_id(_runner=None) -> str:
    """The Ray node this process runs on."""
    import ray  # noqa: PLC0415

    return ray.get_runtime_context().get_node_id()


def cluster_gpus() -> float:
    import ray  # noqa: PLC0415

    return float(ray.cluster_resources().get("GPU", 0.0))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(Args, argv, prog="train.py --agent ppo --backend ray", description=__doc__)
    check_args(args)
    require_ray()
    device = str(resolve_device(args.device))
    torch.set_num_threads(args.threads)
    run_dir = Path(args.runs_dir) / (args.run_name or f"ppo-ray-seed{args.seed}")
    latest, best = run_dir / "checkpoints" / "latest", run_dir / "checkpoints" / "best"
    if latest.exists() and not args.resume:
        raise SystemExit(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --run-name.")
    if args.resume and not latest.exists():
        raise SystemExit(f"--resume: no checkpoint at {latest}; start without --resume.")
    run_dir.mkdir(parents=True, exist_ok=True)

    # 1. The judges and the prior, as in the SB3 backend.
    judges = load_judges(args.rater or None, device=device, reference_data=args.data)
    prior = default_prior(GridConfig(), Path(args.runs_dir) / "prior" / "prior.pt", seed=args.seed) if args.beta > 0 else None

    # 2. The cluster: reward actors first, then RLlib's env-runners that call them.
    import ray  # noqa: PLC0415
    from ray.tune.registry import register_env  # noqa: PLC0415

    from agents.ray_reward import drain_recent, make_env, prior_bytes, start_reward_actors  # noqa: PLC0415

    connect(args.address or None)
    gpus = (1.0 if cluster_gpus() > 0 else 0.0) if args.reward_gpus < 0 else args.reward_gpus
    actors = start_reward_actors(read_checkpoint(judges.rater_path), args.reward_actors, "cuda" if gpus > 0 else "cpu",
                                 args.reward_batch, args.reward_wait_ms, args.reward_cpus, gpus)
    register_env(ENV_NAME, make_env)
    env_config = {"n_actors": args.reward_actors, "reward_mode": args.reward_mode, "beta": args.beta,
                  "prior": prior_bytes(prior), "sample_rate": judges.proxy.sample_rate}
    config = {**asdict(args), "backend": "ray", "device": device, "rater_path": str(judges.rater_path),
              "rater_hash": judges.rater_hash, "sample_rate": judges.proxy.sample_rate,
              "cluster": {"nodes": len([n for n in ray.nodes() if n["Alive"]]), "resources": ray.cluster_resources()}}
    write_json(run_dir / "config.json", config)
    algo = build_config(args, env_config, device).build_algo()
    config["env_runner_nodes"] = algo.env_runner_group.foreach_env_runner(node_id, local_env_runner=False)
    write_json(run_dir / "config.json", config)

    # 3. Learn: one RLlib iteration at a time, then the monitor and the checkpoints.
    writer = SummaryWriter(str(run_dir / "tb"))
    monitor = Monitor(judges, writer, args.media_every)
    steps, saved_at = 0, 0
    if args.resume:
        algo.restore_from_path(str(latest.resolve()))
        state = read_state(latest)
        steps = saved_at = state["steps"]
        monitor.load_state(state["monitor"])
    print(f"{'Resuming' if args.resume else 'Training'} PPO on Ray at step {steps}: {max(0, args.timesteps - steps)} "
          f"steps to go on {args.env_runners} env-runner(s) x {args.envs_per_runner} env(s), "
          f"{config['cluster']['nodes']} node(s), {args.reward_actors} reward actor(s) "
          f"({'GPU' if gpus else 'CPU'}). TensorBoard: tensorboard --logdir {run_dir / 'tb'}", flush=True)
    started, idle = time.time(), 0
    try:
        while steps < args.timesteps:
            t0 = time.perf_counter()
            result = algo.train()
            sampled = int(result["env_runners"].get("num_env_steps_sampled", 0))
            steps += sampled
            seconds = time.perf_counter() - t0
            idle = 0 if sampled else idle + 1
            if idle >= 3:
                save_checkpoint(algo, latest, {"steps": steps, "monitor": monitor.state()})
                raise SystemExit(f"No env-runner delivered a step in 3 iterations: the cluster has no live node with "
                                 f"{args.cpus_per_runner} free CPU(s) for them. Saved {latest} at step {steps}; add "
                                 "nodes (or lower --env-runners) and continue with --resume.")
            episodes = [e for batch in algo.env_runner_group.foreach_env_runner(drain_recent, local_env_runner=True)
                        for e in batch]
            ret = result["env_runners"].get("episode_return_mean")
            if ret is not None and np.isfinite(ret):
                writer.add_scalar("rollout/ep_rew_mean", ret, steps)
            writer.add_scalar("ray/env_steps_per_s", sampled / max(seconds, 1e-9), steps)
            writer.add_scalar("ray/healthy_env_runners", algo.env_runner_group.num_healthy_remote_workers(), steps)
            learner = result.get("learners", {}).get("default_policy", {})
            for key in ("policy_loss", "vf_loss", "entropy"):
                if key in learner:
                    writer.add_scalar(f"train/{key}", float(learner[key]), steps)
            if monitor(episodes, steps, time.time() - started):
                save_checkpoint(algo, best, {"steps": steps, "monitor": monitor.state()})
            if steps - saved_at >= args.checkpoint_every:
                save_checkpoint(algo, latest, {"steps": steps, "monitor": monitor.state()})
                saved_at = steps
            print(f"step {steps}/{args.timesteps}: {sampled / max(seconds, 1e-9):.0f} env steps/s, "
                  f"{algo.env_runner_group.num_healthy_remote_workers()}/{args.env_runners} env-runners healthy",
                  flush=True)
    except KeyboardInterrupt:
        save_checkpoint(algo, latest, {"steps": steps, "monitor": monitor.state()})
        algo.stop()
        raise SystemExit(f"Interrupted at step {steps}: saved {latest}. Continue with --resume.")
    save_checkpoint(algo, latest, {"steps": steps, "monitor": monitor.state()})
    reward_stats = ray.get([a.get_stats.remote() for a in actors])
    algo.stop()
    writer.close()
    config.update(train_seconds=round(time.time() - started, 1), gold_target_reached=monitor.gold_target,
                  reward_actor_stats=reward_stats)
    write_json(run_dir / "config.json", config)

    # 4. Judge random vs the best checkpoint (by held-out score) on fresh episodes, as the SB3 backend does.
    summary = summarise_run(args, judges, run_dir)
    summary["train_seconds"], summary["gold_target_reached"] = config["train_seconds"], config["gold_target_reached"]
    write_json(run_dir / "summary.json", summary)
    print_summary(summary)
    return summary


def summarise_run(args: Args, judges: Judges, run_dir: Path) -> dict:
    from agents.rllib_policy import RLlibPolicy  # noqa: PLC0415

    rows = {}
    episodes = collect_episodes(lambda env: random_policy(env, args.seed), args.eval_episodes, args.seed)
    rows["random"], _ = summarise(episodes, judges)
    for name in ("best", "latest"):
        checkpoint = run_dir / "checkpoints" / name
        if checkpoint.is_dir():
            model = RLlibPolicy(checkpoint)
            episodes = collect_episodes(lambda env: model_policy(model, deterministic=False), args.eval_episodes, args.seed)
            rows[f"ppo-ray ({name})"], _ = summarise(episodes, judges)
    return {"rows": rows, "reference": judges.reference, "episodes": args.eval_episodes, "seed": args.seed}


if __name__ == "__main__":
    main()
