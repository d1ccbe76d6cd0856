"""The Ray backend on a real two-node cluster on this machine (one head, one worker node, 1 CPU each).

One cluster serves every test here (module fixture, stopped at the end). Run by ``make test-ray`` in the
ray venv (RLlib pins another gymnasium than the project, see the README); without Ray the module is skipped
with that reason. Order matters and is kept: the last test SIGKILLs the worker node's raylet mid-run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray", reason="Ray is not installed here: `make test-ray` runs these tests in .venv-ray")

ROOT = Path(__file__).resolve().parents[1]


def alive_nodes() -> list[dict]:
    return [n for n in ray.nodes() if n["Alive"]]


def wait_for_nodes(n: int, timeout: float = 60.0) -> list[dict]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        nodes = alive_nodes()
        if len(nodes) == n:
            return nodes
        time.sleep(0.5)
    raise TimeoutError(f"the cluster has {len(alive_nodes())} live nodes, expected {n}")


@pytest.fixture(scope="module")
def cluster():
    """``ray start --head`` plus one ``ray start --address`` worker node, 1 CPU each, loopback; stopped afterwards."""
    from studio.cluster import LocalCluster, connect

    local = LocalCluster(workers=1, cpus=1, object_store_mb=80)
    try:
        connect(local.address)
        wait_for_nodes(2)
        yield local
    finally:
        local.stop()


def test_default_build_on_ray_is_byte_identical_and_uses_both_nodes(cluster, tmp_path):
    from rater.data import build

    small = {"sources": {"bach": 2, "ryansMammoth": 2}, "n_clips": 48, "progress": False, "cache_dir": tmp_path / "cache"}
    build.build_default_dataset(tmp_path / "local", seed=0, workers=0, **small)
    build.build_default_dataset(tmp_path / "ray", seed=0, address=cluster.address, **small)
    assert len(build._LAST_BUILD["nodes"]) == 2, build._LAST_BUILD  # tasks ran on the head and the worker node
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "ray").iterdir())
    for name in names:
        local, remote = (tmp_path / "local" / name).read_bytes(), (tmp_path / "ray" / name).read_bytes()
        if name == "report.json":  # the only difference allowed: how long the build took
            local, remote = ({k: v for k, v in json.loads(x).items() if k != "build_seconds"} for x in (local, remote))
        assert local == remote, name


def test_manifest_ingest_on_ray_is_byte_identical(cluster, tmp_path):
    import numpy as np
    import pandas as pd
    import soundfile

    from rater.data.ingest import ingest_manifest

    rate, rows = 22050, []
    for i in range(5):
        t = np.arange(2 * rate) / rate
        soundfile.write(tmp_path / f"t{i}.wav", (0.3 * np.sin(2 * np.pi * 220 * (i + 1) * t)).astype(np.float32), rate)
        rows.append((f"t{i}.wav", 100 + i, 10 + i))
    (tmp_path / "bad.wav").write_bytes(b"RIFF-not-audio")
    rows.append(("bad.wav", 10, 1))
    pd.DataFrame(rows, columns=["path", "plays", "likes"]).to_csv(tmp_path / "m.csv", index=False)
    ingest_manifest(tmp_path / "m.csv", tmp_path / "local", workers=0, progress=False)
    ingest_manifest(tmp_path / "m.csv", tmp_path / "ray", address=cluster.address, progress=False)
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert "audio.npy" in names and names == sorted(p.name for p in (tmp_path / "ray").iterdir())
    for name in names:
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes(), name


def test_rater_members_on_ray_give_the_local_checkpoint(cluster, tiny_data_dir, tiny_rater, tmp_path):
    from rater import train as rater_train
    from tests.conftest import CROP_SECONDS

    out = tmp_path / "rater-ray"  # the same flags as the conftest's local tiny_rater, members as Ray tasks
    rater_train.main(["--data", str(tiny_data_dir), "--out", str(out), "--epochs", "4", "--n-reward", "2",
                      "--n-heldout", "1", "--crop-seconds", str(CROP_SECONDS), "--no-progress", "--front-channels", "8",
                      "--temporal-channels", "16", "--no-baselines", "--device", "cpu", "--threads", "1",
                      "--address", cluster.address])
    assert len(rater_train.LAST_RAY_NODES) == 2, rater_train.LAST_RAY_NODES
    local = torch.load(tiny_rater, weights_only=True)
    remote = torch.load(out / "checkpoints" / "rater.pt", weights_only=True)
    assert set(local) == set(remote)
    for a, b in zip(local["state_dicts"], remote["state_dicts"], strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for key in set(local) - {"state_dicts", "train_args"}:
        assert local[key] == remote[key], key
    assert {**local["train_args"], "out": None} == {**remote["train_args"], "out": None}


def raylet_pid(node_id: str) -> int:
    """The raylet process of one node, found by the ``--node_id`` on its command line."""
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"raylet") and f"--node_id={node_id}".encode() in cmd:
            return int(proc.name)
    raise LookupError(f"no raylet process for node {node_id}")


def train_cmd(runs: Path, rater: Path, data: Path, address: str, *extra: str) -> list[str]:
    return [sys.executable, "train.py", "--agent", "ppo", "--backend", "ray", "--address", address,
            "--runs-dir", str(runs), "--run-name", "ppo-ray", "--rater", str(rater), "--data", str(data),
            "--n-rollout-steps", "64", "--checkpoint-every", "128", "--eval-episodes", "2", "--media-every", "1", *extra]


def test_rllib_survives_a_killed_node_checkpoints_resumes_and_evaluates(cluster, tiny_rater, tiny_prior,
                                                                         tiny_data_dir, tmp_path):
    runs = tmp_path / "runs"
    (runs / "prior").mkdir(parents=True)
    shutil.copy(tiny_prior, runs / "prior" / "prior.pt")  # beta > 0: the prior's term runs in the env-runners
    worker = next(n for n in alive_nodes() if "node:__internal_head__" not in n["Resources"])
    proc = subprocess.Popen(train_cmd(runs, tiny_rater, tiny_data_dir, cluster.address, "--timesteps", "384"), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in proc.stdout:  # kill the worker node once the first iteration is done
            lines.append(line)
            if line.startswith("step 128/"):
                os.kill(raylet_pid(worker["NodeID"]), signal.SIGKILL)
                break
        lines += proc.stdout.readlines()
        assert proc.wait(timeout=240) == 0, "".join(lines[-40:])
    finally:
        proc.kill()
    log = "".join(lines)
    run = runs / "ppo-ray"
    config = json.loads((run / "config.json").read_text())
    assert config["backend"] == "ray" and config["cluster"]["nodes"] == 2
    assert len(set(config["env_runner_nodes"])) == 2, config["env_runner_nodes"]  # one env-runner per node
    assert "1/2 env-runners healthy" in log, log[-3000:]  # the killed node's runner was lost, the run went on
    state = json.loads((run / "checkpoints" / "latest" / "earworm_state.json").read_text())
    assert state["steps"] >= 384
    assert (run / "checkpoints" / "best").is_dir() and (run / "summary.json").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(run / "tb"), size_guidance={"audio": 0})
    tb.Reload()
    assert {"judges/proxy", "judges/heldout", "judges/gold", "music/in_key"} <= set(tb.Tags()["scalars"])
    assert "episodes/best" in tb.Tags()["audio"]

    # The node comes back (as an autoscaler would replace it); the run resumes from its checkpoint.
    cluster.add_worker_node()
    wait_for_nodes(2)
    before = state["steps"]
    resumed = subprocess.run(train_cmd(runs, tiny_rater, tiny_data_dir, cluster.address, "--timesteps", str(before + 128),
                                       "--resume"), cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"Resuming PPO on Ray at step {before}" in resumed.stdout
    assert json.loads((run / "checkpoints" / "latest" / "earworm_state.json").read_text())["steps"] == before + 128

    # evaluate.py reads the RLlib checkpoint like an SB3 one.
    from evaluation.report import Args, evaluate

    results = evaluate(Args(agent="ppo", episodes=2, runs_dir=str(runs), data_dir=str(tiny_data_dir),
                            reference_clips=2, out=str(tmp_path / "eval"), device="cpu"))
    assert results["runs"]["ppo-ray"]["kind"] == "ppo"
    assert len(results["runs"]["ppo-ray"]["checkpoint_sha256"]) == 16
    assert any(label.startswith("ppo-ray") for label in results["rows"])
