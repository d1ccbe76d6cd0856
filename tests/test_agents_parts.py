"""The RL pieces that need no trained rater: metrics, the real-music prior, the batched reward wrappers."""

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

import envs
from studio.theory import diversity, edit_distance, interval_histogram, interval_js, js_divergence_bits, theory_stats
from agents.prior import (GridConfig, NotePrior, batch_observations, episode_features, fit_tokens, load_prior,
                          melody_to_actions, melody_tokens, music_features, sample_prior, save_prior, skyline,
                          train_prior)
from agents.wrappers import PriorReward, RaterReward
from envs.piano import HOLD, REST, actions_to_roll, roll_observation


def rms_scorer(waves):
    return np.array([np.sqrt(np.mean(np.square(w))) for w in waves], dtype=np.float32)


def test_edit_distance_and_diversity():
    assert edit_distance([60, 62, 64], [60, 64]) == 1
    assert edit_distance([], [1, 2]) == 2
    same = [[(60, 0.0, 0.5, 90), (62, 0.5, 1.0, 90)]] * 10
    assert diversity(same)["distinct_per_100"] == pytest.approx(10.0)
    assert diversity(same)["mean_edit_distance"] == 0.0
    varied = [[(60 + i, 0.0, 0.5, 90), (70 - i, 0.5, 1.0, 90)] for i in range(10)]
    assert diversity(varied)["distinct_per_100"] == 100.0


def test_theory_stats_tell_a_scale_from_chromatic_noise():
    c_major = [(p, i * 0.25, i * 0.25 + 0.25, 90) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72, 72])]
    chromatic = [(60 + i, i * 0.25, i * 0.25 + 0.25, 90) for i in range(12)]
    a, b = theory_stats(c_major), theory_stats(chromatic)
    assert a["in_key"] == 1.0 and b["in_key"] < 0.75
    assert a["repeated"] == pytest.approx(1 / 8) and b["pc_entropy"] == pytest.approx(np.log2(12))


def test_skyline_and_melody_to_actions():
    notes = np.array([[60, 0, 1, 80], [67, 0, 1, 80], [64, 1, 2, 80], [55, 1, 3, 80]], dtype=float)
    assert skyline(notes) == [(67, 0.0, 1.0), (64, 1.0, 2.0)]
    held = np.array([[72, 0, 2, 80], [64, 0, 1, 80], [65, 1, 2, 80], [71, 2, 3, 80]], dtype=float)  # alto moves under
    assert skyline(held) == [(72, 0.0, 2.0), (71, 2.0, 3.0)]
    grid = GridConfig()
    actions = melody_to_actions([(91, 0.0, 1.0), (88, 1.0, 1.5), (86, 2.0, 2.5)], grid)  # an octave too high
    assert list(actions) == [2 + 79 - 48, HOLD, 2 + 76 - 48, REST, 2 + 74 - 48]
    assert melody_to_actions([(30, 0.0, 1.0), (90, 1.0, 2.0)], grid) is None  # wider than the range


def test_interval_histogram_and_js():
    up = [[(60 + 2 * i, i * 0.5, i * 0.5 + 0.5, 90) for i in range(5)]]
    hist = interval_histogram(up)
    assert hist.shape == (25,) and hist[12 + 2] == 1.0
    assert js_divergence_bits(hist, hist) == 0.0
    down = [[(70 - 2 * i, i * 0.5, i * 0.5 + 0.5, 90) for i in range(5)]]
    assert interval_js(up, down) == pytest.approx(1.0)  # disjoint supports: 1 bit
    with pytest.raises(ValueError, match="fewer than two notes"):
        interval_histogram([[(60, 0.0, 1.0, 90)]])


def test_fit_tokens_transposes_and_moves_by_octaves():
    grid = GridConfig()
    tokens = melody_tokens([(91, 0.0, 1.0), (88, 1.0, 1.5), (86, 2.0, 2.5)], grid.steps_per_beat)
    assert list(tokens) == [2 + 91, HOLD, 2 + 88, REST, 2 + 86]
    up5 = fit_tokens(tokens, grid, 5)
    notes = up5[up5 >= 2] - 2 + grid.low_pitch
    assert list(np.diff(notes)) == [-3, -2] and (notes[0] - 91 - 5) % 12 == 0 and notes.max() < 84
    assert fit_tokens(np.array([2 + 30, 2 + 80]), grid) is None


