"""VecEnv wrappers that add reward terms in the main process, batched across all envs.

Each does one thing: ``RaterReward`` scores finished (or partial) episodes with one frozen rater call per vector
step, so subprocess envs never load a model; ``PriorReward`` adds ``beta * log p_prior(action | history)``
(RL Tuner, Jaques et al. 2017) from a prior learned on real melodies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from envs.piano import check_reward_mode, reward_from_score


class RaterReward(VecEnvWrapper):
    """Reward from a scorer, batched: ``final`` scores each finished episode; ``shaped`` pays score differences.

    Works with envs made with ``scorer="deferred"``. Each finished episode's info gets ``"proxy_score"``.
    """

    def __init__(self, venv: VecEnv, scorer: Callable[[Sequence[np.ndarray]], np.ndarray], reward_mode: str):
        super().__init__(venv)
        check_reward_mode(reward_mode)
        self.scorer, self.reward_mode = scorer, reward_mode
        self._last = np.zeros(self.num_envs, dtype=np.float32)

    def reset(self):
        self._last[:] = 0.0
        return self.venv.reset()

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        rewards = rewards.astype(np.float32, copy=True)
        key = "audio" if self.reward_mode == "final" else "audio_so_far"
        idx = [i for i, info in enumerate(infos) if key in info]
        if idx:
            scores = np.asarray(self.scorer([infos[i][key] for i in idx]), dtype=np.float32)
            if not np.isfinite(scores).all():
                raise FloatingPointError("The rater returned a non-finite score: check the rater checkpoint.")
            for i, score in zip(idx, scores):
                rewards[i] += reward_from_score(self.reward_mode, score, self._last[i])
                self._last[i] = score
                infos[i].pop("audio_so_far", None)
                if dones[i]:
                    infos[i]["proxy_score"] = float(score)
        self._last[dones] = 0.0
        return obs, rewards, dones, infos


class PriorReward(VecEnvWrapper):
    """Adds ``beta * log p_prior(action | observation)`` to every step's reward (batched, no grad)."""

    def __init__(self, venv: VecEnv, prior: torch.nn.Module, beta: float):
        super().__init__(venv)
        self.prior, self.beta = prior.eval(), float(beta)
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None

    def reset(self):
        self._obs = self.venv.reset()
        return self._obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        with torch.no_grad():
            logp = self.prior.log_prob(torch.as_tensor(self._obs), torch.as_tensor(self._actions)).numpy()
        for info, lp in zip(infos, logp):
            info["prior_logp"] = float(lp)
        self._obs = obs
        return obs, rewards + self.beta * logp.astype(np.float32), dones, infos
