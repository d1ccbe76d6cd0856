"""Training on a tiny real dataset: Bach chorale excerpts (rendered with FluidSynth) vs randomised-pitch copies."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from studio.synth import Renderer
from rater import train
from rater.data import corpus, degrade
from rater.data.clips import Clips
from rater.data.listeners import ListenerPopulation
from rater.scorer import Scorer, read_checkpoint

SECONDS = 3.0
N_PIECES = 20
SPLITS = ("train", "train", "train", "val", "test")
FAST = ["--n-reward", "2", "--n-heldout", "2", "--front-channels", "8", "--temporal-channels", "16", "--hidden", "32",
        "--batch-size", "8", "--crop-seconds", "2", "--no-progress", "--threads", "1"]  # fmt: skip
SEED_FAST = ["--arch", "seed", "--n-reward", "1", "--n-heldout", "1", "--channels", "32", "--hidden", "32", "--pooled", "32",
             "--batch-size", "8", "--crop-seconds", "2", "--no-progress", "--no-baselines", "--threads", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> str:
    """40 clips: 20 chorale openings and the same openings with every pitch randomised; p from simulated counts."""
    renderer = Renderer()
    rng = np.random.default_rng(0)
    waves, rows = [], []
    for i, path in enumerate(corpus.select_sources({"bach": N_PIECES})):
        piece = corpus.parse_file(path)[0]
        notes = corpus.excerpt_seconds(piece.notes, 0.0, 80.0, SECONDS)
        for name, version in (("none", notes), ("random_pitch", degrade.random_pitch(notes, 1.0, rng))):
            wave = renderer.render_notes(corpus.playable(version, SECONDS), tail_seconds=0.0)
            waves.append(wave[: int(SECONDS * renderer.sample_rate)])
            rows.append({"id": f"{len(rows):03d}", "source": piece.id, "collection": "bach", "degradation": name,
                         "strength": float(name != "none"), "program": 0, "split": SPLITS[i % len(SPLITS)]})  # fmt: skip
    renderer.close()
    gold = ListenerPopulation()(waves)
    plays = np.full(len(waves), 300)  # equal exposure keeps the tiny test's targets from drowning in play noise
    meta = pd.DataFrame(rows).assign(plays=plays, likes=rng.binomial(plays, gold), gold=gold)
    out = tmp_path_factory.mktemp("tiny") / "clips"
    Clips.from_waveforms(waves, meta, 16000).save(out)
    return str(out)


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "rater"
    report = train.main(["--data", tiny_data, "--out", str(out), "--epochs", "12", "--patience", "12", *FAST])
    return out, report


def test_training_lowers_val_loss_and_writes_everything(trained, tiny_data):
    out, report = trained
    members = report["members"]
    assert [m["role"] for m in members] == ["reward", "reward", "select", "report"]
    # 8 val clips make one member's val loss noisy; together they must have learned
    assert np.mean([m["best_val"] / m["val_before"] for m in members]) < 0.85, members
    assert json.loads((out / "report.json").read_text())["test"] == report["test"]
    assert list((out / "tb").glob("events.out.tfevents.*"))
    payload = read_checkpoint(out / "checkpoints" / "rater.pt")
    assert payload["arch"] == "tonal" and payload["roles"] == ["reward", "reward", "select", "report"]
    assert payload["rule"] == "uwo" and payload["lambda"] == report["ensemble"]["lambda"]
    assert payload["data_hash"] == Clips.load(tiny_data).data_hash
    assert payload["train_args"]["n_reward"] == 2 and any("held-out member 3 (report)" in r for r in payload["test_metrics"])
    # reward members see none of the held-out fold's pieces, and bootstraps differ
    meta = Clips.load(tiny_data).meta
    rows, pool, fold = train.split_members(meta, 2, 2, 0.3, True, 0)
    assert not set(meta["source"].iloc[pool]) & set(meta["source"].iloc[fold]) and len(fold) > 0
    assert set(rows[0]) <= set(pool) and not np.array_equal(rows[0], rows[1])
    assert len(list(Path(tiny_data).glob("mels-*.npy"))) == 2  # log-frequency + log-mel (ridge baseline)
    names = " ".join(report["test"])
    for row in ("one reward member", "ensemble reward", "seed arch", "ridge on mean log-mel", "listeners' own features", "noise ceiling"):
        assert row in names


def test_ranks_real_excerpts_above_randomised_on_held_out_pieces(trained, tiny_data):
    out, _ = trained
    clips = Clips.load(tiny_data)
    held = clips.meta[clips.meta["split"] != "train"]
    real = held[held["degradation"] == "none"].sort_values("source")
    randomised = held[held["degradation"] == "random_pitch"].sort_values("source")
    scorer = Scorer.load(out / "checkpoints" / "rater.pt", device="cpu")
    better = scorer(clips.waveforms(real.index)) > scorer(clips.waveforms(randomised.index))
    assert better.mean() >= 0.75, f"real beat randomised in only {better.sum()} of {len(better)} held-out pairs"
    members = scorer.members(clips.waveforms(real.index))
    assert members.shape == (2, len(real)) and scorer.disagreement(clips.waveforms(real.index)).max() > 0


def test_resume_and_nan_guard(tiny_data, tmp_path):
    out = tmp_path / "run"
    first = train.main(["--data", tiny_data, "--out", str(out), "--epochs", "2", *SEED_FAST])
    resumed = train.main(["--data", tiny_data, "--out", str(out), "--epochs", "2", "--resume", *SEED_FAST])
    assert resumed["test"] == first["test"]
    with pytest.raises(FloatingPointError, match="lower --lr"):
        train.main(["--data", tiny_data, "--out", str(tmp_path / "nan"), "--epochs", "3", "--lr", "1e30", *SEED_FAST])
    with pytest.raises(FileNotFoundError, match="--resume"):
        train.main(["--data", tiny_data, "--out", str(tmp_path / "none"), "--resume", *SEED_FAST])


def test_mel_flags_reach_the_checkpoint_and_bad_ones_are_named(tiny_data, tmp_path):
    out = tmp_path / "mel"
    train.main(["--data", tiny_data, "--out", str(out), "--epochs", "1", "--n-fft", "1024", "--fmin", "30", "--fmax", "4000", *SEED_FAST])
    payload = read_checkpoint(out / "checkpoints" / "rater.pt")
    mel = payload["frontend_config"]
    assert (mel["n_fft"], mel["fmin"], mel["fmax"]) == (1024, 30.0, 4000.0) and payload["arch"] == "seed"
    assert Scorer.load(out / "checkpoints" / "rater.pt").mel.config.n_fft == 1024
    with pytest.raises(ValueError, match="--n-fft/--fmin/--fmax"):
        train.main(["--data", tiny_data, "--out", str(tmp_path / "bad"), "--fmax", "9000", *SEED_FAST])
    with pytest.raises(ValueError, match="Nyquist"):
        train.main(["--data", tiny_data, "--out", str(tmp_path / "bad"), "--octaves", "9", *FAST])
    with pytest.raises(ValueError, match="--arch"):
        train.main(["--data", tiny_data, "--out", str(tmp_path / "bad"), "--arch", "cqt", *FAST])
    with pytest.raises(ValueError, match="aux-weight"):
        train.main(["--data", tiny_data, "--out", str(tmp_path / "bad"), "--arch", "seed", "--aux-weight", "1"])


def test_help_lists_every_flag_with_default(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--data", "--out", "--seed", "--device", "--epochs", "--batch-size", "--lr", "--n-reward", "--n-heldout",
                 "--combine", "--arch", "--aux-weight", "--patience", "--crop-seconds", "--resume", "--no-augment",
                 "--n-fft", "--fmin", "--fmax"):  # fmt: skip
        assert flag in text
    assert "(default: 'data/default')" in text and "(default: 5)" in text


def test_metrics_and_ridge_baseline():
    target = np.array([0.0, 1.0, 2.0, 3.0])
    perfect = train.metrics(target * 2, target)
    assert perfect["spearman"] == pytest.approx(1.0) and perfect["pairwise_acc"] == 1.0
    constant = train.metrics(np.zeros(4), target)
    assert constant["pairwise_acc"] == 0.5 and constant["spearman"] == 0.0
    assert train.metrics(-target, target)["pairwise_acc"] == 0.0
    assert perfect["mse"] == pytest.approx(3.5)
