"""The frozen Scorer: checkpoint round trip, batching, any length, gradients and its refusals."""

import numpy as np
import pytest
import torch

from rater.augment import AugmentConfig
from rater.ensemble import combine
from rater.logfreq import LogFreqConfig
from rater.mel import MelConfig
from rater.model import Rater, RaterConfig
from rater.scorer import Scorer, build_checkpoint, read_checkpoint, save_checkpoint
from rater.tonal import TonalConfig, TonalRater
from studio.device import resolve_device

SR = 16000
CONFIG = RaterConfig(channels=32, hidden=(16,))


def members(k: int) -> list[dict]:
    states = []
    for seed in range(k):
        torch.manual_seed(seed)
        states.append(Rater(CONFIG).state_dict())
    return states


@pytest.fixture
def checkpoint(tmp_path):
    payload = build_checkpoint(members(3), CONFIG, MelConfig(), target_mean=2.0, target_std=0.5, data_hash="test")
    return save_checkpoint(payload, tmp_path / "rater.pt")


def clips(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(10 * SR) / SR
    tones = [(0.2 * np.sin(2 * np.pi * f * t)).astype(np.float32) for f in (220.0, 330.0, 587.0)]
    return [tones[0][:1], tones[1][: 3 * SR], tones[2], 0.1 * rng.standard_normal(5 * SR).astype(np.float32)]


def test_round_trip_gives_identical_scores(checkpoint, tmp_path):
    a = Scorer.load(checkpoint, device="cpu")
    payload = read_checkpoint(checkpoint)
    copy = save_checkpoint(payload, tmp_path / "copy.pt")
    b = Scorer.load(copy, device="cpu")
    waves = clips()
    scores = a(waves)
    assert scores.dtype == np.float32 and scores.shape == (4,) and np.all(np.isfinite(scores))
    assert np.array_equal(scores, b(waves))
    assert a.sample_rate == SR and a.device == torch.device("cpu") and a.role == "reward"


def test_batched_equals_one_at_a_time_and_chunking(checkpoint):
    scorer = Scorer.load(checkpoint, device="cpu")
    waves = clips()
    batched = scorer(waves)
    single = np.concatenate([scorer([w]) for w in waves])
    assert np.allclose(batched, single, atol=1e-5)
    scorer.max_batch_samples = 2 * SR  # forces one clip per chunk
    assert np.allclose(scorer(waves), batched, atol=1e-5)
    assert scorer([]).shape == (0,)


def test_members_and_env_override(checkpoint, monkeypatch):
    monkeypatch.setenv("EARWORM_RATER", str(checkpoint))
    reward = Scorer.load(device="cpu")
    heldout = Scorer.load_heldout(device="cpu")
    assert [h.member for h in heldout] == [1, 2] and all(h.role == "heldout" for h in heldout)
    waves = clips()
    assert not np.allclose(reward(waves), heldout[0](waves))
    assert np.array_equal(Scorer.load(member=2, device="cpu")(waves), heldout[1](waves))
    with pytest.raises(ValueError, match="member"):
        Scorer.load(member=3)


def test_scores_are_denormalised(checkpoint, tmp_path):
    payload = read_checkpoint(checkpoint)
    payload["target"] = {"mean": 12.0, "std": 1.0}
    shifted = Scorer.load(save_checkpoint(payload, tmp_path / "shifted.pt"), device="cpu")
    base = Scorer.load(checkpoint, device="cpu")
    waves = clips()
    raw = (base(waves) - 2.0) / 0.5
    assert np.allclose(shifted(waves), raw + 12.0, atol=1e-4)


def test_score_tensor_has_gradients(checkpoint):
    scorer = Scorer.load(checkpoint, device="cpu")
    waves = torch.from_numpy(np.stack([w[: 2 * SR] for w in clips()[1:]])).requires_grad_(True)
    score = scorer.score_tensor(waves)
    assert np.allclose(score.detach().numpy(), scorer(list(waves.detach().numpy())), atol=1e-5)
    score.sum().backward()
    assert waves.grad is not None and waves.grad.abs().sum() > 0
    augmented = scorer.score_tensor(waves, augment=AugmentConfig(), generator=torch.Generator().manual_seed(1))
    assert augmented.shape == (3,) and not torch.allclose(augmented, score)


def test_refuses_bad_audio(checkpoint):
    scorer = Scorer.load(checkpoint, device="cpu")
    wave = clips()[1]
    with pytest.raises(ValueError, match="44100 Hz.*16000 Hz"):
        scorer([wave], sample_rate=44100)
    with pytest.raises(ValueError, match="mono"):
        scorer([np.stack([wave, wave])])
    with pytest.raises(ValueError, match="NaN"):
        scorer([np.full(100, np.nan, dtype=np.float32)])
    with pytest.raises(ValueError, match="batch"):
        scorer(wave)
    assert scorer([wave], sample_rate=SR).shape == (1,)


def test_refuses_mismatched_checkpoints(checkpoint, tmp_path):
    payload = read_checkpoint(checkpoint)
    wrong_mels = {**payload, "frontend_config": {**payload["frontend_config"], "n_mels": 64}}
    with pytest.raises(ValueError, match="front end"):
        Scorer.load(save_checkpoint(wrong_mels, tmp_path / "a.pt"))
    unknown = {**payload, "frontend_config": {**payload["frontend_config"], "htk": True}}
    with pytest.raises(ValueError, match="front-end settings"):
        Scorer.load(save_checkpoint(unknown, tmp_path / "b.pt"))
    old = {**payload, "format_version": 0}
    with pytest.raises(ValueError, match="format"):
        Scorer.load(save_checkpoint(old, tmp_path / "c.pt"))
    with pytest.raises(FileNotFoundError, match="python train.py --agent rater"):
        Scorer.load(tmp_path / "missing.pt")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


TONAL = TonalConfig(front_channels=8, temporal_channels=16, hidden=16)


@pytest.fixture
def ensemble(tmp_path):
    """A tonal checkpoint: three reward members combined by uwo (lambda 0.5), a select and a report member."""
    states = []
    for seed in range(5):
        torch.manual_seed(seed)
        states.append(TonalRater(TONAL).state_dict())
    payload = build_checkpoint(states, TONAL, LogFreqConfig(), 2.0, 0.5, arch="tonal",
                               roles=["reward"] * 3 + ["select", "report"], rule="uwo", lam=0.5)
    return save_checkpoint(payload, tmp_path / "ensemble.pt")


def test_ensemble_reward_is_mean_minus_lambda_variance(ensemble):
    reward = Scorer.load(ensemble, device="cpu")
    waves = clips()
    members = reward.members(waves)
    assert members.shape == (3, 4) and reward.role == "reward" and reward.member is None
    z = torch.from_numpy((members - 2.0) / 0.5)
    expected = combine(z, "uwo", 0.5).numpy() * 0.5 + 2.0
    assert np.allclose(reward(waves), expected, atol=1e-4)
    assert not np.allclose(reward(waves), members.mean(0), atol=1e-4)
    assert np.allclose(reward.disagreement(waves), members.std(0), atol=1e-4)
    singles = [Scorer.load(ensemble, device="cpu", member=i)(waves) for i in range(3)]
    assert np.allclose(np.stack(singles), members, atol=1e-5)
    assert np.all(Scorer.load(ensemble, device="cpu", member=0).disagreement(waves) == 0)


def test_heldout_members_have_purposes(ensemble):
    heldout = Scorer.load_heldout(ensemble, device="cpu")
    assert [(h.member, h.purpose, h.role) for h in heldout] == [(3, "select", "heldout"), (4, "report", "heldout")]
    waves = clips()
    assert np.array_equal(Scorer.load(ensemble, device="cpu", member="report")(waves), heldout[1](waves))
    with pytest.raises(ValueError, match="no 'select' member"):
        Scorer.load(save_checkpoint(build_checkpoint(members(1), CONFIG, MelConfig(), 0.0, 1.0), ensemble.parent / "one.pt"), member="select")


def test_tonal_ensemble_gradients_and_exact_transposition_augment(ensemble):
    scorer = Scorer.load(ensemble, device="cpu")
    waves = torch.from_numpy(np.stack([w[: 2 * SR] for w in clips()[1:]])).requires_grad_(True)
    score = scorer.score_tensor(waves)
    assert np.allclose(score.detach().numpy(), scorer(list(waves.detach().numpy())), atol=1e-4)
    score.sum().backward()
    assert waves.grad.abs().sum() > 0
    augmented = scorer.score_tensor(waves, augment=AugmentConfig(), generator=torch.Generator().manual_seed(1))
    assert augmented.shape == (3,) and not torch.allclose(augmented, score)


def test_format_1_checkpoints_still_load(checkpoint, tmp_path):
    payload = read_checkpoint(checkpoint)
    old = {k: v for k, v in payload.items() if k not in ("arch", "roles", "rule", "lambda", "frontend_config")}
    old.update(format_version=1, mel_config=payload["frontend_config"], reward_index=1)
    scorer = Scorer.load(save_checkpoint(old, tmp_path / "v1.pt"), device="cpu")
    assert np.array_equal(scorer(clips()), Scorer.load(checkpoint, device="cpu", member=1)(clips()))
