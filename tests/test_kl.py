"""PPO that starts as the prior: KL(π ‖ prior) = 0 at initialisation, the exact in-reward KL penalty, SB3
save/load, and the over-optimisation fit. Real SB3, real PianoEnv (FluidSynth), a small real prior."""

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

import envs
from agents.kl import KLPPO, copy_prior_into, exact_kl, policy_log_probs, prior_policy_kwargs
from agents.overopt import fit_gao, plot_curve
from agents.prior import GridConfig, batch_observations, melody_tokens, train_prior

GRID = GridConfig(n_steps=8, history=8)


def rms_scorer(waves):
    return np.array([np.sqrt(np.mean(np.square(w))) for w in waves], dtype=np.float32)


@pytest.fixture(scope="module")
def prior():
    scale = [(60 + s, i * 0.5, i * 0.5 + 0.5) for i, s in enumerate([0, 2, 4, 5, 7, 9, 11, 12] * 4)]
    model, _ = train_prior([melody_tokens(scale, 2)] * 4, [melody_tokens(scale, 2)], GRID, epochs=3, hidden=32, recent=4)
    return model


def venv():
    return DummyVecEnv([lambda: envs.PianoEnv(scorer=rms_scorer, n_steps=GRID.n_steps)] * 2)


def make(prior, kl_coef, perturb=0.0):
    model = KLPPO("MlpPolicy", venv(), policy_kwargs=prior_policy_kwargs(prior), prior=prior, kl_coef=kl_coef,
                  n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    copy_prior_into(model.policy, prior)
    if perturb:
        with torch.no_grad():
            model.policy.action_net.bias += perturb * torch.linspace(-1, 1, GRID.n_actions)
    return model


def observations(n=64):
    actions = torch.as_tensor(np.random.default_rng(0).integers(0, GRID.n_actions, (n // GRID.n_steps, GRID.n_steps)))
    return batch_observations(actions, GRID).reshape(-1, GRID.obs_dim)


def test_policy_starts_as_the_prior_with_zero_kl(prior):
    model = make(prior, 0.05)
    obs = observations()
    torch.testing.assert_close(policy_log_probs(model.policy, obs), prior(obs), atol=1e-6, rtol=0)
    assert exact_kl(model.policy, prior, obs).abs().max() < 1e-6
    assert exact_kl(make(prior, 0.05, perturb=1.0).policy, prior, obs).min() > 1e-3  # the check can fail


def test_refuses_an_env_with_another_history(prior):
    wrong = DummyVecEnv([lambda: envs.PianoEnv(scorer=rms_scorer, n_steps=GRID.n_steps, history=4)])
    with pytest.raises(ValueError, match="history"):
        KLPPO("MlpPolicy", wrong, policy_kwargs=prior_policy_kwargs(prior), prior=prior, device="cpu")


def test_kl_penalty_is_exact_per_step(prior):
    """Same seed, same (perturbed) policy: the penalised run's rewards are the plain run's minus
    kl_coef * (log π(a|s) − log p_prior(a|s)) of each stored step, with log π from the acting policy."""
    buffers = []
    for kl_coef in (0.0, 0.5):  # built and run one after the other: each seeds SB3's RNGs when it is built
        model = make(prior, kl_coef, perturb=1.0)
        _, callback = model._setup_learn(32, None)  # one rollout, read before training flattens the buffer
        callback.on_training_start(locals(), globals())
        model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
        buffers.append(model.rollout_buffer)
    a, b = buffers
    np.testing.assert_array_equal(a.actions, b.actions)
    obs = torch.as_tensor(b.observations.reshape(-1, GRID.obs_dim))
    with torch.no_grad():
        log_prior = prior.log_prob(obs, torch.as_tensor(b.actions.reshape(-1))).numpy().reshape(b.rewards.shape)
    gap = b.log_probs - log_prior
    assert np.abs(gap).max() > 1e-3
    np.testing.assert_allclose(b.rewards, a.rewards - 0.5 * gap, atol=1e-5)
    assert b.kl_stats["kl_per_step"] > 0 and np.isfinite(b.kl_stats["kl_sampled_per_step"])


def test_save_load_keeps_the_policy_and_leaves_the_prior_out(prior, tmp_path):
    model = make(prior, 0.2, perturb=0.5)
    model.learn(32)
    model.save(tmp_path / "m.zip")
    loaded = KLPPO.load(tmp_path / "m.zip", env=venv(), device="cpu")
    assert loaded.kl_coef == 0.2 and loaded.prior is None
    obs = observations()
    torch.testing.assert_close(policy_log_probs(loaded.policy, obs), policy_log_probs(model.policy, obs))
    with pytest.raises(RuntimeError, match="no prior"):
        loaded.learn(32, reset_num_timesteps=False)
    loaded.prior = prior
    loaded.learn(32, reset_num_timesteps=False)
    assert loaded.num_timesteps >= 64
    assert isinstance(PPO.load(tmp_path / "m.zip", device="cpu"), PPO)  # plain PPO reads it too (evaluation)


def test_gao_fit_recovers_a_known_curve_and_plots():
    d = np.linspace(0.2, 6, 25)
    fit = fit_gao(d, d * (0.3 - 0.1 * np.log(d)))
    assert fit["a"] == pytest.approx(0.3) and fit["b"] == pytest.approx(0.1)
    assert fit["d_peak"] == pytest.approx(np.exp(2.0)) and fit["gain_peak"] == pytest.approx(0.1 * np.exp(2.0))
    assert fit_gao(d, d * 0.2)["d_peak"] is None  # no turnover: no peak claimed
    curve = [{"sqrt_kl": x, "proxy": 1.0, "heldout": 1.0, "gold": 0.5 + 0.01 * x} for x in d]
    assert plot_curve(curve, {**fit, "gold_start": 0.5})[:4] == b"\x89PNG"
