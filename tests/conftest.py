"""Shared fixtures: a tiny real dataset (FluidSynth renders scored by the simulated listeners) and a rater trained
on it with the real training code. Session-scoped: the rater trains once for every test that needs one."""

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from studio.synth import Renderer
from rater import train as rater_train
from rater.data.clips import Clips
from rater.data.listeners import ListenerPopulation

SR = 16000
CLIP_SECONDS = 2.0
CROP_SECONDS = 1.5


def melody(rng: np.random.Generator, clustered: bool) -> list[tuple[int, float, float, int]]:
    """A C-major random walk of quarter notes; ``clustered`` stacks chromatic clusters instead."""
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    degree, notes = int(rng.integers(0, 8)), []
    for k in range(8):
        degree = int(np.clip(degree + rng.integers(-2, 3), 0, 7))
        start = 0.25 * k
        if clustered:
            root = int(rng.integers(40, 80))
            notes += [(root + i, start, start + 0.25, 100) for i in range(4)]
        else:
            notes.append((60 + int(scale[degree]), start, start + 0.25, 80))
    return notes


@pytest.fixture(scope="session")
def tiny_corpus() -> Clips:
    """16 pieces, each as an undegraded melody and a clustered version; pieces 10-11 val, 12-15 test."""
    rng = np.random.default_rng(0)
    renderer = Renderer(sample_rate=SR)
    waves, rows = [], []
    for i in range(16):
        split = "train" if i < 10 else ("val" if i < 12 else "test")
        for clustered in (False, True):
            waves.append(renderer.render_notes(melody(rng, clustered), tail_seconds=0.0)[: int(CLIP_SECONDS * SR)])
            rows.append({"id": f"m{i}-{int(clustered)}", "source": f"m{i}", "collection": "test",
                         "degradation": "clusters" if clustered else "none", "strength": float(clustered),
                         "program": 0, "split": split})
    renderer.close()
    meta = pd.DataFrame(rows)
    population = ListenerPopulation(seed=0, sample_rate=SR)
    meta["gold"] = population(waves)
    meta["plays"], meta["likes"] = population.simulate_counts(meta["gold"].to_numpy(), rng)
    return Clips.from_waveforms(waves, meta, SR)


@pytest.fixture(scope="session")
def tiny_data_dir(tiny_corpus, tmp_path_factory) -> Path:
    return tiny_corpus.save(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="session")
def tiny_rater(tiny_data_dir) -> Path:
    """A real rater ensemble (two reward members + one held-out) trained for a few epochs on the tiny corpus."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches run fastest on one thread; extra threads spin on a busy 2-core box
    out = tiny_data_dir.parent / "rater"
    rater_train.main(["--data", str(tiny_data_dir), "--out", str(out), "--epochs", "4", "--n-reward", "2",
                      "--n-heldout", "1", "--crop-seconds", str(CROP_SECONDS), "--no-progress", "--front-channels", "8",
                      "--temporal-channels", "16", "--no-baselines", "--device", "cpu", "--threads", "1"])
    torch.set_num_threads(threads)
    return out / "checkpoints" / "rater.pt"


@pytest.fixture(scope="session")
def tiny_prior(tmp_path_factory) -> Path:
    """A real-music prior cloned from scale melodies (so no test parses the whole music21 corpus)."""
    from agents.prior import (GridConfig, episode_windows, fitted_windows, melody_stats, melody_tokens, save_prior,
                              train_prior)

    grid = GridConfig()
    scale = [(60 + s, i * 0.5, i * 0.5 + 0.5) for i, s in enumerate([0, 2, 4, 5, 7, 9, 11, 12, 11, 9, 7, 5, 4, 2] * 4)]
    tokens = [melody_tokens(scale, grid.steps_per_beat)] * 6
    model, stats = train_prior(tokens, tokens[:1], grid, epochs=2, hidden=32, recent=4)
    stats["corpus_melodies"] = melody_stats(fitted_windows(episode_windows(tokens, grid), grid), grid)
    path = tmp_path_factory.mktemp("prior") / "prior.pt"
    save_prior(model, path, stats)
    return path


def chromium_path() -> str:
    """Chromium for the evaluate page test. When it is missing a user's run skips, saying why; in CI (``CI=true``,
    which ``.ci/run`` sets and installs Chromium for) the test fails instead, so CI can never skip it silently."""
    found = shutil.which("chromium")
    if found:
        return found
    reason = "chromium is not installed (apt-get install chromium chromium-driver; .ci/run does this)"
    ci = os.environ.get("CI", "")
    if ci.strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"CI={ci} but {reason}: the evaluate page test must run in CI.", pytrace=False)
    pytest.skip(f"{reason}; with CI=true this is a failure")


@pytest.fixture(scope="session")
def chromium() -> str:
    return chromium_path()
