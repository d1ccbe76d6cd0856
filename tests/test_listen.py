"""Listening copies: real pieces rendered by FluidSynth at 44.1 kHz, levelled to -16 LUFS with true peak <= -1 dBFS.

Loudness is measured here with pyloudnorm's own meter and true peak by 4x oversampling, independently of the
gain that ``studio.listen`` computed; the rater's render and its scores must not change.
"""

import numpy as np
import pretty_midi
import pyloudnorm
import pytest
from scipy.signal import resample_poly

from agents.rollout import collect_episodes, random_policy
from studio.listen import (LISTEN_RATE, ListeningRenderer, listening_copy, loudness_lufs, normalise,
                         true_peak_dbfs)
from envs.piano import notes_to_midi
from tests.conftest import melody


def measured(audio: np.ndarray, rate: int) -> tuple[float, float]:
    lufs = pyloudnorm.Meter(rate).integrated_loudness(audio.astype(np.float64))
    peak = 20 * np.log10(np.abs(resample_poly(audio.astype(np.float64), 4, 1)).max())
    return lufs, peak


@pytest.fixture(scope="module")
def episodes():
    return collect_episodes(lambda env: random_policy(env, 0), 3, seed=0)


def test_rendered_pieces_reach_the_target_loudness_under_the_peak_ceiling(episodes):
    listener = ListeningRenderer()
    rng = np.random.default_rng(1)
    pieces = [e["midi"] for e in episodes]
    pieces.append(notes_to_midi(melody(rng, clustered=True), program=48))  # strings, chromatic clusters
    choir = notes_to_midi(melody(rng, clustered=False), program=0)
    flute = pretty_midi.Instrument(program=73)
    flute.notes.append(pretty_midi.Note(velocity=80, pitch=72, start=0.0, end=3.0))
    choir.instruments.append(flute)
    pieces.append(choir)  # two instruments
    for pm in pieces:
        audio, level = listener.render_midi(pm)
        lufs, peak = measured(audio, LISTEN_RATE)
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert abs(lufs + 16.0) <= 1.0, lufs
        assert peak <= -1.0 + 1e-3, peak
        assert level.lufs_before < -30  # the renderer's own level was far too quiet for a person
        assert level.lufs_after == pytest.approx(lufs, abs=0.05)
    listener.close()


def test_the_peak_ceiling_wins_over_the_loudness_target():
    """A click train has a huge peak-to-loudness ratio: -16 LUFS would clip, so the gain stops at -1 dBTP."""
    wave = np.zeros(2 * LISTEN_RATE, np.float32)
    wave[:: LISTEN_RATE // 4] = 0.05
    out, level = normalise(wave, LISTEN_RATE)
    lufs, peak = measured(out, LISTEN_RATE)
    assert level.peak_limited and peak == pytest.approx(-1.0, abs=0.01)
    assert lufs < -17 and level.lufs_after == pytest.approx(lufs, abs=0.05)


def test_audio_without_notes_is_resampled_then_levelled(episodes):
    audio, level = listening_copy(episodes[0]["audio"], 16000)
    assert len(audio) == pytest.approx(len(episodes[0]["audio"]) * LISTEN_RATE / 16000, abs=1)
    lufs, peak = measured(audio, LISTEN_RATE)
    assert abs(lufs + 16.0) <= 1.0 and peak <= -1.0 + 1e-3


def test_silence_short_and_broken_audio():
    silent = np.zeros(LISTEN_RATE, np.float32)
    out, level = normalise(silent, LISTEN_RATE)
    assert not out.any() and level.gain_db == 0.0 and level.lufs_after == -np.inf
    with pytest.raises(ValueError, match="0.4 s"):
        loudness_lufs(np.ones(100, np.float32), LISTEN_RATE)
    with pytest.raises(ValueError, match="NaN"):
        true_peak_dbfs(np.array([0.1, np.nan, 0.2]))


def test_the_rater_render_is_untouched(episodes):
    """Making listening copies changes neither the rater's audio nor, so, its scores."""
    before = [e["audio"].copy() for e in episodes]
    listener = ListeningRenderer()
    for e in episodes:
        listener.render_midi(e["midi"])
        listening_copy(e["audio"], e["sample_rate"])
    again = collect_episodes(lambda env: random_policy(env, 0), 3, seed=0)
    for b, e, a in zip(before, episodes, again):
        assert e["sample_rate"] == 16000
        np.testing.assert_array_equal(b, e["audio"])
        np.testing.assert_array_equal(b, a["audio"])
