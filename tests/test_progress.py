"""Progress bars: live on a terminal, a few whole lines in a log (a pipe or a file), from one shared helper."""

import io
import re
import time

import pytest

from studio.progress import LineProgress, is_live, progress_bar


def records(text: str) -> list[str]:
    """What a person scrolling a log sees as separate lines: tqdm's carriage-return redraws count too."""
    return [r for r in re.split(r"[\r\n]+", text) if r.strip()]


def test_off_a_terminal_one_line_per_tenth(monkeypatch):
    monkeypatch.delenv("EARWORM_PROGRESS", raising=False)
    log = io.StringIO()
    assert not is_live(log)
    for _ in progress_bar(range(5000), "work", file=log):
        pass
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert [int(re.search(r"(\d+)%", line).group(1)) for line in lines] == list(range(0, 101, 10))
    assert lines[-1].startswith("work: 100% 5000/5000")


def test_off_a_terminal_a_line_every_interval_when_slow(monkeypatch):
    monkeypatch.delenv("EARWORM_PROGRESS", raising=False)
    log = io.StringIO()
    with progress_bar(total=10, desc="slow", file=log, fraction=1.0, seconds=0.05) as bar:
        for _ in range(10):
            time.sleep(0.02)
            bar.update(1)
    lines = log.getvalue().splitlines()
    middle = [line for line in lines if not re.search(r" (0|10)/10 ", line)]
    assert middle, "no line was written between start and end although 0.05 s passed several times"
    assert len(lines) <= 12


def test_a_bar_that_sets_n_and_refreshes_prints_rarely():
    """The PPO callback's pattern: set ``n``, ``refresh()`` every 50 steps."""
    log = io.StringIO()
    bar = LineProgress(total=60000, desc="training", file=log)
    for n in range(0, 60001, 50):
        bar.n = n
        bar.refresh()
    bar.close()
    assert len(log.getvalue().splitlines()) == 11


def test_mode_can_be_forced_and_bad_values_are_named(monkeypatch):
    monkeypatch.setenv("EARWORM_PROGRESS", "live")
    assert is_live(io.StringIO())
    monkeypatch.setenv("EARWORM_PROGRESS", "sometimes")
    with pytest.raises(ValueError, match="EARWORM_PROGRESS"):
        is_live(io.StringIO())


def test_ppo_training_bar_in_a_log(capsys, monkeypatch):
    """A real SB3 run with the training bar (refreshed every 50 steps) writing to a captured, non-terminal
    stderr: eleven lines, not one redraw per refresh (tqdm's live bar wrote 42 here)."""
    from stable_baselines3 import PPO

    from agents.monitor import ProgressBar

    monkeypatch.delenv("EARWORM_PROGRESS", raising=False)
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=128, batch_size=128, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=2048, callback=ProgressBar(2048))
    err = capsys.readouterr().err
    seen = [r for r in records(err) if r.startswith("training")]
    assert len(seen) == 11 and "100%" in seen[-1], seen
    assert "\r" not in err