def test_prior_sees_what_the_env_shows():
    grid = GridConfig()
    actions = np.random.default_rng(0).integers(0, grid.n_actions, (3, grid.n_steps))
    obs = batch_observations(torch.as_tensor(actions), grid)
    env = envs.PianoEnv(scorer="deferred")
    assert env.observation_space.shape == (grid.obs_dim,)  # the env shows the whole episode by default
    env.reset(seed=0)
    for t, a in enumerate(actions[0]):
        env_obs = env._observation()
        assert np.array_equal(obs[0, t].numpy(), env_obs), t
        env.step(int(a))
    env.close()
    for i in range(3):
        roll = actions_to_roll(actions[i], grid.n_pitches, grid.history)
        assert all(np.array_equal(obs[i, t].numpy(), roll_observation(roll, t, grid.history, grid.n_steps)) for t in range(grid.n_steps))
    direct = episode_features(torch.as_tensor(actions), grid, recent=16)
    np.testing.assert_allclose(direct, music_features(obs.flatten(0, 1), grid, 16).unflatten(0, (3, grid.n_steps)))


def test_prior_learns_a_scale_in_every_key_and_round_trips(tmp_path):
    grid = GridConfig(n_steps=16, history=16)
    scale = [(60 + s, i * 0.5, i * 0.5 + 0.5) for i, s in enumerate([0, 2, 4, 5, 7, 9, 11, 12] * 8)]
    tokens = [melody_tokens(scale, grid.steps_per_beat)] * 8
    d_major = [melody_tokens([(p + 2, s, e) for p, s, e in scale], grid.steps_per_beat)]  # never seen untransposed
    model, stats = train_prior(tokens, d_major, grid, epochs=25, hidden=64, recent=4, batch_windows=8)
    assert stats["test_nll"] < 0.5 * stats["uniform_nll"], stats
    samples = sample_prior(model, grid, 8, seed=1)
    assert (samples >= 2).any(axis=1).all()
    assert np.array_equal(samples, sample_prior(model, grid, 8, seed=1))
    save_prior(model, tmp_path / "prior.pt", stats)
    loaded = load_prior(tmp_path / "prior.pt", grid)
    x = torch.rand(4, grid.obs_dim)
    assert torch.equal(model(x), loaded(x))
    with pytest.raises(ValueError, match="trained for"):
        load_prior(tmp_path / "prior.pt", GridConfig())


def make_venv(n, reward_mode):
    return DummyVecEnv([lambda: envs.PianoEnv(scorer="deferred", n_steps=6, reward_mode=reward_mode)] * n)


def run(venv, steps, seed=0):
    rng = np.random.default_rng(seed)
    venv.reset()
    rewards, infos = [], []
    for _ in range(steps):
        _, r, d, info = venv.step(rng.integers(0, 38, venv.num_envs))
        rewards.append(r)
        infos.append(info)
    return np.array(rewards), infos


def test_batched_rater_reward_final_and_shaped_agree_with_in_env_scoring():
    final, f_infos = run(RaterReward(make_venv(3, "final"), rms_scorer, "final"), 6)
    shaped, _ = run(RaterReward(make_venv(3, "shaped"), rms_scorer, "shaped"), 6)
    assert (final[:-1] == 0).all() and (final[-1] > 0).all()
    np.testing.assert_allclose(shaped.sum(0), final[-1], rtol=1e-5)
    assert [i["proxy_score"] for i in f_infos[-1]] == pytest.approx(list(final[-1]))
    in_env = DummyVecEnv([lambda: envs.PianoEnv(scorer=rms_scorer, n_steps=6)] * 3)
    direct, _ = run(in_env, 6)
    np.testing.assert_allclose(direct, final, rtol=1e-6)


def test_prior_reward_adds_beta_log_prob():
    grid = GridConfig(n_steps=6, history=6)
    prior = NotePrior(grid, hidden=16, recent=4)
    base, _ = run(RaterReward(make_venv(2, "final"), rms_scorer, "final"), 6)
    with_prior, infos = run(PriorReward(RaterReward(make_venv(2, "final"), rms_scorer, "final"), prior, 0.5), 6)
    logp = np.array([[i["prior_logp"] for i in step] for step in infos])
    assert (logp < 0).all()
    np.testing.assert_allclose(with_prior, base + 0.5 * logp, rtol=1e-5)
