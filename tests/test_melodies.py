"""Melodies on PianoEnv's grid: the shared encoding, the exact renderer, degradations, tunes and reserved data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import envs
from studio import grid
from studio.synth import Renderer
from rater.data import build, corpus, degrade, melodies, tunes

SR = grid.SAMPLE_RATE
SOURCES = {"bach": 2, "ryansMammoth": 3}
TUNE_SOURCES = {"essenFolksong": 4, "oneills1850": 2}


@pytest.fixture(scope="module")
def renderer():
    r = Renderer(sample_rate=SR, gain=grid.GAIN)
    yield r
    r.close()


@pytest.fixture(scope="module")
def env():
    e = envs.PianoEnv(scorer=lambda waves: np.zeros(len(waves), dtype=np.float32))
    yield e
    e.close()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("notes")


@pytest.fixture(scope="module")
def parsed(cache):
    return build.parse_sources(SOURCES, TUNE_SOURCES, cache)


def play(env, actions) -> np.ndarray:
    env.reset()
    for a in actions:
        *_, info = env.step(int(a))
    return info["audio"]


def scale_window() -> np.ndarray:
    """C major up and down in quarter notes (note-on + hold), then a rest: 32 steps."""
    pitches = [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62, 60]
    actions = []
    for p in pitches:
        actions += [grid.note_action(p), grid.HOLD]
    return np.array(actions + [grid.REST, grid.REST], dtype=np.int64)


def test_render_melody_is_bit_identical_to_the_env(env, renderer):
    rng = np.random.default_rng(0)
    windows = [scale_window(), rng.integers(0, env.action_space.n, grid.N_STEPS)]
    windows.append(np.r_[windows[1][:20], np.zeros(12, dtype=np.int64)])  # ends in rests: the tail must match
    windows.append(np.full(grid.N_STEPS, grid.HOLD))  # silence
    step = grid.step_frames(SR) / SR
    for actions in windows:
        audio = grid.render_melody(renderer, grid.actions_to_notes(actions, step_seconds=step))
        expected = play(env, actions)
        assert audio.shape == (grid.episode_frames(),) == expected.shape
        np.testing.assert_array_equal(audio, expected)
    assert np.abs(audio).max() == 0.0 and np.abs(expected).max() == 0.0


def test_encoding_round_trip_and_wrong_gain(renderer):
    actions = scale_window()
    notes = grid.actions_to_notes(actions, step_seconds=0.5)
    assert notes.shape == (15, 4) and (notes[:, 3] == grid.VELOCITY).all()
    assert notes[0].tolist() == [60, 0.0, 1.0, grid.VELOCITY]
    melody = [(int(p), s, e) for p, s, e, _ in notes]  # beats = seconds / 0.5 at 2 steps per beat: s * 1
    np.testing.assert_array_equal(grid.melody_to_actions(melody)[:30], actions[:30])
    assert grid.action_pitch(grid.note_action(71)) == 71 and grid.action_pitch(grid.HOLD) is None
    with pytest.raises(ValueError, match="gain"):
        grid.render_melody(Renderer(sample_rate=SR, gain=0.5), notes)


@pytest.mark.parametrize("name", sorted(melodies.GRID_DEGRADATIONS))
def test_grid_degradations_are_seeded_playable_and_change_the_melody(name):
    clean = scale_window()
    fn = melodies.GRID_DEGRADATIONS[name]
    a = fn(clean, 1.0, np.random.default_rng(3))
    np.testing.assert_array_equal(a, fn(clean, 1.0, np.random.default_rng(3)))
    assert a.shape == clean.shape and a.min() >= 0 and a.max() < grid.NOTE + grid.N_PITCHES
    assert not np.array_equal(a, clean)
    if name != "random_onsets":  # a redrawn gap moves every later note, so count changed steps elsewhere only
        weak = [fn(clean, 0.1, np.random.default_rng(k)) for k in range(20)]
        assert np.mean([np.sum(w != clean) for w in weak]) < np.sum(a != clean)


def test_order_scrambles_keep_what_they_should():
    clean = scale_window()
    notes = clean >= grid.NOTE
    rng = np.random.default_rng(5)
    shuffled = melodies.pitch_shuffle(clean, 1.0, rng)
    np.testing.assert_array_equal(shuffled >= grid.NOTE, notes)  # same rhythm
    assert sorted(shuffled[notes]) == sorted(clean[notes])  # same pitches
    onsets = melodies.random_onsets(clean, 1.0, rng)
    assert list(onsets[onsets >= grid.NOTE]) == list(clean[notes])[: int((onsets >= grid.NOTE).sum())]
    assert not np.array_equal(onsets >= grid.NOTE, notes)
    jumps = melodies.octave_jumps(clean, 1.0, rng)
    assert ((jumps[notes] - clean[notes]) % 12 == 0).all()
    assert np.abs(np.diff(jumps[jumps >= grid.NOTE])).max() >= 12


def test_skyline_follows_the_top_voice_through_its_held_notes():
    soprano = [[72, 0, 2, 80], [74, 2, 3, 80], [76, 3, 4, 80]]
    alto = [[64, 0, 1, 80], [65, 1, 2, 80], [67, 2, 4, 80]]  # moves while the soprano holds its half note
    bass = [[48, 0, 4, 80], [50, 4, 5, 80]]  # the bass alone at the end becomes the top line
    notes = np.array(alto + bass + soprano, dtype=float)
    assert grid.skyline(notes) == [(72, 0.0, 2.0), (74, 2.0, 3.0), (76, 3.0, 4.0), (50, 4.0, 5.0)]


def test_windows_are_melodies():
    actions = np.r_[scale_window(), scale_window()]
    starts = melodies.window_starts(actions)
    assert len(starts) and (starts % grid.STEPS_PER_BEAT == 0).all()
    for s in starts:
        assert melodies.is_melody(melodies.window(actions, int(s)))
    assert not melodies.is_melody(np.r_[scale_window()[:8], np.zeros(24, dtype=np.int64)])
    lead_hold = melodies.window(np.r_[grid.note_action(60), [grid.HOLD] * 3, scale_window()], 1)
    assert lead_hold[:3].tolist() == [grid.REST] * 3


def test_melody_clips_render_exactly_and_every_degradation_works(parsed, renderer, env):
    pieces, tune_pieces, _ = parsed
    specs, actions = melodies.plan_melodies(pieces + tune_pieces, 40, seed=0)
    clean = next(s for s in specs if s.degradation == degrade.CLEAN)
    wave = melodies.render_melody_clip(renderer, clean, actions[clean.piece_id])
    np.testing.assert_array_equal(wave, play(env, melodies.window(actions[clean.piece_id], clean.start_step)))
    for k, name in enumerate(melodies.DEGRADATIONS):
        spec = replace(clean, degradation=name, strength=1.0, seed=k)
        a = melodies.render_melody_clip(renderer, spec, actions[spec.piece_id])
        b = melodies.render_melody_clip(renderer, spec, actions[spec.piece_id])
        assert a.dtype == np.float32 and a.shape == (grid.episode_frames(),), name
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, wave), name
    with pytest.raises(ValueError, match="Unknown melody degradation"):
        clusters = replace(clean, degradation="clusters", strength=0.5)
        melodies.render_melody_clip(renderer, clusters, actions[clean.piece_id])


def test_tunes_are_split_from_abc_files_and_cached(cache):
    picks = tunes.select_tunes({"essenFolksong": 3})
    assert len(picks) == 3 and len({t.path for t in picks}) == 3  # spread over the collection
    assert all(not t.path.name.startswith(("test", "variant")) for t in picks)
    first = tunes.load_tunes(picks[0].path, [picks[0].number], cache)
    assert len(first) == 1 and first[0].id == picks[0].id and len(first[0].notes) > 10
    assert len(list(cache.glob("tune-*.pkl"))) >= 1
    again = tunes.load_tunes(picks[0].path, [picks[0].number], cache)
    np.testing.assert_array_equal(first[0].notes, again[0].notes)
    text = tunes.read_tunes(picks[0].path)[picks[0].number]
    assert text.startswith("X:") and text.count("\nX:") == 0


def test_reserved_collections_are_never_read():
    _, _, read = build.planned_reads(corpus.DEFAULT_SOURCES, melodies.TUNE_SOURCES)
    collections = {name.split("/")[0] for name in read}
    assert collections == set(corpus.DEFAULT_SOURCES) | set(melodies.TUNE_SOURCES)
    assert not collections & set(corpus.RESERVED)
    assert not {name.split("#")[0] for name in read} & set(tunes.NEVER_CLIPS)
    assert len(read) > 700
    for name in ("airdsAirs", "miscFolk", "mozart", "joplin"):
        with pytest.raises(ValueError, match="reserved for evaluation"):
            corpus.select_sources({name: 1})
    with pytest.raises(ValueError, match="reserved for evaluation"):
        tunes.select_tunes({"airdsAirs": 1})
    essen = sorted((corpus.corpus_root() / "essenFolksong").glob("*.abc"))
    assert "ballad20.abc" in {p.name for p in essen}
    assert "ballad20.abc" not in {p.name for p in tunes.collection_files("essenFolksong")}
    with pytest.raises(ValueError, match="expectancy model"):  # nor can whole files reach them
        build.planned_reads({"essenFolksong": len(essen)}, {})


def test_load_melodies_gives_the_split_pieces_top_lines(cache, parsed):
    kwargs = {"cache_dir": cache, "sources": SOURCES, "tune_sources": TUNE_SOURCES}
    by_split = {name: melodies.split_melodies(name, seed=0, **kwargs) for name in ("train", "val", "test")}
    ids = {name: {i for i, _ in pairs} for name, pairs in by_split.items()}
    assert ids["test"] and ids["train"]
    assert not (ids["train"] & ids["test"] or ids["train"] & ids["val"] or ids["val"] & ids["test"])
    pieces = parsed[0] + parsed[1]
    split_of = build.assign_splits([p.id for p in pieces], 0)
    assert all(split_of[i] == "test" for i in ids["test"])
    test = melodies.load_melodies("test", seed=0, **kwargs)
    assert len(test) == len(by_split["test"])
    for actions in test:
        assert actions.shape == (grid.N_STEPS,) and actions.dtype == np.int64 and melodies.is_melody(actions)
    assert len(melodies.load_melodies("test", seed=0, per_piece=3, **kwargs)) > len(test)
    with pytest.raises(ValueError, match="Unknown split"):
        melodies.load_melodies("dev", **kwargs)
