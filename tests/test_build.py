"""A small default build end to end: splits by piece, reports, gold-vs-p, warm rebuilds and determinism."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from studio import grid
from rater.data import __main__ as cli
from rater.data import corpus, melodies
from rater.data import build
from rater.data.build import assign_splits, build_default_dataset, load_or_build

SMALL = {
    "sources": {"bach": 3, "ryansMammoth": 3},
    "tune_sources": {"essenFolksong": 3},
    "n_clips": 60,
    "workers": 2,
    "progress": False,
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "default"
    started = time.perf_counter()
    clips = build_default_dataset(out, seed=0, **SMALL)
    return out, clips, time.perf_counter() - started


def test_small_build_has_every_field(built):
    out, clips, seconds = built
    print(f"cold small build: {seconds:.1f} s")
    assert len(clips) == 60
    meta = clips.meta
    columns = ("id", "source", "collection", "kind", "degradation", "strength", "program", "split", "plays", "likes",
               "p", "gold")  # fmt: skip
    assert set(columns) <= set(meta.columns)
    assert set(meta["collection"]) == {"bach", "ryansMammoth", "essenFolksong"}
    assert meta["gold"].between(0, 1).all()
    assert (meta["likes"] <= meta["plays"]).all()
    excerpt, melody = meta["kind"] == "excerpt", meta["kind"] == "melody"
    assert (excerpt | melody).all() and melody.sum() == round(0.3 * 60)
    assert (meta.loc[melody, "length"] == grid.episode_frames(sample_rate=clips.sample_rate)).all()
    assert (meta.loc[melody, "program"] == grid.PROGRAM).all()
    assert set(meta.loc[excerpt, "collection"]) == {"bach", "ryansMammoth"}
    lengths = meta.loc[excerpt, "length"] / clips.sample_rate
    assert lengths.between(4.0, 8.0).all()
    assert (meta.loc[meta["degradation"] == "none", "strength"] == 0).all()
    assert clips.waveform(0).dtype == np.float32


def test_reads_no_reserved_collection(built):
    """Every file or tune the build parsed is recorded, and none is reserved for evaluation."""
    clips = built[1]
    read = clips.info["read"]
    assert {name.split("/")[0] for name in read} == {"bach", "ryansMammoth", "essenFolksong"}
    assert not {name.split("/")[0] for name in read} & set(corpus.RESERVED)
    files = {name.split("#")[0] for name in read}
    assert {source.split("#")[0] for source in clips.meta["source"]} <= files
    assert not set(clips.meta["collection"]) & set(corpus.RESERVED)


def test_splits_are_disjoint_by_piece(built):
    meta = built[1].meta
    groups = {name: set(meta.loc[meta["split"] == name, "source"]) for name in ("train", "val", "test")}
    assert all(groups.values())
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"] or groups["val"] & groups["test"])


def test_the_build_key_covers_every_data_module_and_the_renderer():
    names = {path.name for path in build.code_files()}
    assert {"build.py", "corpus.py", "degrade.py", "listeners.py", "melodies.py", "tunes.py", "popularity.py"} <= names
    assert {"synth.py", "grid.py"} <= names
    assert build.code_version() == build.code_version()


def test_assign_splits_is_80_10_10():
    ids = [f"piece{i}" for i in range(100)]
    split = assign_splits(ids, seed=0)
    assert split == assign_splits(list(reversed(ids)), seed=0)
    counts = {name: list(split.values()).count(name) for name in ("train", "val", "test")}
    assert counts == {"train": 80, "val": 10, "test": 10}


def test_report_and_positive_gold_p_correlation(built):
    out = built[0]
    report = json.loads((out / "report.json").read_text())
    print("gold vs p:", report["gold_p_pearson"], report["gold_p_spearman"])
    assert report["clips"] == 60
    assert sum(report["by_split"].values()) == 60
    assert sum(report["by_degradation"].values()) == 60
    kinds = report["by_kind"]
    assert set(kinds) == {"excerpt", "melody"} and kinds["excerpt"]["clips"] + kinds["melody"]["clips"] == 60
    for kind in kinds.values():
        assert sum(kind["by_degradation"].values()) == kind["clips"]
        assert "clean" in kind["gold_by_strength"] and 0 <= kind["gold"] <= 1
    assert report["gold_p_spearman"] > 0.1


def test_warm_rebuild_is_a_cached_load_and_identical(built, monkeypatch):
    out, clips, _ = built

    def no_work(*args, **kwargs):
        raise AssertionError("an unchanged rebuild must load the saved dataset, not parse or render again")

    monkeypatch.setattr(corpus, "select_sources", no_work)
    again = build_default_dataset(out, seed=0, **SMALL)
    assert again.data_hash == clips.data_hash
    assert load_or_build(out, seed=0).data_hash == clips.data_hash


def test_same_seed_same_data_other_seed_other_data(built, tmp_path):
    _, clips, _ = built
    same = build_default_dataset(tmp_path / "same", seed=0, **{**SMALL, "workers": 0})
    assert same.data_hash == clips.data_hash
    other = build_default_dataset(tmp_path / "other", seed=1, **SMALL)
    assert other.data_hash != clips.data_hash


def test_cli_help_and_bad_input(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["build", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--out", "--seed", "--n-clips", "--melody-fraction", "--workers", "--manifest", "--fma-root",
                 "--max-seconds"):
        assert flag in text
    assert cli.MELODY_FRACTION == melodies.MELODY_FRACTION
    with pytest.raises(ValueError, match="n_clips"):
        build_default_dataset("unused", n_clips=0)
    with pytest.raises(ValueError, match="Unknown corpus collection"):
        build_default_dataset("unused", sources={"beatles": 3}, n_clips=5, progress=False)
    with pytest.raises(ValueError, match="melody_fraction"):
        build_default_dataset("unused", n_clips=5, melody_fraction=1.5)
    with pytest.raises(ValueError, match="reserved for evaluation"):
        build_default_dataset("unused", sources={"mozart": 1}, n_clips=5, progress=False)


def test_undegraded_reference_rows_by_kind(built):
    clips = built[1]
    meta = clips.meta
    for split in ("train", "test"):
        excerpts, melodies_, both = (set(clips.undegraded(split, kind)) for kind in ("excerpt", "melody", None))
        assert excerpts and excerpts | melodies_ == both and not excerpts & melodies_
        assert (meta.loc[sorted(both), "degradation"] == "none").all() and (meta.loc[sorted(both), "split"] == split).all()
    assert (meta.loc[clips.undegraded("train", "melody"), "kind"] == "melody").all()
    with pytest.raises(ValueError, match="kind"):
        clips.undegraded("test", "symphony")
