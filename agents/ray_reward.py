"""The frozen reward as a Ray service, and the env that RLlib's env-runners build around an unchanged PianoEnv.

``RewardActor`` holds the frozen reward (the checkpoint's reward ensemble, on a GPU when its node has one) and
batches: every clip that arrives from any env-runner while it is busy, or within ``wait_ms`` of the first
one, is scored in one forward pass. ``RemoteScorer`` is the callable a PianoEnv gets as its ``scorer``: it
sends the episode's audio to one of the actors (picked by the env-runner's index) and waits for the score.
``make_env`` is the env creator RLlib calls in each env-runner: PianoEnv with a remote scorer, the
real-music prior's ``beta * log p_prior(a|s)`` (as in the SB3 backend's ``PriorReward``) and a recorder
that keeps the last finished episodes for the driver's monitor.

The KL term against the live policy is not here: it needs the policy's own log-probabilities, so it belongs
in the learner's loss (RLlib PPO's ``use_kl_loss``), not in the reward actors.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections import deque
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch

ACTOR_PREFIX = "earworm-reward"
_KEEP: list = []
RECENT: deque = deque(maxlen=64)  # finished episodes in this env-runner process, drained by the driver


class RewardActor:
    """Scores batches of mono waveforms with the frozen reward ensemble. Used as a Ray actor (async methods).

    ``payload``: a checkpoint dict as ``rater.scorer.read_checkpoint`` returns it (sent through the object
    store, so nodes need no shared filesystem). ``max_batch``: clips per forward pass; ``wait_ms``: how long
    the first clip of a batch waits for company (0 = only what queued up while the last batch ran).
    """

    def __init__(self, payload: dict, device: str = "auto", max_batch: int = 64, wait_ms: float = 2.0, threads: int = 1):
        from rater.scorer import Scorer  # noqa: PLC0415

        torch.set_num_threads(max(1, threads))
        self.scorer = Scorer.from_checkpoint(payload, "reward", device)
        self.max_batch, self.wait_s = int(max_batch), float(wait_ms) / 1000.0
        self.pending: list[tuple[list[np.ndarray], asyncio.Future]] = []
        self.scheduled = False
        self.stats = {"requests": 0, "clips": 0, "batches": 0, "busy_s": 0.0}

    async def score(self, waves: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        """Scores (float32, one per waveform, ``p`` units) of waveforms at ``sample_rate`` Hz."""
        if int(sample_rate) != self.scorer.sample_rate:
            raise ValueError(f"The env renders {sample_rate} Hz audio but the rater scores {self.scorer.sample_rate} Hz; "
                             "build the env at the rater's sample rate.")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((list(waves), future))
        self.stats["requests"] += 1
        if sum(len(w) for w, _ in self.pending) >= self.max_batch:
            self._flush()
        elif not self.scheduled:
            self.scheduled = True
            loop.call_later(self.wait_s, self._flush) if self.wait_s > 0 else loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self.scheduled = False
        batch, self.pending = self.pending, []
        if not batch:
            return
        waves = [w for ws, _ in batch for w in ws]
        started = time.perf_counter()
        try:
            scores = self.scorer(waves)
        except Exception as error:  # every waiting caller gets the error, none hangs
            for _, future in batch:
                future.set_exception(error)
            return
        self.stats["busy_s"] += time.perf_counter() - started
        self.stats["clips"] += len(waves)
        self.stats["batches"] += 1
        start = 0
        for ws, future in batch:
            future.set_result(scores[start : start + len(ws)])
            start += len(ws)

    def get_stats(self) -> dict:
        return dict(self.stats)

    def device(self) -> str:
        return str(self.scorer.device)


def start_reward_actors(payload: dict, n: int, device: str, max_batch: int, wait_ms: float, num_cpus: float,
                        num_gpus: float) -> list:
    """``n`` named reward actors (``earworm-reward-<i>``) that Ray restarts, retrying their calls, after a crash."""
    import ray  # noqa: PLC0415

    if n < 1:
        raise ValueError(f"--reward-actors must be >= 1, got {n}.")
    ref = ray.put(payload)
    _KEEP.append(ref)  # an actor restarted after a crash reads its arguments again: keep them alive
    cls = ray.remote(RewardActor)
    options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_restarts": -1, "max_task_retries": -1,
               "max_concurrency": 1000}
    actors = []
    for i in range(n):
        name = f"{ACTOR_PREFIX}-{i}"
        try:
            ray.kill(ray.get_actor(name))  # a stale actor of an earlier run in this cluster
        except ValueError:
            pass
        actors.append(cls.options(name=name, **options).remote(ref, device, max_batch, wait_ms, max(1, int(num_cpus))))
    ray.get([a.device.remote() for a in actors])  # fail here, clearly, if an actor cannot start
    return actors


class RemoteScorer:
    """A PianoEnv ``scorer`` that asks a reward actor: ``scorer(waves) -> np.ndarray[float32]``. Picklable."""

    def __init__(self, n_actors: int, index: int, sample_rate: int):
        self.name = f"{ACTOR_PREFIX}-{index % n_actors}"
        self.sample_rate = sample_rate
        self._actor = None

    def __call__(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        import ray  # noqa: PLC0415

        if self._actor is None:
            self._actor = ray.get_actor(self.name)
        return np.asarray(ray.get(self._actor.score.remote(list(waves), self.sample_rate)), dtype=np.float32)

    def __getstate__(self):
        return {"name": self.name, "sample_rate": self.sample_rate, "_actor": None}


class PriorRewardEnv(gym.Wrapper):
    """Adds ``beta * log p_prior(action | observation)`` to each step's reward (RL Tuner), like SB3's PriorReward."""

    def __init__(self, env: gym.Env, prior: torch.nn.Module, beta: float):
        super().__init__(env)
        self.prior, self.beta = prior.eval(), float(beta)
        self._obs = None

    def reset(self, **kwargs):
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        with torch.no_grad():
            logp = float(self.prior.log_prob(torch.as_tensor(self._obs)[None], torch.as_tensor([int(action)]))[0])
        self._obs = obs
        info["prior_logp"] = logp
        return obs, float(reward) + self.beta * logp, terminated, truncated, info


class EpisodeRecorder(gym.Wrapper):
    """Keeps each finished episode's audio, notes, roll and proxy score in this process's ``RECENT``."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated and "audio" in info:
            RECENT.append({k: info[k] for k in ("audio", "notes", "roll", "sample_rate")})
        return obs, reward, terminated, truncated, info


