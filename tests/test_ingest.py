"""User data: a manifest and an FMA folder written here in exactly their real formats, bad files included."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile

from rater.data import __main__ as cli
from rater.data.clips import Clips
from rater.data.ingest import hash_split, ingest_fma, ingest_manifest, read_manifest

SR = 22050  # not 16 kHz, so resampling is exercised


def tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def manifest(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(4):
        soundfile.write(audio / f"good{i}.wav", np.stack([tone(3, 220 * (i + 1))] * 2, axis=1), SR)  # stereo
    soundfile.write(audio / "silent.wav", np.zeros(3 * SR, np.float32), SR)
    soundfile.write(audio / "short.wav", tone(0.3), SR)
    (audio / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage" * 10)
    (audio / "empty.wav").write_bytes(b"")
    rows = [
        ("audio/good0.wav", 100, 10, "a"),
        ("audio/good1.wav", 50, 5, "b"),
        ("audio/good2.wav", 7, 7, "c"),
        ("audio/good3.wav", 1000, 0, "d"),
        ("audio/good0.wav", 10, 20, "likes_over_plays"),
        ("audio/good1.wav", 0, 0, "no_plays"),
        ("audio/good2.wav", 10.5, 1, "fractional"),
        ("audio/silent.wav", 10, 1, "silent"),
        ("audio/short.wav", 10, 1, "short"),
        ("audio/corrupt.wav", 10, 1, "corrupt"),
        ("audio/empty.wav", 10, 1, "empty"),
        ("audio/missing.wav", 10, 1, "missing"),
    ]
    path = tmp_path / "manifest.csv"
    pd.DataFrame(rows, columns=["path", "plays", "likes", "id"]).to_csv(path, index=False)
    return path


def test_manifest_ingest_skips_and_counts_bad_rows(manifest, tmp_path):
    clips, report = ingest_manifest(manifest, tmp_path / "out", max_seconds=2.0, workers=0, progress=False)
    print(report["skipped"])
    assert report["kept"] == 4 and len(clips) == 4
    assert report["skipped"]["bad_counts"] == 3
    for reason in ("silent", "too_short", "empty", "missing"):
        assert report["skipped"][reason] == 1, reason
    assert report["skipped"]["corrupt"] == 1 and "corrupt.wav" in report["skipped_examples"]["corrupt"][0]
    assert sum(report["skipped"].values()) + report["kept"] == report["rows"] == 12
    meta = clips.meta
    assert list(meta["id"]) == ["a", "b", "c", "d"]
    assert meta["gold"].isna().all()
    assert meta["split"].tolist() == [hash_split(i) for i in "abcd"]
    assert meta.loc[meta["id"] == "a", "p"].item() == pytest.approx(10 / 100 * np.log(10))
    wave = clips.waveform(0)
    assert clips.sample_rate == 16000 and wave.dtype == np.float32 and len(wave) == 2 * 16000
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["skipped"] == report["skipped"]


def test_manifest_split_column_and_bad_columns(manifest, tmp_path):
    table = pd.read_csv(manifest).head(4)
    table["split"] = ["val", "test", "train", "train"]
    given = tmp_path / "given.csv"
    table.to_csv(given, index=False)
    clips, _ = ingest_manifest(given, tmp_path / "out2", workers=0, progress=False)
    assert clips.meta["split"].tolist() == ["val", "test", "train", "train"]
    table.drop(columns=["likes"]).to_csv(given, index=False)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['likes'\]"):
        read_manifest(given)
    table.assign(split="holdout").to_csv(given, index=False)
    with pytest.raises(ValueError, match="holdout"):
        read_manifest(given)


def test_fma_layout(tmp_path):
    columns = pd.MultiIndex.from_tuples(
        [("set", "split"), ("set", "subset"), ("track", "favorites"), ("track", "listens"), ("track", "title")]
    )
    tracks = pd.DataFrame(
        [
            ["training", "small", 3, 120, "Good"],
            ["validation", "small", 1, 40, "Also good"],
            ["test", "small", 9, 5, "More likes than plays"],
            ["training", "small", 2, 60, "Missing file"],
            ["training", "small", 2, 60, "Corrupt mp3"],
        ],
        index=pd.Index([2, 140, 1482, 99999, 10], name="track_id"),
        columns=columns,
    )
    (tmp_path / "fma_metadata").mkdir()
    tracks.to_csv(tmp_path / "fma_metadata" / "tracks.csv")
    for track_id in (2, 140, 1482):
        name = f"{track_id:06d}"
        folder = tmp_path / "fma_small" / name[:3]
        folder.mkdir(parents=True, exist_ok=True)
        soundfile.write(folder / f"{name}.mp3", tone(2.0, 200 + track_id % 500), SR, format="MP3")  # distinct recordings
    (tmp_path / "fma_small" / "000" / "000010.mp3").write_bytes(b"ID3" + b"\x00" * 200)
    clips, report = ingest_fma(tmp_path, tmp_path / "out", workers=0, progress=False)
    assert report["kept"] == 2
    assert report["skipped"]["bad_counts"] == 1 and report["skipped"]["missing"] == 1
    assert report["skipped"]["corrupt"] == 1
    meta = clips.meta
    assert meta["id"].tolist() == ["000002", "000140"]
    assert meta["split"].tolist() == ["train", "val"]
    assert meta["plays"].tolist() == [120, 40] and meta["likes"].tolist() == [3, 1]
    assert 1.9 * 16000 <= len(clips.waveform(0)) <= 2.2 * 16000


def test_missing_fma_metadata_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="fma_metadata/tracks.csv"):
        ingest_fma(tmp_path, tmp_path / "out", progress=False)


def test_cli_ingests_a_manifest(manifest, tmp_path):
    out = tmp_path / "cli_out"
    assert cli.main(["build", "--manifest", str(manifest), "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    assert len(Clips.load(out)) == 4


def test_audio_that_a_conversion_would_disguise_is_skipped_by_reason(tmp_path):
    """Files whose problem a later conversion hides: NaN/inf samples, NaN written to integer PCM (reads back as
    full-scale DC), a constant offset, float audio beyond full scale, and one recording listed under two ids."""
    audio = tmp_path / "audio"
    audio.mkdir()
    good = np.stack([tone(3, 220), tone(3, 330)], axis=1)
    soundfile.write(audio / "good.wav", good, SR)
    soundfile.write(audio / "other.wav", tone(3, 440), SR)
    (audio / "copy.wav").write_bytes((audio / "good.wav").read_bytes())
    soundfile.write(audio / "nan.wav", np.full(3 * SR, np.nan, np.float32), SR, subtype="FLOAT")
    spiky = tone(3)
    spiky[::500] = np.inf
    soundfile.write(audio / "inf.wav", spiky, SR, subtype="FLOAT")
    half_nan = good.copy()
    half_nan[:, 1] = np.nan
    soundfile.write(audio / "half_nan.wav", half_nan, SR, subtype="FLOAT")
    soundfile.write(audio / "nan_pcm16.wav", np.full(3 * SR, np.nan, np.float32), SR, subtype="PCM_16")
    soundfile.write(audio / "dc.wav", np.full(3 * SR, 0.5, np.float32), SR, subtype="FLOAT")
    soundfile.write(audio / "hot.wav", 10 * tone(3), SR, subtype="FLOAT")
    rows = [("good.wav", "a"), ("other.wav", "b"), ("copy.wav", "copy"), ("good.wav", "again"), ("nan.wav", "nan"),
            ("inf.wav", "inf"), ("half_nan.wav", "half"), ("nan_pcm16.wav", "pcm"), ("dc.wav", "dc"), ("hot.wav", "hot")]
    manifest = tmp_path / "m.csv"
    pd.DataFrame([(f"audio/{p}", 100, 10, i) for p, i in rows], columns=["path", "plays", "likes", "id"]).to_csv(
        manifest, index=False)
    clips, report = ingest_manifest(manifest, tmp_path / "out", workers=0, progress=False)
    assert report["skipped"] == {"non_finite": 3, "constant": 2, "out_of_range": 1, "duplicate_audio": 2}
    assert clips.meta["id"].tolist() == ["a", "b"]
    for wave in clips.waveforms():
        assert abs(float(wave.mean())) < 1e-3 and 0.2 < np.abs(wave).max() < 0.5
    assert "id a" in report["skipped_examples"]["duplicate_audio"][0]
    assert Clips.load(tmp_path / "out").audio.min() > -32767 * 0.5  # no full-scale DC clip was written
