"""Dreaming: a short ascent raises the proxy score, the critic learns real vs dreamed, outputs are valid audio.

The rater is a real (tiny) one: real FluidSynth renders of scale melodies and of clustered degradations,
scored by the simulated listeners, trained with ``rater.train`` for a few epochs.
"""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.discriminator import Discriminator, RealCrops
from agents.dream import DreamConfig, dream, main, mode_config, noise_init, save_outputs
from studio.listen import loudness_lufs, true_peak_dbfs
from rater.data.clips import Clips
from rater.scorer import Scorer

SR = 16000
SECONDS = 1.5


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small batches run fastest on one thread, and a busy 2-core machine makes extra threads spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus(tiny_corpus):
    return tiny_corpus


@pytest.fixture(scope="module")
def rater_checkpoint(tiny_rater):
    return tiny_rater


@pytest.fixture(scope="module")
def proxy(tiny_rater):
    return Scorer.load(tiny_rater, device="cpu")


def real_crops(corpus: Clips, split: str) -> RealCrops:
    meta = corpus.meta
    rows = np.flatnonzero(((meta["degradation"] == "none") & (meta["split"] == split)).to_numpy())
    return RealCrops(corpus.waveforms(rows), int(SECONDS * SR))


def test_short_naive_dream_raises_the_proxy_score(proxy):
    config = DreamConfig(seconds=SECONDS, steps=10, n_clips=2, seed=1, log_every=5)
    start = proxy(list(noise_init(config, SR)))
    result = dream(proxy, config)
    assert result.scores.mean() > start.mean() + 1e-4
    assert result.history[-1]["score"] > result.history[0]["score"]
    assert result.waves.shape == (2, int(SECONDS * SR)) and np.abs(result.waves).max() <= config.peak


def test_same_seed_same_dream(proxy):
    config = mode_config("regularised", DreamConfig(seconds=SECONDS, steps=3, n_clips=2, tv_weight=0.05, hf_weight=0.1))
    assert np.array_equal(dream(proxy, config).waves, dream(proxy, config).waves)


def test_adversarial_dream_trains_a_critic_that_beats_chance_on_held_out_clips(proxy, corpus, tmp_path):
    config = DreamConfig(seconds=SECONDS, steps=10, n_clips=2, seed=0, robust=True, tv_weight=0.05, hf_weight=0.1,
                         adv_weight=0.5, disc_every=1, disc_steps=2, log_every=5)
    result = dream(proxy, config, real=real_crops(corpus, "train"), heldout_real=real_crops(corpus, "test").fixed(4))
    assert result.disc_accuracy is not None and result.disc_accuracy > 0.5
    assert "realness" in result.history[-1]
    path = result.discriminator.save(tmp_path / "checkpoints" / "discriminator.pt")
    reloaded = Discriminator.load(path)
    with torch.no_grad():
        wave = torch.from_numpy(result.waves[:1])
        assert torch.allclose(reloaded.eval()(wave), result.discriminator.eval()(wave))


def test_adversarial_mode_needs_real_clips(proxy):
    with pytest.raises(ValueError, match="real clips"):
        dream(proxy, DreamConfig(seconds=SECONDS, steps=1, n_clips=1, adv_weight=0.5))


def test_outputs_are_valid_unclipped_non_silent_wavs(proxy, tmp_path):
    result = dream(proxy, DreamConfig(seconds=SECONDS, steps=5, n_clips=2, param="wave", lr=0.01))
    summary = save_outputs(tmp_path / "naive", result, SR)
    for i in range(2):
        audio, sr = sf.read(tmp_path / "naive" / f"dream_{i:02d}.wav", dtype="float32")
        assert sr == SR and audio.shape == (int(SECONDS * SR),)
        assert np.sqrt(np.mean(audio**2)) > 1e-3
        assert np.abs(audio).max() < 0.99
        listen, rate = sf.read(tmp_path / "naive" / f"listen_{i:02d}.wav", dtype="float32")
        assert rate == 44100 and abs(loudness_lufs(listen, rate) + 16) <= 1 and true_peak_dbfs(listen) <= -1 + 0.01
    assert (tmp_path / "naive" / "mel.png").stat().st_size > 1000
    assert json.loads((tmp_path / "naive" / "scores.json").read_text())["scores"] == pytest.approx(summary["scores"])


def test_cli_writes_run_and_tensorboard_audio(rater_checkpoint, tmp_path):
    out = tmp_path / "run"
    main(["--mode", "naive", "--steps", "4", "--n-clips", "2", "--seconds", str(SECONDS), "--rater",
          str(rater_checkpoint), "--out", str(out), "--device", "cpu", "--threads", "1"])
    assert json.loads((out / "config.json").read_text())["mode"] == "naive"
    events = EventAccumulator(str(out / "tb"), size_guidance={"audio": 0, "scalars": 0})
    events.Reload()
    assert len(events.Scalars("naive/score")) >= 2
    assert len(events.Audio("naive/best")) == 1 and events.Audio("naive/best")[0].sample_rate == 44100


def test_cli_fails_clearly_without_a_rater(tmp_path):
    with pytest.raises(SystemExit, match="train.py --agent rater"):
        main(["--rater", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "run")])


@pytest.mark.parametrize("bad", [{"param": "mfcc"}, {"bound": "soft"}, {"peak": 1.0}, {"n_clips": 0}])
def test_bad_config_is_rejected_with_a_clear_message(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        DreamConfig(**bad)


def test_cli_starts_from_a_wav(rater_checkpoint, corpus, tmp_path):
    sf.write(tmp_path / "start.wav", corpus.waveform(0), SR)
    out = tmp_path / "run"
    main(["--mode", "regularised", "--steps", "2", "--n-clips", "2", "--seconds", str(SECONDS), "--init",
          str(tmp_path / "start.wav"), "--rater", str(rater_checkpoint), "--out", str(out), "--threads", "1"])
    audio, _ = sf.read(out / "regularised" / "dream_00.wav", dtype="float32")
    start = corpus.waveform(0)[: len(audio)]
    assert np.corrcoef(audio, start)[0, 1] > 0.5
