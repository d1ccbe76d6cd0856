"""Note-space dreaming: the fitted piano sounds like FluidSynth's, rolls decode to the notes they render, a short
ascent raises the proxy, CMA-ES keeps its budget, and a run writes MIDI, WAVs, TensorBoard audio and piano rolls.

Real parts throughout: FluidSynth renders of the soundfont's piano, the tiny rater trained in conftest.
"""

import json

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.diff_piano import (
    DiffPiano, PianoGrid, fit_piano, fit_report, fluidsynth_note, notes_from_roll, render_fluidsynth, roll_from_notes,
)
from agents.dream import main
from agents.note_dream import (
    NoteDreamConfig, actions_to_grid_notes, cmaes_dream, distinct_count, note_dream, play_top_lines, vector_to_actions,
)
from studio.synth import Renderer
from rater.scorer import Scorer

SR = 16000
GRID = PianoGrid(n_steps=6, low_pitch=60, n_pitches=12, max_len=2)  # 1.5 s + tail, like the tiny rater's crops


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def renderer():
    r = Renderer(sample_rate=SR)
    yield r
    r.close()


@pytest.fixture(scope="module")
def fit(renderer):
    return fit_piano(renderer, GRID)


@pytest.fixture(scope="module")
def proxy(tiny_rater):
    return Scorer.load(tiny_rater, device="cpu")


def test_fitted_piano_is_closer_to_fluidsynth_than_a_naive_additive_piano(fit, renderer):
    report = fit_report(fit, renderer)
    assert len(report["fitted_db"]) == GRID.n_pitches
    assert all(f < n for f, n in zip(report["fitted_db"], report["naive_db"]))
    assert report["fitted_mean_db"] < 6.0
    f0 = 440.0 * 2 ** ((np.arange(GRID.n_pitches) + GRID.low_pitch - 69) / 12)
    np.testing.assert_allclose(fit.freq[:, 0], f0, rtol=0.01)  # the fundamental is found where it should be


def test_one_note_renders_at_fluidsynths_level_and_the_renderer_is_linear(fit, renderer):
    piano = DiffPiano(fit)
    roll = torch.zeros(2, GRID.n_steps, GRID.n_pitches, GRID.max_len)
    roll[0, 1, 4, 1] = 1.0  # pitch 64, two steps long, from step 1
    roll[1, 3, 9, 0] = 1.0
    waves = piano(roll)
    assert waves.shape == (2, GRID.samples)
    both = piano(roll.sum(dim=0, keepdim=True))
    torch.testing.assert_close(both[0], waves.sum(dim=0), atol=1e-6, rtol=1e-5)
    real = render_fluidsynth(renderer, notes_from_roll(roll[0].numpy(), GRID), GRID)
    ours = waves[0].numpy()
    assert np.argmax(np.abs(ours)) // GRID.step_frames == 1 == np.argmax(np.abs(real)) // GRID.step_frames
    ratio = np.sqrt(np.mean(ours**2) / np.mean(real**2))
    assert 0.7 < ratio < 1.4, ratio


def test_bad_roll_shape_is_rejected(fit):
    with pytest.raises(ValueError, match="roll must have shape"):
        DiffPiano(fit)(torch.zeros(1, GRID.n_steps, GRID.n_pitches))


def test_rolls_decode_to_notes_and_back_with_same_pitch_overlaps_cut():
    roll = np.zeros((GRID.n_steps, GRID.n_pitches, GRID.max_len), np.float32)
    roll[0, 0, 1] = 1  # C4 for two steps...
    roll[1, 0, 0] = 1  # ...struck again at step 1: the first note ends there
    roll[5, 7, 1] = 1  # G4 two steps from the last step: cut at the grid's end
    step = GRID.step_frames / SR
    notes = notes_from_roll(roll, GRID)
    assert notes == [(60, 0.0, step, 90), (60, step, 2 * step, 90), (67, 5 * step, 6 * step, 90)]
    assert notes_from_roll(roll_from_notes(notes, GRID), GRID) == notes


def test_search_vectors_decode_to_pianoenv_melodies():
    x = np.zeros((GRID.n_steps, 2))
    x[:, 0] = 0.5  # pitch index 6 -> MIDI 66
    x[:, 1] = [0.9, 0.4, 0.1, 0.4, 0.9, 0.9]  # note, hold, rest, hold (after a rest: silent), note, note
    actions = vector_to_actions(x.ravel(), GRID)
    assert actions.tolist() == [8, 1, 0, 1, 8, 8]
    step = GRID.step_frames / SR
    assert actions_to_grid_notes(actions, GRID) == [(66, 0.0, 2 * step, 90), (66, 4 * step, 5 * step, 90),
                                                    (66, 5 * step, 6 * step, 90)]
    episode = play_top_lines([actions], GRID)[0]
    assert [n[0] for n in episode["notes"]] == [66, 66, 66]
    assert episode["audio"].shape == (GRID.samples,)


