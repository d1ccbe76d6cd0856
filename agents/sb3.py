"""RL against the frozen rater: PPO (or A2C, DQN, a random baseline) in vectorised PianoEnvs.

Read top to bottom, one run is: resolve the rater (train it if missing) and the real-music prior (train it if
missing) -> build the subprocess envs with deferred rewards -> wrap them with the batched rater reward (and,
as an ablation, RL Tuner's ``beta * log p_prior``) -> PPO whose actor starts as the prior and whose reward pays
``- kl_coef * (log π - log p_prior)`` per step (``agents/kl.py``) -> learn with the over-optimisation monitor
(early stop at the held-out turnover) and atomic checkpoints -> evaluate random, the prior alone and the
checkpoints on what the policy never saw (held-out raters, the simulated listeners' gold score, diversity),
fit the over-optimisation curve, and print a summary.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gymnasium as gym
import torch
from stable_baselines3 import A2C, DQN
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

import envs
from agents.interrupt import ClosableSubprocVecEnv, interrupt_point, interrupts_handled
from agents.kl import KLPPO, copy_prior_into, prior_policy_kwargs
from rater.judges import Judges, load_judges
from agents.monitor import CheckpointEvery, OverOptimisationMonitor, ProgressBar, atomic_save
from agents.overopt import plot_curve
from agents.prior import GridConfig, default_prior
from agents.rollout import collect_episodes, model_policy, prior_policy, random_policy, summarise
from agents.wrappers import PriorReward, RaterReward
from studio.files import atomic_path, write_json
from studio.flags import parse_args
from studio.device import resolve_device

ALGOS = {"ppo": KLPPO, "a2c": A2C, "dqn": DQN}


@dataclass
class Args:
    algo: str = field(default="ppo", metadata={"help": "ppo, a2c, dqn, or random (the untrained baseline)"})
    timesteps: int = field(default=60_000, metadata={"help": "environment steps to train for (all envs together)"})
    n_envs: int = field(default=2, metadata={"help": "parallel subprocess envs; fixed, not the core count, because the number of envs changes the training (the same seed then gives other numbers)"})
    seed: int = field(default=0, metadata={"help": "seed for the envs, the policy and the evaluation"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when present), cpu or cuda: for the policy and rater"})
    run_name: str = field(default="", metadata={"help": "run folder under --runs-dir (default: <algo>-seed<seed>)"})
    runs_dir: str = field(default="runs", metadata={"help": "where runs are written"})
    rater: str = field(default="", metadata={"help": "rater checkpoint (default: runs/rater/checkpoints/rater.pt, trained if missing)"})
    data: str = field(default="data/default", metadata={"help": "dataset whose real test excerpts give the judges' reference scale"})
    reward_mode: str = field(default="final", metadata={"help": "final (score at episode end) or shaped (score differences)"})
    init: str = field(default="prior", metadata={"help": "PPO's actor: prior (a copy of the real-music prior) or scratch (SB3's random MlpPolicy, the ablation)"})
    kl_coef: float = field(default=0.05, metadata={"help": "PPO: per-step reward penalty kl_coef * (log pi(a|s) - log p_prior(a|s)), exact (0 = off); chosen by benchmarks/rl_ablation.py"})
    beta: float = field(default=0.0, metadata={"help": "ablation (RL Tuner): weight of log p_prior(action|history) added to the reward, without the -log pi part (0 = off)"})
    ent_coef: float = field(default=0.0, metadata={"help": "entropy bonus (PPO/A2C); the KL penalty already keeps the prior's entropy"})
    learning_rate: float = field(default=3e-4, metadata={"help": "optimiser learning rate"})
    n_rollout_steps: int = field(default=256, metadata={"help": "steps per env per PPO/A2C rollout"})
    monitor_every: int = field(default=1, metadata={"help": "log the over-optimisation monitor every N rollouts"})
    media_every: int = field(default=5, metadata={"help": "log best/median audio and piano rolls every N monitor calls"})
    checkpoint_every: int = field(default=10_000, metadata={"help": "save an atomic checkpoint every N env steps"})
    early_stop: bool = field(default=True, metadata={"help": "stop at the held-out turnover: the selecting held-out rater's 3-check average has not beaten its best for --patience checks"})
    patience: int = field(default=12, metadata={"help": "monitor checks (rollouts) without a new held-out best before --early-stop stops"})
    eval_episodes: int = field(default=32, metadata={"help": "episodes per policy in the final summary"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads in the main process (envs render in their own processes)"})
    resume: bool = field(default=False, metadata={"help": "continue the run in --run-name from its latest checkpoint"})


def make_envs(n_envs: int, seed: int, reward_mode: str) -> VecEnv:
    """Subprocess PianoEnvs that leave scoring to the main process (one batched rater for all envs)."""
    kwargs = {"scorer": "deferred", "reward_mode": reward_mode}

    def make():
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it saves, then closes us
        return gym.make(f"envs:{envs.ENV_ID}", **kwargs)

    venv = ClosableSubprocVecEnv([make] * n_envs) if n_envs > 1 else DummyVecEnv([lambda: gym.make(envs.ENV_ID, **kwargs)])
    venv.seed(seed)
    return venv


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(Args, argv, prog="train.py --agent {ppo,a2c,dqn,random}", description=__doc__)
    if args.algo not in (*ALGOS, "random"):
        raise SystemExit(f"Unknown --algo {args.algo!r}: choose ppo, a2c, dqn or random.")
    device = str(resolve_device(args.device))
    torch.set_num_threads(args.threads)
    run_dir = Path(args.runs_dir) / (args.run_name or f"{args.algo}-seed{args.seed}")
    latest = run_dir / "checkpoints" / "latest.zip"
    if latest.exists() and not args.resume:
        raise SystemExit(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --run-name.")
    if args.resume and not latest.exists():
        raise SystemExit(f"--resume: no checkpoint at {latest}; start without --resume.")
    run_dir.mkdir(parents=True, exist_ok=True)

    # 1. The judges: the proxy rater is the reward; held-out raters and the simulated listeners only watch.
    judges = load_judges(args.rater or None, device=device, reference_data=args.data)
    grid = GridConfig()
    needs_prior = args.beta > 0 or (args.algo == "ppo" and (args.kl_coef > 0 or args.init == "prior"))
    if args.init not in ("prior", "scratch"):
        raise SystemExit(f"Unknown --init {args.init!r}: choose prior or scratch.")
    prior_path = Path(args.runs_dir) / "prior" / "prior.pt"
    prior = default_prior(grid, prior_path, seed=args.seed, data_dir=Path(args.data)) if needs_prior else None
    config = {**asdict(args), "device": device, "rater_path": str(judges.rater_path), "rater_hash": judges.rater_hash,
              "sample_rate": judges.proxy.sample_rate}
    write_json(run_dir / "config.json", config)

    # 2. Envs render in subprocesses; the rater and the prior score all of them in one batch per step.
    venv = RaterReward(make_envs(args.n_envs, args.seed, args.reward_mode), judges.proxy, args.reward_mode)
    if prior is not None and args.beta > 0:  # the RL Tuner ablation; the KL penalty lives in KLPPO's rollout buffer
        venv = PriorReward(venv, prior, args.beta)

    # 3. Learn, watched by the monitor, checkpointed atomically; Ctrl-C saves and exits cleanly.
    if args.algo != "random":
        model = load_model(args, latest, venv, device, prior) if args.resume else new_model(args, venv, device, prior)
        model.set_logger(configure(str(run_dir / "tb"), ["tensorboard"]))
        remaining = max(0, args.timesteps - model.num_timesteps)
        print(f"{'Resuming' if args.resume else 'Training'} {args.algo.upper()} at step {model.num_timesteps}: "
              f"{remaining} steps to go on {args.n_envs} env(s), device {device}. "
              f"TensorBoard: tensorboard --logdir {run_dir / 'tb'}", flush=True)
        monitor = OverOptimisationMonitor(judges, run_dir / "checkpoints", args.monitor_every, args.media_every,
                                          args.early_stop, patience=args.patience, n_steps=grid.n_steps)
        callbacks = [monitor, CheckpointEvery(latest, args.checkpoint_every), ProgressBar(remaining)]
        start = time.time()
        second = f"Second Ctrl-C: exiting now; {latest} holds the last complete checkpoint. Continue with --resume."
        with interrupts_handled(second):
            try:
                model.learn(remaining, callback=callbacks, reset_num_timesteps=False)
                atomic_save(model, latest)
            except KeyboardInterrupt:
                atomic_save(model, latest)
                venv.close()
                raise SystemExit(f"Interrupted at step {model.num_timesteps}: saved {latest}. Continue with --resume.")
        config.update(train_seconds=round(time.time() - start, 1), gold_target_reached=monitor.gold_target)
        write_json(run_dir / "config.json", config)
        overopt = monitor.overoptimisation()
        write_json(run_dir / "overoptimisation.json", overopt)
        if len([p for p in overopt["curve"] if p["sqrt_kl"] == p["sqrt_kl"]]) >= 2:
            with atomic_path(run_dir / "overoptimisation.png") as tmp:
                tmp.write_bytes(plot_curve([p for p in overopt["curve"] if p["sqrt_kl"] == p["sqrt_kl"]], overopt["fit"]))
    venv.close()

    # 4. Judge random, the prior alone and the checkpoints (best by the selecting held-out rater) on fresh episodes.
    try:
        summary = summarise_run(args, judges, run_dir, prior)
    except KeyboardInterrupt:
        raise SystemExit(f"Interrupted during the final summary: training is saved in {latest}. "
                         "`python evaluate.py` judges it, or rerun with --resume to redo the summary.") from None
    summary["train_seconds"], summary["gold_target_reached"] = config.get("train_seconds"), config.get("gold_target_reached")
    if (run_dir / "overoptimisation.json").is_file():
        summary["overoptimisation_fit"] = json.loads((run_dir / "overoptimisation.json").read_text())["fit"]
    write_json(run_dir / "summary.json", summary)
    print_summary(summary)
    return summary


def new_model(args: Args, venv: VecEnv, device: str, prior=None):
    kwargs = {"learning_rate": args.learning_rate, "seed": args.seed, "device": device, "verbose": 0}
    if args.algo in ("ppo", "a2c"):
        kwargs.update(n_steps=args.n_rollout_steps, ent_coef=args.ent_coef)
    if args.algo == "ppo":
        kwargs.update(batch_size=min(256, args.n_rollout_steps * args.n_envs), n_epochs=4, prior=prior, kl_coef=args.kl_coef)
        if args.init == "prior":
            model = KLPPO("MlpPolicy", venv, policy_kwargs=prior_policy_kwargs(prior), **kwargs)
            copy_prior_into(model.policy, prior)
            return model
    return ALGOS[args.algo]("MlpPolicy", venv, **kwargs)


def load_model(args: Args, checkpoint: Path, venv: VecEnv, device: str, prior=None):
    """SB3's own load; a KLPPO gets its (unsaved) frozen prior back."""
    model = ALGOS[args.algo].load(checkpoint, env=venv, device=device)
    if isinstance(model, KLPPO):
        model.prior = prior
    return model


