"""PPO that starts as the real-music prior and is held near it by an exact KL penalty (RL Tuner, MusicRL).

- ``prior_policy_kwargs`` + ``copy_prior_into``: an SB3 ``ActorCriticPolicy`` whose actor *is* the prior. Its
  features extractor is the prior's parameter-free ``music_features`` (so the policy sees the same observation
  through the same map), ``net_arch["pi"]`` matches the prior's trunk, and the prior's weights are copied into
  the actor's layers and ``action_net``: KL(π ‖ prior) is exactly 0 at initialisation (tested). The critic is a
  separate MLP. Saving, loading and ``--resume`` are SB3's own (the extractor is an importable class).
- ``KLPPO``: PPO whose rollout buffer subtracts ``kl_coef * (log π(a|s) − log p_prior(a|s))`` from every step's
  reward before returns and advantages are computed. ``log π(a|s)`` is the one SB3 stored while acting, from the
  live policy that chose the action, so the penalty is exact and costs one batched prior pass per rollout.

Why in the reward and not an analytic KL in the loss: the reward form penalises the KL of the whole episode
(``Σ_t log π/p`` is an unbiased sample of KL over sequences), so the value function and advantages also steer
away from *states* where π must diverge from the prior; an analytic per-state term in the loss only pulls each
visited state's action distribution back and ignores where the policy leads. The reward form is the
KL-regularised objective of RL Tuner / MusicRL / InstructGPT, it was measured on this env to keep the policy
musical while gold rose (FIELD_NOTES), and it needs no copy of ``PPO.train``. The exact KL over all actions is
still computed for every rollout, for the over-optimisation curves (``kl_stats``).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from agents.prior import GridConfig, NotePrior, feature_dim, music_features


class MusicFeatures(BaseFeaturesExtractor):
    """The prior's parameter-free observation map (``agents.prior.music_features``) as an SB3 features extractor."""

    def __init__(self, observation_space: spaces.Box, grid: dict, recent: int):
        self.grid, self.recent = GridConfig(**grid), recent
        if observation_space.shape != (self.grid.obs_dim,):
            raise ValueError(f"The env's observations have shape {observation_space.shape}, the prior expects "
                             f"({self.grid.obs_dim},) for {grid}: make the env with the prior's grid (history included).")
        super().__init__(observation_space, feature_dim(self.grid, recent))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return music_features(observations, self.grid, self.recent)


def prior_policy_kwargs(prior: NotePrior, critic: tuple[int, ...] = (64, 64)) -> dict:
    """``policy_kwargs`` for an ``MlpPolicy`` shaped like ``prior`` (actor) plus an MLP critic."""
    return {
        "features_extractor_class": MusicFeatures,
        "features_extractor_kwargs": {"grid": asdict(prior.grid), "recent": prior.recent},
        "net_arch": {"pi": [prior.hidden, prior.hidden], "vf": list(critic)},
        "activation_fn": nn.ReLU,
    }


def copy_prior_into(policy, prior: NotePrior) -> None:
    """Copy the prior's trunk and head into an SB3 policy built with ``prior_policy_kwargs(prior)``."""
    actor = [m for m in policy.mlp_extractor.policy_net if isinstance(m, nn.Linear)]
    source = [m for m in prior.trunk if isinstance(m, nn.Linear)]
    if len(actor) != len(source) or any(a.weight.shape != s.weight.shape for a, s in zip(actor, source)):
        raise ValueError("The policy's actor does not match the prior: build it with prior_policy_kwargs(prior).")
    with torch.no_grad():
        for a, s in zip([*actor, policy.action_net], [*source, prior.head]):
            a.weight.copy_(s.weight)
            a.bias.copy_(s.bias)


def policy_log_probs(policy, obs: torch.Tensor) -> torch.Tensor:
    """Log-probabilities ``(B, n_actions)`` of every action under an SB3 policy with a ``Discrete`` action space."""
    dist = policy.get_distribution(obs.to(policy.device))
    return torch.log_softmax(dist.distribution.logits, -1).cpu()


def exact_kl(policy, prior: NotePrior, obs: torch.Tensor) -> torch.Tensor:
    """KL(π(·|s) ‖ p_prior(·|s)) in nats over all actions, per observation: ``(B,)``."""
    with torch.no_grad():
        log_pi, log_prior = policy_log_probs(policy, obs), prior(obs.cpu())
    return (log_pi.exp() * (log_pi - log_prior)).sum(-1)


class KLRolloutBuffer(RolloutBuffer):
    """A rollout buffer that, given ``prior`` and ``kl_coef`` (set by ``KLPPO`` before each rollout), subtracts
    ``kl_coef * (log π(a|s) − log p_prior(a|s))`` from each stored reward before computing advantages, and
    records ``kl_stats``: the exact per-step KL over all actions and per-episode sums (nats)."""

    prior: NotePrior | None = None
    policy = None
    kl_coef: float = 0.0
    kl_stats: dict | None = None

    def compute_returns_and_advantage(self, last_values: torch.Tensor, dones: np.ndarray) -> None:
        self.kl_stats = None
        if self.prior is not None:
            obs = torch.as_tensor(self.observations.reshape(-1, *self.obs_shape))
            actions = torch.as_tensor(self.actions.reshape(-1)).long()
            with torch.no_grad():
                log_prior_all = self.prior(obs)
                log_pi_all = policy_log_probs(self.policy, obs)
            log_prior = log_prior_all.gather(1, actions[:, None]).squeeze(1).numpy().reshape(self.log_probs.shape)
            sampled = self.log_probs - log_prior  # log π(a|s) − log p(a|s) of the actions taken
            exact = (log_pi_all.exp() * (log_pi_all - log_prior_all)).sum(-1).numpy()
            if self.kl_coef > 0:
                self.rewards -= (self.kl_coef * sampled).astype(np.float32)
            self.kl_stats = {"kl_per_step": float(exact.mean()), "kl_sampled_per_step": float(sampled.mean()),
                             "prior_logp_per_step": float(log_prior.mean())}
        super().compute_returns_and_advantage(last_values, dones)


class KLPPO(PPO):
    """PPO with the exact in-reward KL penalty to a frozen prior (``kl_coef``; 0 = plain PPO that still logs KL).

    The prior is not saved with the model: after ``KLPPO.load`` set ``model.prior`` again (``agents.sb3`` does).
    Models saved by ``KLPPO`` load with plain ``PPO.load`` too, for evaluation.
    """

    def __init__(self, *args, prior: NotePrior | None = None, kl_coef: float = 0.0, **kwargs):
        self.prior, self.kl_coef = prior, float(kl_coef)
        kwargs.setdefault("rollout_buffer_class", KLRolloutBuffer)
        super().__init__(*args, **kwargs)

    def collect_rollouts(self, env, callback, rollout_buffer, n_rollout_steps) -> bool:
        if self.kl_coef > 0 and self.prior is None:
            raise RuntimeError("KLPPO has kl_coef > 0 but no prior: set model.prior after loading.")
        if isinstance(rollout_buffer, KLRolloutBuffer):
            rollout_buffer.prior = None if self.prior is None else self.prior.eval()
            rollout_buffer.policy, rollout_buffer.kl_coef = self.policy, self.kl_coef
        return super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "prior"]
