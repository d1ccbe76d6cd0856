"""Simulated listeners: real music beats randomised pitches, noise and silence sink, seeded and batch-safe."""


import numpy as np
import pytest

from studio.synth import Renderer
from rater.data import corpus, degrade
from rater.data.listeners import FEATURE_NAMES, ListenerPopulation, gold_score
from rater.data.popularity import popularity

SR = 16000
SECONDS = 4.0
CHORALES = ("bwv1.6.mxl", "bwv268.mxl", "bwv99.6.mxl")


@pytest.fixture(scope="module")
def population():
    return ListenerPopulation(seed=0)


@pytest.fixture(scope="module")
def excerpts():
    """(real, fully randomised pitches) 4-s renders of three Bach chorales."""
    renderer = Renderer(sample_rate=SR)
    pairs = []
    for name in CHORALES:
        piece = corpus.parse_file(corpus.corpus_root() / "bach" / name)[0]
        notes = corpus.playable(corpus.excerpt_seconds(piece.notes, 0.0, 90.0, SECONDS), SECONDS)
        shuffled = degrade.random_pitch(notes, 1.0, np.random.default_rng(1))
        renders = (renderer.render_notes(n, program=0, tail_seconds=0.0)[: int(SECONDS * SR)] for n in (notes, shuffled))
        pairs.append(tuple(renders))
    renderer.close()
    return pairs


def test_real_music_beats_randomised_pitches(population, excerpts):
    real = population([r for r, _ in excerpts])
    randomised = population([s for _, s in excerpts])
    assert np.all(real > randomised + 0.05), (real, randomised)


def test_noise_and_silence_sink_below_all_real_music(population, excerpts):
    real = population([r for r, _ in excerpts])
    rng = np.random.default_rng(0)
    noise = 0.1 * rng.standard_normal(int(SECONDS * SR)).astype(np.float32)
    bottom = population([noise, np.zeros_like(noise)])
    assert np.all(bottom < 0.05) and bottom.max() < real.min()


def test_gold_falls_as_noise_grows(population, excerpts):
    real = excerpts[0][0]
    noisy = [degrade.degrade_audio(real, "noise", s, np.random.default_rng(0), SR) for s in (0.3, 0.6, 1.0)]
    gold_v1 = ListenerPopulation(version=1)([real, *noisy])
    assert np.all(np.diff(gold_v1) < 0), gold_v1
    # v2 is strictly ordered until the floor; at SNR 6 dB and -10 dB both are ~0 (known, docs/listeners.md)
    gold = population([real, *noisy])
    assert gold[0] > gold[1] > gold[2] and gold[1:].max() < gold[0] and gold[3] < 0.02, gold


def test_gold_is_deterministic_per_seed(excerpts):
    waves = [r for r, _ in excerpts]
    a, b = ListenerPopulation(seed=3)(waves), ListenerPopulation(seed=3)(waves)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, ListenerPopulation(seed=4)(waves))
    np.testing.assert_array_equal(gold_score(waves), ListenerPopulation(seed=0)(waves))


def test_mixed_lengths_and_tiny_clips_in_one_batch(population, excerpts):
    real = excerpts[0][0]
    waves = [real, real[:SR], real[:80], np.zeros(1, np.float32)]
    gold = population(waves)
    assert gold.shape == (4,) and gold.dtype == np.float32
    assert np.all((gold >= 0) & (gold <= 1))
    assert gold[0] == population([real])[0]  # batching does not change a clip's score
    assert population.features(waves).shape == (4, len(population.feature_names))
    assert ListenerPopulation(version=1).features(waves).shape == (4, len(FEATURE_NAMES))


def test_non_finite_audio_is_rejected(population):
    with pytest.raises(ValueError, match="NaN or inf"):
        population([np.array([0.0, np.inf, 0.0], np.float32)])


def test_counts_are_heavy_tailed_binomial_and_noisy_about_gold(population):
    rng = np.random.default_rng(0)
    gold = rng.uniform(0.0, 0.9, 4000)
    plays, likes = population.simulate_counts(gold, np.random.default_rng(1))
    assert plays.min() >= 1 and np.all(likes <= plays)
    assert plays.max() > 20 * np.median(plays)  # heavy tail
    assert abs(np.corrcoef(gold, plays)[0, 1]) < 0.05  # exposure ignores quality
    assert np.sum(likes) / np.sum(plays) == pytest.approx(np.sum(gold * plays) / np.sum(plays), abs=0.01)
    r = np.corrcoef(gold, popularity(plays, likes))[0, 1]
    assert 0.4 < r < 0.9
