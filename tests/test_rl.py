"""`train.py --agent ppo` end to end on a tiny real rater: the run folder, TensorBoard contents read back with
TensorBoard's own reader, atomic checkpoints, resume after a kill, and the refusals."""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from stable_baselines3 import PPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents import sb3
from studio.listen import loudness_lufs, true_peak_dbfs


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, tiny_prior) -> Path:
    """A runs folder with a small prior already trained, so no test parses the whole corpus."""
    runs = tmp_path_factory.mktemp("runs")
    (runs / "prior").mkdir()
    shutil.copy(tiny_prior, runs / "prior" / "prior.pt")
    return runs


def flags(runs_dir, tiny_rater, tiny_data_dir, name, *extra):
    return ["--algo", "ppo", "--runs-dir", str(runs_dir), "--run-name", name, "--rater", str(tiny_rater),
            "--data", str(tiny_data_dir), "--n-envs", "2", "--n-rollout-steps", "64", "--eval-episodes", "3",
            "--media-every", "1", "--checkpoint-every", "128", *extra]


@pytest.fixture(scope="module")
def trained(runs_dir, tiny_rater, tiny_data_dir):
    summary = sb3.main(flags(runs_dir, tiny_rater, tiny_data_dir, "ppo-a", "--timesteps", "384"))
    return runs_dir / "ppo-a", summary


def test_run_folder_summary_and_checkpoints(trained):
    run, summary = trained
    config = json.loads((run / "config.json").read_text())
    assert config["algo"] == "ppo" and config["rater_hash"] and config["sample_rate"] == 16000
    assert (run / "checkpoints" / "latest.zip").is_file() and (run / "checkpoints" / "best.zip").is_file()
    assert PPO.load(run / "checkpoints" / "latest.zip").num_timesteps >= 384
    assert set(summary["rows"]) == {"random", "prior alone", "ppo (best)", "ppo (latest)"}
    assert config["init"] == "prior" and config["kl_coef"] > 0  # the default: PPO starts as the prior, KL-penalised
    for row in summary["rows"].values():
        for key in ("proxy", "heldout", "gold", "distinct_per_100", "in_key"):
            assert np.isfinite(row[key]), key
    assert summary["reference"]["gold"]["p50"] > 0
    assert not list(run.glob("**/*.tmp*")), "a temporary checkpoint file was left behind"


def test_tensorboard_has_judges_curves_audio_and_piano_rolls(trained):
    run, _ = trained
    acc = EventAccumulator(str(run / "tb"), size_guidance={"audio": 0, "images": 0, "scalars": 0}).Reload()
    tags = acc.Tags()
    for tag in ("judges/proxy", "judges/heldout", "judges/gold", "music/distinct_per_100", "music/in_key"):
        assert tag in tags["scalars"], tag
    assert len(acc.Scalars("judges/gold")) >= 2
    assert {"episodes/best", "episodes/median"} <= set(tags["audio"])
    clip = acc.Audio("episodes/best")[0]
    audio, rate = soundfile.read(io.BytesIO(clip.encoded_audio_string))
    assert clip.sample_rate == rate == 44100  # a listening copy (studio.listen), not the rater's 16 kHz render
    assert abs(loudness_lufs(audio, rate) + 16) <= 1 and true_peak_dbfs(audio) <= -1 + 0.01
    assert any(t.startswith("episodes/best_roll") for t in tags["images"])
    assert "judges/sqrt_kl_to_prior" in tags["scalars"] and "judges/heldout_select" in tags["scalars"]
    assert any(t.startswith("judges/overoptimisation") for t in tags["images"])


def test_overoptimisation_curve_starts_at_the_prior(trained):
    run, summary = trained
    data = json.loads((run / "overoptimisation.json").read_text())
    curve = data["curve"]
    assert len(curve) >= 2 and {"sqrt_kl", "proxy", "heldout", "gold", "step"} <= set(curve[0])
    assert curve[0]["sqrt_kl"] < 1e-3  # the first rollout is played by the initial policy, a copy of the prior
    assert max(p["sqrt_kl"] for p in curve) > curve[0]["sqrt_kl"]
    assert (run / "overoptimisation.png").read_bytes()[:4] == b"\x89PNG"
    assert "overoptimisation_fit" in summary


def test_same_seed_same_summary(trained, runs_dir, tiny_rater, tiny_data_dir):
    _, summary = trained
    again = sb3.main(flags(runs_dir, tiny_rater, tiny_data_dir, "ppo-b", "--timesteps", "384"))
    assert again["rows"] == summary["rows"]


def test_existing_run_needs_resume_and_resume_needs_a_run(trained, runs_dir, tiny_rater, tiny_data_dir):
    with pytest.raises(SystemExit, match="--resume"):
        sb3.main(flags(runs_dir, tiny_rater, tiny_data_dir, "ppo-a", "--timesteps", "384"))
    with pytest.raises(SystemExit, match="no checkpoint"):
        sb3.main(flags(runs_dir, tiny_rater, tiny_data_dir, "never-ran", "--resume"))
