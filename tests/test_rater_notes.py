"""Replaying a default build's plan gives the notes each clip was rendered from; the auxiliary head trains on them."""

import numpy as np
import pytest

from studio.synth import Renderer
from rater import train
from rater.data.build import build_default_dataset
from rater.data.clips import Clips
from rater.notes import clip_notes, roll_targets

SMALL = {"sources": {"bach": 3}, "n_clips": 16, "workers": 0, "progress": False}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("notes") / "default"
    return out, build_default_dataset(out, seed=0, **SMALL)


def test_replayed_notes_render_the_stored_audio(built):
    out, clips = built
    notes = clip_notes(clips, out.parent / ".cache")
    assert len(notes) == len(clips) and all(n.shape[1] == 4 for n in notes)
    renderer = Renderer(sample_rate=clips.sample_rate)
    clean = np.flatnonzero(clips.meta["degradation"].to_numpy() == "none")
    assert len(clean) > 0
    for i in clean[:3]:
        stored = clips.waveform(int(i))
        wave = renderer.render_notes(notes[i], program=int(clips.meta.at[i, "program"]), tail_seconds=0.0)
        n = int(0.8 * stored.size)  # before the fade
        assert np.corrcoef(wave[:n], stored[:n])[0, 1] > 0.99
    renderer.close()
    meta = clips.meta.copy()
    meta.loc[0, "source"] = "bach/other.mxl"
    with pytest.raises(ValueError, match="does not match meta.csv"):
        clip_notes(Clips(clips.sample_rate, meta, clips.audio, clips.info), out.parent / ".cache")
    with pytest.raises(ValueError, match="aux-weight 0"):
        clip_notes(Clips(clips.sample_rate, clips.meta, clips.audio, {}), out.parent / ".cache")


def test_roll_targets():
    notes = [np.array([[60, 0.1, 0.5, 80], [30, 0.0, 1.0, 80]])]
    roll = roll_targets(notes, np.array([0]), 10, 0.1, 48, 24)
    assert roll.shape == (1, 2, 24, 10)
    assert roll[0, 0, 12].tolist() == [0, 1, 1, 1, 1, 0, 0, 0, 0, 0] and roll[0, 1, 12].tolist() == [0, 1] + [0] * 8
    assert roll[0].sum() == 5  # the note below the range is dropped
    shifted = roll_targets(notes, np.array([2]), 10, 0.1, 48, 24)
    assert shifted[0, 0, 12].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0] and shifted[0, 1].sum() == 0


def test_training_with_the_auxiliary_head(built, tmp_path):
    out, _ = built
    report = train.main(["--data", str(out), "--out", str(tmp_path / "aux"), "--epochs", "2", "--n-reward", "1",
                         "--n-heldout", "0", "--aux-weight", "1", "--augment", "--aug-semitones", "2",
                         "--front-channels", "8", "--temporal-channels", "16", "--batch-size", "4", "--no-baselines",
                         "--no-progress", "--threads", "1"])  # fmt: skip
    assert report["members"][0]["epochs"] == 2 and np.isfinite(report["members"][0]["best_val"])
