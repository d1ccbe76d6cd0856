"""Play episodes with a policy (or uniformly random actions) and summarise them with every judge.

Shared by the end-of-training summary and evaluate.py, so both report the same numbers the same way.
Deterministic: the same seed gives the same episodes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from rater.judges import Judges
from studio.theory import diversity, mean_theory_stats
from envs.piano import PianoEnv

Policy = Callable[[np.ndarray], np.ndarray]


def random_policy(env: PianoEnv, seed: int) -> Policy:
    env.action_space.seed(seed)
    return lambda obs: env.action_space.sample()


def prior_policy(prior) -> Policy:
    """Sample each action from the real-music prior (seeded through ``torch.manual_seed`` in ``collect_episodes``)."""

    def act(obs):
        with torch.no_grad():
            probs = prior(torch.as_tensor(obs)[None]).exp()[0]
        return int(torch.multinomial(probs, 1))

    return act


def model_policy(model, deterministic: bool) -> Policy:
    return lambda obs: model.predict(obs, deterministic=deterministic)[0]


def collect_episodes(make_policy: Callable[[PianoEnv], Policy], n: int, seed: int, env_kwargs: dict | None = None) -> list[dict]:
    """``n`` episodes as dicts with ``audio``, ``notes``, ``midi``, ``sample_rate``."""
    env = PianoEnv(scorer="deferred", **(env_kwargs or {}))
    torch.manual_seed(seed)
    policy = make_policy(env)
    episodes = []
    obs, _ = env.reset(seed=seed)
    for _ in range(n):
        terminated = False
        while not terminated:
            obs, _, terminated, _, info = env.step(policy(obs))
        episodes.append(info)
        obs, _ = env.reset()
    env.close()
    return episodes


def summarise(episodes: Sequence[dict], judges: Judges) -> tuple[dict, dict[str, np.ndarray]]:
    """Mean scores per judge, diversity and theory statistics, plus the per-episode scores."""
    scores = judges.score([e["audio"] for e in episodes])
    notes = [e["notes"] for e in episodes]
    row = {name: float(np.mean(values)) for name, values in scores.items()}
    row.update(diversity(notes))
    row.update(mean_theory_stats(notes))
    return row, scores
