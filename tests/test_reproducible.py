"""What README's "Reproducibility" claims, tested: on one machine the same seed gives bit-identical rater weights,
and the rater's thread count is a fixed setting, never the machine's core count (it changes the floats)."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from rater import train as rater_train
from rater.scorer import Scorer
from tests.conftest import CROP_SECONDS


def weights(path) -> list[dict[str, torch.Tensor]]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dicts"]


def test_same_seed_gives_bit_identical_rater_weights(tiny_data_dir, tiny_rater, tmp_path):
    """The conftest rater, trained again with the same flags: every weight equal to the last bit."""
    rater_train.main(["--data", str(tiny_data_dir), "--out", str(tmp_path / "again"), "--epochs", "4", "--n-reward",
                      "2", "--n-heldout", "1", "--crop-seconds", str(CROP_SECONDS), "--no-progress", "--front-channels",
                      "8", "--temporal-channels", "16", "--no-baselines", "--device", "cpu", "--threads", "1"])
    first, again = weights(tiny_rater), weights(tmp_path / "again" / "checkpoints" / "rater.pt")
    assert len(first) == len(again) == 3
    for a, b in zip(first, again):
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), name


def test_default_thread_count_does_not_follow_the_core_count(tiny_data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    before = torch.get_num_threads()
    try:
        report = rater_train.main(["--data", str(tiny_data_dir), "--out", str(tmp_path / "r"), "--epochs", "1",
                                   "--n-reward", "1", "--n-heldout", "0", "--crop-seconds", str(CROP_SECONDS),
                                   "--no-progress", "--front-channels", "8", "--no-baselines", "--device", "cpu"])
        assert torch.get_num_threads() == 2 and report["threads"] == 2
    finally:
        torch.set_num_threads(before)
    assert Scorer.load(tmp_path / "r" / "checkpoints" / "rater.pt", device="cpu").sample_rate == 16000


def test_no_default_follows_the_core_count():
    """PPO's env count and the rater's threads shape the numbers, so their defaults are fixed: a machine with
    another core count gets the same defaults (checked in a fresh interpreter that reports 7 cores)."""
    probe = ("import os; os.cpu_count = lambda: 7\n"
             "from agents.sb3 import Args as PPOArgs\nfrom rater.train import Args as RaterArgs\n"
             "print('defaults', PPOArgs().n_envs, RaterArgs().threads)")
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(root)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "defaults 2 2" in result.stdout.splitlines(), result.stdout  # pyfluidsynth prints a line on import
