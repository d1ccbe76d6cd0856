"""The RL pieces that need no trained rater: metrics, the real-music prior, the batched reward wrappers."""

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

import envs
from studio.theory import diversity, edit_distance, theory_stats
from agents.prior import GridConfig, NotePrior, load_prior, melody_to_actions, save_prior, skyline, train_prior
from agents.wrappers import PriorReward, RaterReward
from envs.piano import HOLD, REST


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
    grid = GridConfig()
    actions = melody_to_actions([(91, 0.0, 1.0), (88, 1.0, 1.5), (86, 2.0, 2.5)], grid)  # an octave too high
    assert list(actions) == [2 + 79 - 48, HOLD, 2 + 76 - 48, REST, 2 + 74 - 48]
    assert melody_to_actions([(30, 0.0, 1.0), (90, 1.0, 2.0)], grid) is None  # wider than the range


def test_prior_learns_a_scale_and_round_trips(tmp_path):
    grid = GridConfig(n_steps=16)
    scale = [(60 + s, i * 0.5, i * 0.5 + 0.5) for i, s in enumerate([0, 2, 4, 5, 7, 9, 11, 12] * 8)]
    seqs = [melody_to_actions(scale, grid)] * 8
    model, stats = train_prior(seqs, grid, epochs=30)
    assert stats["val_nll"] < 0.5 * stats["uniform_nll"]
    save_prior(model, tmp_path / "prior.pt", stats)
    loaded = load_prior(tmp_path / "prior.pt", grid)
    x = torch.rand(4, grid.history * grid.n_pitches + 1)
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
    grid = GridConfig(n_steps=6)
    prior = NotePrior(grid)
    base, _ = run(RaterReward(make_venv(2, "final"), rms_scorer, "final"), 6)
    with_prior, infos = run(PriorReward(RaterReward(make_venv(2, "final"), rms_scorer, "final"), prior, 0.5), 6)
    logp = np.array([[i["prior_logp"] for i in step] for step in infos])
    assert (logp < 0).all()
    np.testing.assert_allclose(with_prior, base + 0.5 * logp, rtol=1e-5)
