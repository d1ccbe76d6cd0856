"""Gymnasium environments for Earworm. Importing this package registers ``earworm/PianoEnv-v0``."""

import gymnasium as gym

from envs.piano import PianoEnv

ENV_ID = "earworm/PianoEnv-v0"

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="envs.piano:PianoEnv")

__all__ = ["ENV_ID", "PianoEnv"]
