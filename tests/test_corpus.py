"""Corpus parsing, its cache, degradations and rendered clips: real music must beat its ruined versions."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

from studio.synth import Renderer
from rater.data import corpus, degrade
from rater.data.listeners import ListenerPopulation

SOURCES = {"bach": 3, "ryansMammoth": 3}
SR = 16000


@pytest.fixture(scope="module")
def pieces(tmp_path_factory):
    cache = tmp_path_factory.mktemp("notes")
    return [piece for path in corpus.select_sources(SOURCES) for piece in corpus.load_pieces(path, cache)]


@pytest.fixture(scope="module")
def renderer():
    r = Renderer(sample_rate=SR)
    yield r
    r.close()


@pytest.fixture(scope="module")
def population():
    return ListenerPopulation(seed=0, sample_rate=SR)


def clean_spec(piece: corpus.Piece, index: int = 0) -> corpus.ClipSpec:
    return corpus.ClipSpec(index, piece.id, piece.collection, 0, "none", 0.0, 96.0, 0.0, 6.0, seed=index)


def degraded(piece: corpus.Piece, index: int, name: str, strength: float) -> corpus.ClipSpec:
    return replace(clean_spec(piece, index), degradation=name, strength=strength)


def test_pieces_are_real_music(pieces):
    assert len(pieces) == 6
    for piece in pieces:
        assert piece.notes.shape[1] == 4 and len(piece.notes) > 20
        assert np.all(np.diff(piece.notes[:, 1]) >= 0), "notes must be sorted by onset"
        assert np.all(piece.notes[:, 2] > piece.notes[:, 1])
        assert 30 <= piece.notes[:, 0].min() and piece.notes[:, 0].max() <= 100


def test_note_cache_is_used_and_keyed_by_mtime(tmp_path, monkeypatch):
    path = corpus.select_sources({"bach": 1})[0]
    first = corpus.load_pieces(path, tmp_path)
    cached = list(tmp_path.glob("notes-*.pkl"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    with monkeypatch.context() as patch:
        patch.setattr(corpus, "parse_file", lambda p: (_ for _ in ()).throw(AssertionError("parsed despite the cache")))
        again = corpus.load_pieces(path, tmp_path)
    assert cached[0].stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(first[0].notes, again[0].notes)
    copy = tmp_path / "src" / "bach" / path.name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(path.read_bytes())
    key = corpus.cache_key(copy)
    os.utime(copy, ns=(1, 1))
    assert corpus.cache_key(copy) != key


@pytest.mark.parametrize("name", sorted(degrade.NOTE_DEGRADATIONS))
def test_note_degradations_change_notes_and_are_seeded(pieces, name):
    notes = corpus.excerpt_seconds(pieces[0].notes, 0.0, 96.0, 6.0)
    fn = degrade.NOTE_DEGRADATIONS[name]
    a = fn(notes, 1.0, np.random.default_rng(1))
    b = fn(notes, 1.0, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert a.shape[1] == 4
    assert a.shape != notes.shape or not np.array_equal(a, notes)


def test_bad_degradation_is_named():
    with pytest.raises(ValueError, match="Unknown degradation"):
        degrade.check_degradation("reverse", 0.5)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        degrade.check_degradation("noise", 0.0)


def test_render_clip_is_exact_and_deterministic(pieces, renderer):
    spec = replace(clean_spec(pieces[0]), degradation="detune", strength=0.7)
    a = corpus.render_clip(renderer, spec, pieces[0].notes)
    b = corpus.render_clip(renderer, spec, pieces[0].notes)
    assert a.dtype == np.float32 and a.shape == (int(6.0 * SR),)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() > 0.01


def test_plan_is_deterministic_and_covers_degradations(pieces):
    a = corpus.plan_clips(pieces, 200, seed=3)
    assert a == corpus.plan_clips(pieces, 200, seed=3)
    assert a != corpus.plan_clips(pieces, 200, seed=4)
    names = {s.degradation for s in a}
    assert names == {"none", *degrade.DEGRADATIONS}
    assert all(4.0 <= s.seconds <= 8.0 for s in a)
    assert all(0.0 < s.strength <= 1.0 for s in a if s.degradation != "none")


def test_real_excerpts_beat_randomised_ones(pieces, renderer, population):
    clean, ruined = [], []
    for i, piece in enumerate(pieces):
        spec = clean_spec(piece, i)
        clean.append(corpus.render_clip(renderer, spec, piece.notes))
        randomised = replace(spec, degradation="random_pitch", strength=1.0)
        ruined.append(corpus.render_clip(renderer, randomised, piece.notes))
    gold_clean, gold_ruined = population(clean), population(ruined)
    print("clean", np.round(gold_clean, 3), "randomised", np.round(gold_ruined, 3))
    assert (gold_clean > gold_ruined).mean() >= 5 / 6


def test_gold_falls_as_strength_rises(pieces, renderer, population):
    by_strength = {}
    for strength in (0.15, 1.0):
        waves = [
            corpus.render_clip(renderer, degraded(piece, i, name, strength), piece.notes)
            for i, piece in enumerate(pieces)
            for name in ("random_pitch", "wrong_key", "clusters", "broken_rhythm", "noise", "detune")
        ]
        by_strength[strength] = float(np.mean(population(waves)))
    print("mean gold by strength", by_strength)
    assert by_strength[0.15] > by_strength[1.0]


def test_noise_and_silence_score_near_the_bottom(pieces, renderer, population):
    music = [corpus.render_clip(renderer, clean_spec(piece, i), piece.notes) for i, piece in enumerate(pieces)]
    rng = np.random.default_rng(0)
    anchors = [rng.normal(0, 0.1, 6 * SR).astype(np.float32), np.zeros(6 * SR, np.float32)]
    gold_music, gold_anchor = population(music), population(anchors)
    print("music", np.round(gold_music, 3), "noise, silence", np.round(gold_anchor, 3))
    assert gold_anchor.max() < np.quantile(gold_music, 0.2)