def test_short_note_dream_raises_the_proxy_and_decodes_to_what_it_rendered(proxy, fit, renderer):
    config = NoteDreamConfig(steps=20, n_clips=2, seed=0, lr=0.1, robust=False, tv_weight=0.0, hf_weight=0.0,
                             log_every=4)
    result = note_dream(proxy, DiffPiano(fit), renderer, config)
    assert result.history[-1]["score"] > result.history[0]["score"]
    assert result.audio.shape == result.diff_audio.shape == (2, GRID.samples)
    # The tiny test rater (4 epochs on 32 clips labelled by gold v2) may prefer a near-silent clip, so one dream
    # may decode to no notes; at least one must decode to notes, rendered and scored through FluidSynth below.
    assert any(len(n) > 0 for n in result.notes)
    np.testing.assert_allclose(result.proxy_fluidsynth, proxy(list(result.audio)), rtol=1e-5)
    again = note_dream(proxy, DiffPiano(fit), renderer, config)
    assert again.notes == result.notes  # same seed, same dream


def test_adversarial_note_dream_needs_real_clips(proxy, fit, renderer):
    with pytest.raises(ValueError, match="real clips"):
        note_dream(proxy, DiffPiano(fit), renderer, NoteDreamConfig(steps=1, n_clips=1, adv_weight=1.0))


def test_cmaes_keeps_the_rater_call_budget_and_improves_on_its_start(proxy, renderer):
    calls = []

    def counting(waves):
        calls.append(len(waves))
        return proxy(waves)

    counting.sample_rate = proxy.sample_rate
    config = NoteDreamConfig(steps=30, n_clips=2, seed=0)
    result = cmaes_dream(counting, renderer, GRID, config)
    search_calls = sum(calls[:-1])  # the last call scores the final dreams
    assert search_calls == result.rater_calls <= config.steps * config.n_clips
    assert result.history[-1]["score"] >= result.history[0]["score"]
    np.testing.assert_allclose(result.proxy_fluidsynth, [h for h in proxy(list(result.audio))], rtol=1e-5)


def test_distinct_count_uses_a_quarter_of_the_length():
    a = [(60 + i, i * 0.25, i * 0.25 + 0.25, 90) for i in range(8)]
    b = [(60 + i + (i < 2), i * 0.25, i * 0.25 + 0.25, 90) for i in range(8)]  # 2 of 8 changed: not distinct
    c = [(72 - i, i * 0.25, i * 0.25 + 0.25, 90) for i in range(8)]
    assert distinct_count([a, b]) == 1
    assert distinct_count([a, b, c]) == 2


@pytest.mark.parametrize("bad", [{"hard_from": 1.5}, {"init_notes": -0.1}, {"n_clips": 0}])
def test_bad_note_config_is_rejected(bad):
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
        NoteDreamConfig(**bad)


def test_cli_note_mode_writes_midi_wavs_and_tensorboard_rolls(tiny_rater, tmp_path):
    out = tmp_path / "run"
    main(["--mode", "notes", "--note-steps", "3", "--n-clips", "2", "--grid-steps", "6", "--rater", str(tiny_rater),
          "--out", str(out), "--device", "cpu", "--threads", "1"])
    folder = out / "notes"
    scores = json.loads((folder / "scores.json").read_text())
    for i in range(2):
        audio, sr = sf.read(folder / f"dream_{i:02d}.wav", dtype="float32")
        assert sr == SR and np.sqrt(np.mean(audio**2)) > 1e-4
        midi = pretty_midi.PrettyMIDI(str(folder / f"dream_{i:02d}.mid"))
        written = sorted((n.start, n.pitch) for n in midi.instruments[0].notes)
        dreamed = sorted((n[1], n[0]) for n in scores["notes"][i])
        assert [p for _, p in written] == [p for _, p in dreamed]
        np.testing.assert_allclose([s for s, _ in written], [s for s, _ in dreamed], atol=0.01)
    assert (folder / "additive_00.wav").is_file() and (folder / "rolls.png").stat().st_size > 200
    assert json.loads((out / "piano_fit.json").read_text())["fitted_mean_db"] > 0
    events = EventAccumulator(str(out / "tb"), size_guidance={"audio": 0, "images": 0, "scalars": 0})
    events.Reload()
    assert len(events.Audio("notes/best")) == 1 and len(events.Images("notes/roll_01")) == 1
    assert len(events.Scalars("notes/score")) >= 1


def test_evaluation_finds_note_dreams_with_their_midi_and_piano_rolls(renderer, tmp_path):
    from evaluation.report import Run, dream_groups, find_runs
    from studio.files import save_midi, save_wav
    from envs.piano import notes_to_midi

    run_dir = tmp_path / "runs" / "dream"
    (run_dir / "notes").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"agent": "dream", "mode": "notes"}))
    notes = [(60, 0.0, 0.5, 90), (64, 0.5, 0.75, 90), (67, 0.75, 1.5, 90)]
    save_wav(run_dir / "notes" / "dream_00.wav", render_fluidsynth(renderer, notes, GRID), SR)
    save_midi(run_dir / "notes" / "dream_00.mid", notes_to_midi(notes))
    save_wav(run_dir / "notes" / "dream_01.wav", render_fluidsynth(renderer, notes[:1], GRID), SR)  # no MIDI beside it
    [run] = find_runs(tmp_path / "runs", "dream")
    [group] = dream_groups(Run(run.name, "dream", run.path, run.config), SR)
    first, second = group.pieces
    assert [n[0] for n in first.notes] == [60, 64, 67] and first.midi is not None
    assert first.roll.shape == (6, 36) and first.roll[0, 12] == 1.0 and first.roll[1, 12] == 0.5
    assert first.roll[3, 19] == 1.0 and second.notes is None and second.roll is None
