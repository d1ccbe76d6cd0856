"""Gold v2: the transcriber finds the notes PianoEnv played, the frozen expectancy model is clean and reproducible,
and the simulated listeners hear melodic order and the hacks of the v1 oracle."""

import json

import numpy as np
import pytest

from agents.prior import GridConfig, melody_to_actions, skyline
from benchmarks.gold_checks import note_f1
from benchmarks.listening import EnvRenderer, scramble
from rater.data import corpus, expectancy, hearing
from rater.data.listeners import FEATURE_NAMES, ListenerPopulation, gold_score
from rater.data.transcribe import Transcriber

PIECES = ("bach/bwv1.6.mxl", "ryansMammoth/AWillieWeHaveMissdYouStrathspey.abc", "oneills1850/0001-0050.abc")


@pytest.fixture(scope="module")
def melodies():
    """(actions, audio, notes) of three real corpus top lines played through a real PianoEnv."""
    grid = GridConfig()
    render = EnvRenderer()
    out = []
    for rel in PIECES:
        path = corpus.corpus_root() / rel
        piece = corpus.parse_file(path)[0]
        actions = melody_to_actions(skyline(piece.notes), grid)[: grid.n_steps]
        actions = np.r_[actions, np.zeros(grid.n_steps - len(actions), np.int64)]
        audio, notes = render(actions)
        out.append((actions, audio, np.array(notes, float)))
    render.close()
    return out


@pytest.fixture(scope="module")
def population():
    return ListenerPopulation(seed=0)


def test_transcription_finds_the_notes_pianoenv_played(melodies):
    tx = Transcriber(16000)
    scores = [note_f1(notes, tx(audio)) for _, audio, notes in melodies]
    assert np.mean(scores) >= 0.9 and min(scores) >= 0.8, scores


def test_transcription_of_silence_and_bad_input():
    tx = Transcriber(16000)
    assert tx(np.zeros(16000, np.float32)).shape == (0, 4)
    with pytest.raises(ValueError, match="NaN or inf"):
        tx(np.array([0.0, np.nan], np.float32))
    with pytest.raises(ValueError, match="mono"):
        tx(np.zeros((2, 100), np.float32))


def test_expectancy_model_is_canonical_frozen_and_trained_on_no_dataset_piece():
    raw = expectancy.MODEL_PATH.read_bytes()
    payload = json.loads(raw)
    assert expectancy.serialise(payload) == raw  # the shipped file is the canonical serialisation
    assert tuple(payload["sources"]) == expectancy.TRAINING_SOURCES
    used = {p.relative_to(corpus.corpus_root()).as_posix() for p in corpus.select_sources(corpus.DEFAULT_SOURCES)}
    assert not used & set(expectancy.TRAINING_SOURCES), "the default dataset reads an expectancy training file"
    from rater.data import tunes  # noqa: PLC0415 - the melody sources skip exactly these files

    assert set(expectancy.TRAINING_SOURCES) <= set(tunes.NEVER_CLIPS)
    assert not {s.split("/")[0] for s in expectancy.TRAINING_SOURCES} & set(expectancy.RESERVED)
    with pytest.raises(ValueError, match="reserved"):
        expectancy.training_melodies(("mozart/k80/movement1.mxl",))


def test_count_ngrams_and_ppm_predict_what_was_seen():
    counts = expectancy.count_ngrams([[1, 2, 1, 2, 1, 2]], max_order=2)
    assert counts[""] == {"1": 3, "2": 3} and counts["1"] == {"2": 3}
    model = expectancy.PPM(counts, 4)
    ic, ent = model.information([1, 2, 1, 2])
    ic_other, _ = model.information([1, 3, 0, 3])
    assert ic[1:].mean() < 1.0 < ic_other[1:].mean()  # a seen pattern is predictable, an unseen one is not
    assert np.all(ent >= 0) and np.all(ent <= 2.0 + 1e-9)  # entropy of 4 symbols is at most 2 bits


def test_expectancy_hears_a_real_melody_as_less_surprising_than_its_shuffle(melodies):
    model = expectancy.load_model()
    rng = np.random.default_rng(0)
    real, shuffled = [], []
    for actions, _, notes in melodies:
        pitches, onsets = notes[:, 0], notes[:, 1]
        real.append(model.information(pitches, onsets)[0].mean())
        shuffled.append(np.mean([model.information(rng.permutation(pitches), onsets)[0].mean() for _ in range(5)]))
    assert np.mean(real) < np.mean(shuffled) - 1.0, (real, shuffled)


def test_gold_v2_prefers_real_melodies_over_scrambles(population, melodies):
    rng = np.random.default_rng(0)
    render = EnvRenderer()
    real = population([audio for _, audio, _ in melodies])
    scrambled = {kind: population([render(scramble(a, kind, rng))[0] for a, _, _ in melodies])
                 for kind in ("pitch_shuffle", "random_pitches", "random_onsets")}
    render.close()
    assert np.all(real > scrambled["random_pitches"] + 0.1), (real, scrambled)
    for kind, gold in scrambled.items():
        assert real.mean() > gold.mean() + 0.1, (kind, real, gold)


def test_gold_v2_sinks_the_v1_oracle_hack_and_one_note_loops(population, melodies):
    """The v1 oracle's melody (staccato eighths jumping between G#5 and B3) and a one-note loop lose to real music."""
    grid = GridConfig()
    render = EnvRenderer()
    leaps = np.where(np.arange(grid.n_steps) % 2 == 0, 2 + 80 - grid.low_pitch, 2 + 59 - grid.low_pitch)
    loop = np.full(grid.n_steps, 2 + 67 - grid.low_pitch)
    hacks = population([render(leaps)[0], render(loop)[0]])
    render.close()
    real = population([audio for _, audio, _ in melodies])
    assert hacks.max() < real.min() - 0.1 and hacks.max() < 0.1, (hacks, real)


def test_versions_side_by_side(melodies):
    waves = [audio for _, audio, _ in melodies]
    v1 = ListenerPopulation(version=1)
    assert v1.features(waves).shape == (3, len(FEATURE_NAMES))
    np.testing.assert_array_equal(gold_score(waves, version=1), v1(waves))
    np.testing.assert_array_equal(gold_score(waves), ListenerPopulation(version=2)(waves))
    with pytest.raises(ValueError, match="version"):
        ListenerPopulation(version=3)


def test_melody_features_of_a_scale_and_of_nothing():
    model = expectancy.load_model()
    scale = np.array([[60 + s, 0.25 * i, 0.25 * i + 0.25] for i, s in enumerate([0, 2, 4, 5, 7, 9, 11, 12])])
    f = dict(zip(hearing.MELODY_FEATURES, hearing.melody_features(scale, 2.0, model)))
    assert f["leaps"] == 0 and f["repeats"] == 0 and f["steps"] == 1 and f["range"] == 12
    assert f["meter"] == 1.0 and f["polyphony"] == 1.0 and f["tonal"] > 0.5
    empty = hearing.melody_features(np.zeros((0, 4)), 2.0, model)
    assert empty.shape == (len(hearing.MELODY_FEATURES),) and empty[0] == hearing.UNMUSICAL[0]
