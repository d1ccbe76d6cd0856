"""Clips: packing waveforms with metadata, p computed on the way in, atomic save/load and a stable hash."""

import json

import numpy as np
import pandas as pd
import pytest

from rater.data.clips import Clips
from rater.data.popularity import InvalidCounts, popularity


def _meta(n: int = 3, **overrides) -> pd.DataFrame:
    columns = {
        "id": [f"c{i}" for i in range(n)],
        "source": [f"s{i // 2}" for i in range(n)],
        "collection": "test",
        "degradation": "none",
        "strength": 0.0,
        "program": 0,
        "split": (["train", "val", "test"] * n)[:n],
        "plays": [10 * (i + 1) for i in range(n)],
        "likes": [3 * (i + 1) for i in range(n)],
        "gold": [0.1 * i for i in range(n)],
        "bpm": 90.0,
    }
    columns.update(overrides)
    return pd.DataFrame(columns)


def _waves(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.uniform(-0.9, 0.9, 100 * (i + 1)).astype(np.float32) for i in range(n)]


def test_from_waveforms_fills_p_offsets_and_keeps_audio():
    waves, meta = _waves(), _meta()
    clips = Clips.from_waveforms(waves, meta, 16000)
    assert len(clips) == 3 and clips.audio.dtype == np.int16
    assert clips.meta["p"].tolist() == pytest.approx(popularity(meta["plays"], meta["likes"]).tolist())
    assert clips.meta["offset"].tolist() == [0, 100, 300] and clips.meta["length"].tolist() == [100, 200, 300]
    for wave, back in zip(waves, clips.waveforms()):
        assert back.dtype == np.float32 and np.max(np.abs(back - wave)) < 1 / 32767
    assert clips.meta["bpm"].tolist() == [90.0] * 3  # extra columns survive


def test_from_waveforms_rejects_bad_input():
    with pytest.raises(ValueError, match="missing columns"):
        Clips.from_waveforms(_waves(), _meta().drop(columns="likes"), 16000)
    with pytest.raises(ValueError, match="3 meta rows"):
        Clips.from_waveforms(_waves(2), _meta(), 16000)
    with pytest.raises(InvalidCounts, match="row 1"):
        Clips.from_waveforms(_waves(), _meta(likes=[1, 99, 1]), 16000)
    with pytest.raises(ValueError, match="NaN"):
        Clips.from_waveforms([np.array([0.0, np.nan])], _meta(1), 16000)


def test_save_load_round_trip_is_atomic_and_hash_stable(tmp_path):
    clips = Clips.from_waveforms(_waves(), _meta(), 16000, info={"kind": "test"})
    out = clips.save(tmp_path / "ds")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temporary or old directory left behind
    loaded = Clips.load(out)
    assert isinstance(loaded.audio, np.memmap)
    assert loaded.sample_rate == 16000 and loaded.info["kind"] == "test"
    np.testing.assert_array_equal(loaded.audio, clips.audio)
    pd.testing.assert_frame_equal(loaded.meta, clips.meta, check_dtype=False)
    assert loaded.data_hash == clips.data_hash
    fresh = Clips(loaded.sample_rate, loaded.meta, loaded.audio, {})  # recompute instead of the cached value
    assert fresh.data_hash == clips.data_hash
    clips.save(out)  # overwriting an existing dataset is atomic too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    assert json.loads((out / "info.json").read_text())["data_hash"] == clips.data_hash


def test_hash_changes_with_audio_or_counts():
    base = Clips.from_waveforms(_waves(), _meta(), 16000)
    other_counts = Clips.from_waveforms(_waves(), _meta(likes=[4, 6, 9]), 16000)
    other_audio = Clips.from_waveforms([w * 0.5 for w in _waves()], _meta(), 16000)
    assert len({base.data_hash, other_counts.data_hash, other_audio.data_hash}) == 3


def test_split_repacks_one_split():
    clips = Clips.from_waveforms(_waves(6), _meta(6), 16000)
    train = clips.split("train")
    assert train.meta["id"].tolist() == ["c0", "c3"]
    np.testing.assert_array_equal(train.waveform(1), clips.waveform(3))
    with pytest.raises(ValueError, match="Unknown split"):
        clips.split("dev")


def test_load_of_a_missing_dataset_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="rater.data build"):
        Clips.load(tmp_path / "nothing")
