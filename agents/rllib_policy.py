"""Reading a policy out of an RLlib checkpoint folder (the Ray backend's ``checkpoints/best`` or ``latest``).

``RLlibPolicy(path).predict(obs, deterministic)`` answers like an SB3 model's ``predict``, so the rollout and
evaluation code plays Ray runs exactly as it plays SB3 runs. Stochastic actions are drawn with torch's global
generator (which ``agents.rollout.collect_episodes`` seeds), so the same seed gives the same episodes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

MODULE_DIR = Path("learner_group") / "learner" / "rl_module" / "default_policy"


def is_rllib_checkpoint(path: str | os.PathLike) -> bool:
    return (Path(path) / MODULE_DIR).is_dir()


def checkpoint_hash(path: str | os.PathLike) -> str:
    """SHA-256 (16 hex digits) of the policy's weights file in an RLlib checkpoint folder."""
    digest = hashlib.sha256((Path(path) / MODULE_DIR / "module_state.pkl").read_bytes())
    return digest.hexdigest()[:16]


class RLlibPolicy:
    """The RL module of an RLlib checkpoint, with an SB3-style ``predict(obs, deterministic) -> (action, None)``."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if not is_rllib_checkpoint(path):
            raise FileNotFoundError(f"{path} is not an RLlib checkpoint folder (no {MODULE_DIR} inside); pass "
                                    "runs/<run>/checkpoints/best or latest of a --backend ray run.")
        try:
            from ray.rllib.core.rl_module.rl_module import RLModule  # noqa: PLC0415
        except ImportError as error:
            raise SystemExit(f"{path} was trained with --backend ray; reading it needs the ray extra "
                             "(`make setup-ray`, then .venv-ray/bin/python).") from error
        self.module = RLModule.from_checkpoint(str((path / MODULE_DIR).resolve()))
        self.module.eval()

    def predict(self, obs: np.ndarray, deterministic: bool = False):
        batch = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        single = batch.dim() == 1
        with torch.no_grad():
            logits = self.module.forward_inference({"obs": batch[None] if single else batch})["action_dist_inputs"]
        if deterministic:
            action = logits.argmax(-1)
        else:
            action = torch.distributions.Categorical(logits=logits).sample()
        action = action.numpy()
        return (int(action[0]) if single else action), None
