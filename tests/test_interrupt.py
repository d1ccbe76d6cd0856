"""Interrupting `train.py --agent ppo` at any moment: it exits within 10 s, leaves only files that open, and
`--resume` continues the step count.

Phases are hit deterministically through the test-only hook ``$EARWORM_TEST_INTERRUPT`` (agents/interrupt.py);
real signals to the process group cover what a terminal's Ctrl-C (once and twice) and a kill do.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from stable_baselines3 import PPO

from agents import sb3
from agents.interrupt import TEST_HOOK

ROOT = Path(__file__).resolve().parent.parent
EXIT_WITHIN = 10.0  # seconds from the interrupt to the process's exit


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, tiny_prior) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    (runs / "prior").mkdir()
    shutil.copy(tiny_prior, runs / "prior" / "prior.pt")
    return runs


def flags(runs_dir, tiny_rater, tiny_data_dir, name, timesteps):
    return ["--runs-dir", str(runs_dir), "--run-name", name, "--rater", str(tiny_rater), "--data", str(tiny_data_dir),
            "--n-envs", "2", "--n-rollout-steps", "64", "--eval-episodes", "2", "--media-every", "1",
            "--checkpoint-every", "128", "--timesteps", str(timesteps)]


def start(runs_dir, tiny_rater, tiny_data_dir, name, timesteps, env=None):
    cmd = [sys.executable, str(ROOT / "train.py"), "--agent", "ppo", *flags(runs_dir, tiny_rater, tiny_data_dir, name, timesteps)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, **(env or {})})


def wait_for(path: Path, proc, limit: float = 240) -> None:
    deadline = time.time() + limit
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert path.exists(), f"no {path.name} appeared: {proc.stderr.read()[-2000:] if proc.poll() is not None else ''}"


def check_files_and_resume(runs_dir, tiny_rater, tiny_data_dir, name) -> int:
    """Every file the run left opens; --resume continues from the saved step count."""
    run = runs_dir / name
    assert not list(run.glob("**/.*.tmp-*")), "a temporary file was left behind"
    json.loads((run / "config.json").read_text())
    for checkpoint in (run / "checkpoints").glob("*.zip"):
        PPO.load(checkpoint)
    saved = PPO.load(run / "checkpoints" / "latest.zip").num_timesteps
    threads = torch.get_num_threads()
    summary = sb3.main(["--algo", "ppo", "--resume", *flags(runs_dir, tiny_rater, tiny_data_dir, name, saved + 128)])
    torch.set_num_threads(threads)
    assert PPO.load(run / "checkpoints" / "latest.zip").num_timesteps >= saved + 128
    assert "ppo (latest)" in summary["rows"]
    return saved


@pytest.mark.parametrize("phase", ["rollout", "monitor", "checkpoint", "summary"])
def test_interrupt_at_each_phase_exits_fast_and_resumes(runs_dir, tiny_rater, tiny_data_dir, phase):
    name = f"hook-{phase}"
    timesteps = 128 if phase == "summary" else 100_000  # the summary phase comes after training ends
    proc = start(runs_dir, tiny_rater, tiny_data_dir, name, timesteps, env={TEST_HOOK: phase})
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    ended = time.time()
    fired = re.search(rf"{TEST_HOOK}: interrupting at phase '{phase}' at t=([0-9.]+)", err)
    assert fired, err[-2000:]
    assert ended - float(fired.group(1)) < EXIT_WITHIN, f"took {ended - float(fired.group(1)):.1f} s to exit"
    assert proc.returncode != 0 and "Traceback" not in err, err[-2000:]
    assert ("Interrupted during the final summary" if phase == "summary" else "Interrupted at step") in err
    assert "--resume" in err
    saved = check_files_and_resume(runs_dir, tiny_rater, tiny_data_dir, name)
    if phase == "summary":
        assert saved >= 128


@pytest.mark.parametrize("presses", [1, 2], ids=["ctrl-c", "ctrl-c-twice"])
def test_real_ctrl_c_to_the_process_group(runs_dir, tiny_rater, tiny_data_dir, presses):
    name = f"sigint-{presses}"
    proc = start(runs_dir, tiny_rater, tiny_data_dir, name, 100_000)
    try:
        wait_for(runs_dir / name / "checkpoints" / "latest.zip", proc)
        sent = time.time()
        for _ in range(presses):
            os.killpg(proc.pid, signal.SIGINT)  # the whole group, as a terminal's Ctrl-C does
            time.sleep(0.05)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert time.time() - sent < EXIT_WITHIN, err[-2000:]
    assert "--resume" in err, err[-2000:]
    if presses == 1:
        saved = PPO.load(runs_dir / name / "checkpoints" / "latest.zip").num_timesteps
        assert f"Interrupted at step {saved}" in err
    check_files_and_resume(runs_dir, tiny_rater, tiny_data_dir, name)


def test_kill_loses_at_most_one_checkpoint_interval(runs_dir, tiny_rater, tiny_data_dir):
    name = "killed"
    proc = start(runs_dir, tiny_rater, tiny_data_dir, name, 100_000)
    try:
        wait_for(runs_dir / name / "checkpoints" / "latest.zip", proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert check_files_and_resume(runs_dir, tiny_rater, tiny_data_dir, name) >= 128


def test_close_after_an_interrupt_mid_step_does_not_hang(monkeypatch):
    """SB3's SubprocVecEnv.close() blocks for ever here (it re-reads a result already read); ours returns."""
    import gymnasium as gym

    import envs
    from agents.interrupt import ClosableSubprocVecEnv

    venv = ClosableSubprocVecEnv([lambda: gym.make(f"envs:{envs.ENV_ID}", scorer="deferred")] * 2)
    try:
        venv.reset()
        venv.step_async([2, 3])
        monkeypatch.setenv(TEST_HOOK, "rollout")
        with pytest.raises(KeyboardInterrupt):
            venv.step_wait()  # interrupted after the first worker's result, the second still owed
        assert venv.waiting
        began = time.time()
        venv.close()
        assert time.time() - began < ClosableSubprocVecEnv.timeout + 2
        assert not any(p.is_alive() for p in venv.processes)
    finally:
        for p in venv.processes:
            p.kill()