def summarise_run(args: Args, judges: Judges, run_dir: Path, prior=None) -> dict:
    interrupt_point("summary")
    rows = {}
    episodes = collect_episodes(lambda env: random_policy(env, args.seed), args.eval_episodes, args.seed)
    rows["random"], _ = summarise(episodes, judges)
    if prior is not None:
        episodes = collect_episodes(lambda env: prior_policy(prior), args.eval_episodes, args.seed)
        rows["prior alone"], _ = summarise(episodes, judges)
    for name in ("best", "latest"):  # best by held-out score, and where training ended
        checkpoint = run_dir / "checkpoints" / f"{name}.zip"
        if args.algo != "random" and checkpoint.exists():
            model = ALGOS[args.algo].load(checkpoint, device="cpu")
            episodes = collect_episodes(lambda env: model_policy(model, deterministic=False), args.eval_episodes, args.seed)
            rows[f"{args.algo} ({name})"], _ = summarise(episodes, judges)
    return {"rows": rows, "reference": judges.reference, "episodes": args.eval_episodes, "seed": args.seed}


def print_summary(summary: dict) -> None:
    ref = summary["reference"]
    cols = ("proxy", "heldout", "gold", "distinct_per_100", "mean_edit_distance", "in_key")
    print(f"\n{'':24}" + "".join(f"{c:>20}" for c in cols))
    for name, row in summary["rows"].items():
        print(f"{name:24}" + "".join(f"{row[c]:20.3f}" for c in cols))
    if ref:
        print(f"{'corpus excerpts (p50)':24}" + "".join(f"{ref[c]['p50']:20.3f}" for c in cols[:3]))
        print(f"{'corpus excerpts (p90)':24}" + "".join(f"{ref[c]['p90']:20.3f}" for c in cols[:3]))
    print("gold = expected like rate by the simulated listeners; heldout = mean of raters never used as reward.")
