"""PianoEnv throughput, as ratios against baselines measured in the same run (machines are noisy).

(a) SB3 PPO (MlpPolicy, identical settings) steps/s on PianoEnv / on CartPole-v1, 1 env and 4 subprocess envs;
(b) raw env steps/s / a bare FluidSynth render of the same notes (the limit);
(c) whole-episode rendering by our Renderer / ``pretty_midi.PrettyMIDI.fluidsynth`` on the same note lists.

Run from the repo root: ``python -m benchmarks.env_throughput [--ppo-steps 4096]``. The env uses a cheap RMS scorer so that this
measures the environment, not the rater (``benchmarks/ppo_throughput.py`` measures with the real rater).
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import pretty_midi
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import envs
from studio.synth import Renderer


def rms_scorer(waves):
    return np.array([np.sqrt(np.mean(np.square(w))) for w in waves], dtype=np.float32)


def ppo_steps_per_second(env_id: str, n_envs: int, steps: int, env_kwargs: dict | None = None, wrap=None) -> float:
    """PPO (MlpPolicy, fixed settings) training steps/s, after a one-rollout warm-up; ``wrap`` adds VecEnv wrappers."""
    vec_cls = SubprocVecEnv if n_envs > 1 else DummyVecEnv
    venv = make_vec_env(env_id, n_envs=n_envs, seed=0, vec_env_cls=vec_cls, env_kwargs=env_kwargs)
    venv = wrap(venv) if wrap else venv
    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=64, n_epochs=4, seed=0, device="cpu", verbose=0)
    model.learn(256 * n_envs)  # warm-up: process start, first rollout
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    rate = steps / (time.perf_counter() - start)
    venv.close()
    return rate


def random_episodes(n: int, n_steps: int, n_actions: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_actions, size=(n, n_steps))


def env_steps_per_second(episodes: np.ndarray) -> tuple[float, list[list[tuple]]]:
    env = envs.PianoEnv(scorer=rms_scorer)
    env.reset(seed=0)
    note_lists = []
    start = time.perf_counter()
    for actions in episodes:
        env.reset()
        for a in actions:
            *_, info = env.step(a)
        note_lists.append(info["notes"])
    rate = episodes.size / (time.perf_counter() - start)
    env.close()
    return rate, note_lists


def bare_render_steps_per_second(note_lists, n_steps: int) -> float:
    renderer = Renderer()
    start = time.perf_counter()
    for notes in note_lists:
        renderer.render_notes(notes, tail_seconds=0.5)
    return len(note_lists) * n_steps / (time.perf_counter() - start)


def pretty_midi_seconds(note_lists, soundfont: str) -> float:
    start = time.perf_counter()
    for notes in note_lists:
        pm = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(program=0)
        inst.notes = [pretty_midi.Note(int(v), int(p), s, e) for p, s, e, v in notes]
        pm.instruments.append(inst)
        pm.fluidsynth(fs=16000, synthesizer=soundfont)
    return time.perf_counter() - start


def ours_seconds(note_lists) -> float:
    renderer = Renderer()
    start = time.perf_counter()
    for notes in note_lists:
        renderer.render_notes(notes)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ppo-steps", type=int, default=4096, help="PPO timesteps timed per case (default 4096)")
    parser.add_argument("--episodes", type=int, default=200, help="episodes for the raw env/render ratios (default 200)")
    args = parser.parse_args()

    episodes = random_episodes(args.episodes, 32, 38)
    env_rate, note_lists = env_steps_per_second(episodes)
    bare_rate = bare_render_steps_per_second(note_lists, 32)
    soundfont = str(Renderer().soundfont)
    ratio_c = pretty_midi_seconds(note_lists, soundfont) / ours_seconds(note_lists)

    rows = []
    piano_kwargs = {"scorer": rms_scorer}
    for n_envs in (1, 4):
        cart = ppo_steps_per_second("CartPole-v1", n_envs, args.ppo_steps)
        piano = ppo_steps_per_second(f"envs:{envs.ENV_ID}", n_envs, args.ppo_steps, piano_kwargs)
        rows.append((n_envs, piano, cart))

    print("(a) SB3 PPO steps/s, PianoEnv / CartPole-v1 (same PPO settings)")
    for n_envs, piano, cart in rows:
        print(f"    {n_envs} env(s): {piano:8.0f} / {cart:8.0f} = {piano / cart:.2f}  (target >= 0.7)")
    print(f"(b) raw env steps/s / bare FluidSynth render of the same notes: {env_rate:.0f} / {bare_rate:.0f} = "
          f"{env_rate / bare_rate:.2f}  (target >= 0.8)")
    print(f"(c) whole-episode rendering, ours vs pretty_midi.fluidsynth: {ratio_c:.1f}x faster  (target >= 4x)")


if __name__ == "__main__":
    gym.logger.min_level = 40
    main()
