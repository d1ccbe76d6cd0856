"""evaluate.py end to end: a real tiny rater, a real saved PPO run and dream WAVs, judged into a report folder.

The rater is trained with ``rater.train`` on real FluidSynth renders (scale melodies vs chromatic clusters) scored
by the simulated listeners; the PPO run is a real SB3 model trained for a few steps in PianoEnv.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

import evaluate as evaluate_cli
from agents.overopt import curve_fit
from evaluation.report import Args, evaluate
from rater.judges import file_hash, load_judges
from agents.prior import GridConfig, actions_to_notes
from agents.rollout import collect_episodes, random_policy
from studio.files import save_wav
from studio.listen import true_peak_dbfs
from envs.piano import PianoEnv
from rater.scorer import Scorer

SR = 16000


@pytest.fixture(scope="module")
def workspace(tiny_data_dir, tiny_rater, tiny_prior, tmp_path_factory):
    """The tiny dataset and rater, a PPO run against that rater and a dream run, in one runs folder."""
    root = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(0)
    shutil.copytree(tiny_data_dir, root / "data")
    rater = tiny_rater

    runs = root / "runs"
    (runs / "prior").mkdir(parents=True)
    shutil.copy(tiny_prior, runs / "prior" / "prior.pt")
    proxy = Scorer.load(rater, device="cpu")
    venv = DummyVecEnv([lambda: PianoEnv(scorer=proxy)])
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(64)
    (runs / "ppo-seed0" / "checkpoints").mkdir(parents=True)
    model.save(runs / "ppo-seed0" / "checkpoints" / "latest.zip")
    venv.close()
    config = {"algo": "ppo", "seed": 0, "rater_path": str(rater), "rater_hash": file_hash(rater)}
    (runs / "ppo-seed0" / "config.json").write_text(json.dumps(config))
    # The curve a KLPPO run's monitor writes (shape as in OverOptimisationMonitor.overoptimisation; test_rl makes a real one).
    curve = [{"step": 512 * i, "sqrt_kl": 0.5 * i, "proxy": 1.0 + 0.1 * i, "heldout": 1.0, "gold": 0.5 + 0.02 * i * (3 - i)}
             for i in range(5)]
    (runs / "ppo-seed0" / "overoptimisation.json").write_text(json.dumps({"curve": curve, "fit": curve_fit(curve[1:]), "best_step": 1024}))

    (runs / "dream").mkdir()
    (runs / "dream" / "config.json").write_text(json.dumps({"agent": "dream", "mode": "naive"}))
    for i in range(2):
        save_wav(runs / "dream" / "naive" / f"dream_{i:02d}.wav", 0.1 * rng.standard_normal(SR).astype(np.float32), SR)
    return root


def run_eval(workspace: Path, out: Path, **overrides) -> dict:
    args = Args(episodes=2, seed=0, out=str(out), device="cpu", runs_dir=str(workspace / "runs"),
                data_dir=str(workspace / "data"), reference_clips=2, **overrides)
    return evaluate(args)


@pytest.fixture(scope="module")
def evaluated(workspace):
    return run_eval(workspace, workspace / "eval-a")


def test_report_folder_holds_every_group_and_file(evaluated):
    out = Path(evaluated["out"])
    for name in ("results.json", "report.md", "index.html", "scores.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    rows = evaluated["rows"]
    assert set(rows) == {"ppo-seed0 latest (stochastic)", "ppo-seed0 latest (deterministic)", "random baseline",
                         "dream naive", "corpus excerpts (test split)", "corpus melodies (top line)"}
    for label, pieces in evaluated["pieces"].items():
        assert len(pieces) == rows[label]["n"]
        for piece in pieces:
            assert all(np.isfinite(piece[j]) for j in ("proxy", "heldout", "gold")), piece
            assert 0.0 <= piece["gold"] <= 1.0
    assert len(evaluated["pieces"]["random baseline"]) == 2
    assert len(evaluated["pieces"]["ppo-seed0 latest (deterministic)"]) == 1  # the env is deterministic: one piece
    assert "midi" in evaluated["pieces"]["random baseline"][0] and "midi" not in evaluated["pieces"]["dream naive"][0]
    assert 0.0 <= rows["corpus melodies (top line)"]["in_key"] <= 1.0
    assert evaluated["runs"]["ppo-seed0"]["checkpoint_sha256"] == file_hash(Path(evaluated["runs"]["ppo-seed0"]["checkpoint"]))
    report = (out / "report.md").read_text()
    assert all(label in report for label in rows) and "simulated listeners" in report
    curve = evaluated["overoptimisation"]["ppo-seed0"]
    assert (out / curve["png"]).read_bytes()[:4] == b"\x89PNG" and curve["png"] in report
    assert "fitted peak" in report or "no turnover" in report


def test_same_seed_gives_byte_identical_results_through_the_cli(workspace, evaluated):
    again = evaluate_cli.main(["--episodes", "2", "--seed", "0", "--out", str(workspace / "eval-b"), "--device", "cpu",
                               "--runs-dir", str(workspace / "runs"), "--data-dir", str(workspace / "data"),
                               "--reference-clips", "2"])
    assert (Path(again["out"]) / "results.json").read_bytes() == (Path(evaluated["out"]) / "results.json").read_bytes()


def test_wavs_are_levelled_listening_copies_and_scores_are_the_raters(workspace, evaluated):
    """Every WAV is a 44.1 kHz listening copy at -16 LUFS (+-1 LU), true peak <= -1 dBFS; the scores are the
    judges' on the rater's own 16 kHz render, exactly as if no listening copy had been made."""
    out = Path(evaluated["out"])
    levels = []
    for pieces in evaluated["pieces"].values():
        for piece in pieces:
            audio, rate = sf.read(out / piece["wav"], dtype="float64")
            assert rate == 44100 and audio.ndim == 1
            lufs = pyloudnorm.Meter(rate).integrated_loudness(audio)
            assert abs(lufs + 16) <= 1 and true_peak_dbfs(audio) <= -1 + 0.01, piece["id"]
            assert piece["lufs"] == pytest.approx(lufs, abs=0.1)
            levels.append(lufs)
    assert "listening copy" in evaluated["listening"] and "rater's own render" in (out / "report.md").read_text()
    judges = load_judges(evaluated["rater"]["path"], device="cpu", reference_data=None)
    played = collect_episodes(lambda env: random_policy(env, 0), 2, 0)
    direct = judges.score([e["audio"] for e in played])
    for judge in ("proxy", "heldout", "gold"):
        assert [p[judge] for p in evaluated["pieces"]["random baseline"]] == pytest.approx(direct[judge], abs=1e-6)


def test_html_references_files_that_exist(evaluated):
    out = Path(evaluated["out"])
    page = (out / "index.html").read_text()
    refs = re.findall(r"(?:src|href)='([^']+)'", page)
    n_pieces = sum(len(p) for p in evaluated["pieces"].values())
    assert page.count("<audio controls") == n_pieces
    assert len(refs) > 2 * n_pieces
    missing = [r for r in refs if not (out / r).is_file()]
    assert not missing, missing


@pytest.mark.parametrize(("change", "message"), [
    ({"rater_hash": "0123456789abcdef"}, r"0123456789abcdef.*uses rater [0-9a-f]{16}.*--rater"),
    ({"sample_rate": 22050}, r"renders at 22050 Hz but .* scores 16000 Hz"),
])
def test_run_made_for_another_rater_or_sample_rate_is_refused(workspace, tmp_path, change, message):
    runs = tmp_path / "runs"
    shutil.copytree(workspace / "runs" / "ppo-seed0", runs / "ppo-seed0")
    config = json.loads((runs / "ppo-seed0" / "config.json").read_text())
    (runs / "ppo-seed0" / "config.json").write_text(json.dumps({**config, **change}))
    args = Args(episodes=1, out=str(tmp_path / "eval"), device="cpu", runs_dir=str(runs),
                data_dir=str(workspace / "data"), checkpoint=str(runs / "ppo-seed0" / "checkpoints" / "latest.zip"))
    with pytest.raises(SystemExit, match=message):
        evaluate(args)
    assert not (tmp_path / "eval").exists()


def test_unknown_agent_is_refused(workspace, tmp_path):
    with pytest.raises(SystemExit, match="--agent must be one of"):
        run_eval(workspace, tmp_path / "eval", agent="sac")


def test_actions_to_notes_follows_rest_hold_note_on():
    grid = GridConfig()
    notes = actions_to_notes([2, 1, 1, 0, 14, 5], grid, step_seconds=0.5)
    assert notes == [(48, 0.0, 1.5, 90), (60, 2.0, 2.5, 90), (51, 2.5, 3.0, 90)]


def test_page_loads_players_and_images_in_a_headless_browser(chromium, evaluated):
    """Chromium opens a copy of index.html that reports how many images and audio files decoded.

    Media loads outside Chromium's virtual time, so a run that ends before every player answered is retried.
    """
    out = Path(evaluated["out"])
    probe = """<script>window.addEventListener('load', () => {
      const b = document.body, imgs = [...document.images], auds = [...document.querySelectorAll('audio')];
      b.dataset.images = imgs.length; b.dataset.imagesOk = imgs.filter(i => i.naturalWidth > 0).length;
      b.dataset.audios = auds.length; b.dataset.audiosOk = 0; b.dataset.audiosFailed = 0;
      const count = key => { b.dataset[key] = +b.dataset[key] + 1; };
      auds.forEach(a => {
        a.addEventListener('loadedmetadata', () => count(a.duration > 0 ? 'audiosOk' : 'audiosFailed'));
        a.addEventListener('error', () => count('audiosFailed'));
        a.preload = 'metadata'; a.load(); });
    });</script></body>"""
    check = out / "check.html"
    check.write_text((out / "index.html").read_text().replace("</body>", probe))
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
               "--virtual-time-budget=10000", "--dump-dom", check.as_uri()]
    for _ in range(3):
        dom = subprocess.run(command, capture_output=True, text=True, timeout=60).stdout
        found = {k: int(v) for k, v in re.findall(r'data-([a-z-]+)="(\d+)"', dom)}
        if found.get("audios-ok", 0) + found.get("audios-failed", 0) == found.get("audios", -1):
            break
    check.unlink()
    assert found.get("images") and found["images-ok"] == found["images"], found
    assert found.get("audios") and found["audios-ok"] == found["audios"], found