def drain_recent(_runner=None) -> list[dict]:
    """The episodes recorded in this process since the last call (called on each env-runner by the driver)."""
    episodes = list(RECENT)
    RECENT.clear()
    return episodes


def prior_bytes(prior: torch.nn.Module | None) -> bytes | None:
    """A prior as bytes for the env config (env-runners on other nodes need no shared filesystem)."""
    if prior is None:
        return None
    buffer = io.BytesIO()
    torch.save({"grid": prior.grid, "hidden": prior.hidden, "recent": prior.recent, "state_dict": prior.state_dict()}, buffer)
    return buffer.getvalue()


def make_env(config: dict) -> gym.Env:
    """RLlib's env creator: ``config`` keys ``n_actors``, ``reward_mode``, ``sample_rate``, ``beta``, ``prior``."""
    from agents.prior import NotePrior  # noqa: PLC0415
    from envs.piano import PianoEnv  # noqa: PLC0415

    index = getattr(config, "worker_index", 0) + getattr(config, "vector_index", 0)
    scorer = RemoteScorer(config["n_actors"], index, config["sample_rate"])
    env: gym.Env = PianoEnv(scorer=scorer, reward_mode=config["reward_mode"], sample_rate=config["sample_rate"])
    if config.get("beta", 0) > 0 and config.get("prior") is not None:
        state = torch.load(io.BytesIO(config["prior"]), map_location="cpu", weights_only=False)
        prior = NotePrior(state["grid"], state["hidden"], state["recent"])
        prior.load_state_dict(state["state_dict"])
        env = PriorRewardEnv(env, prior, config["beta"])
    return EpisodeRecorder(env)
