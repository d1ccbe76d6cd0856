"""SB3 callbacks: the over-optimisation monitor, atomic checkpoints and a progress bar (one job each).

The monitor logs, every rollout, what the reward hides: held-out raters, the simulated listeners' gold score,
diversity and music-theory statistics of the episodes the policy just played. It keeps the checkpoint with the
best *held-out* score (not the proxy it optimises) and can stop training when proxy rises while held-out falls.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Image, TensorBoardOutputFormat
from tqdm import tqdm

from agents.interrupt import interrupt_point
from rater.judges import Judges
from studio.theory import diversity, mean_theory_stats
from studio.files import atomic_path
from envs.piano import piano_roll_image

NOT_LOGGED = ("stdout", "log", "json", "csv")


def atomic_save(model, path: Path) -> None:
    """Save an SB3 model so that a crash mid-write never leaves a broken checkpoint."""
    with atomic_path(path) as tmp:
        model.save(tmp)
        interrupt_point("checkpoint")  # the temporary is written, the target not yet replaced


class OverOptimisationMonitor(BaseCallback):
    def __init__(self, judges: Judges, checkpoint_dir: Path, every: int = 1, media_every: int = 5,
                 early_stop: bool = False, window: int = 100, max_scored: int = 32):
        super().__init__()
        self.judges, self.checkpoint_dir = judges, Path(checkpoint_dir)
        self.every, self.media_every, self.early_stop, self.max_scored = every, media_every, early_stop, max_scored
        self.recent: deque[tuple] = deque(maxlen=window)  # notes of the last `window` episodes, for diversity
        self.fresh: list[dict] = []
        self.history: list[tuple[float, float]] = []
        self.best_heldout = -np.inf
        self.rollouts = 0
        self.calls = 0
        self.writer = None
        self.stop = False
        self.gold_target: dict | None = None  # when the gold score first reached the corpus's 90th percentile
        self.started = time.time()

    def _on_training_start(self) -> None:
        formats = [f for f in self.logger.output_formats if isinstance(f, TensorBoardOutputFormat)]
        self.writer = formats[0].writer if formats else None
        self.started = time.time()

    def _on_step(self) -> bool:
        for info, done in zip(self.locals["infos"], self.locals["dones"]):
            if done and "audio" in info:
                self.fresh.append(info)
                self.recent.append(info["notes"])
        return not self.stop

    def _on_rollout_end(self) -> None:
        self.rollouts += 1
        if self.rollouts % self.every or not self.fresh:
            return
        episodes = self.fresh[-self.max_scored :]
        self.fresh = []
        scores = self.judges.score([e["audio"] for e in episodes])
        interrupt_point("monitor")
        means = {k: float(np.mean(v)) for k, v in scores.items()}
        for name, value in means.items():
            self.logger.record(f"judges/{name}", value)
        ref = self.judges.reference
        if ref:
            self.logger.record("judges/gold_vs_corpus_p90", means["gold"] - ref["gold"]["p90"])
            if self.gold_target is None and means["gold"] >= ref["gold"]["p90"]:
                self.gold_target = {"steps": self.num_timesteps, "seconds": round(time.time() - self.started, 1)}
            self.logger.record("judges/heldout_over_proxy", means["heldout"] / max(abs(means["proxy"]), 1e-8))
        for name, value in {**diversity(list(self.recent)), **mean_theory_stats([e["notes"] for e in episodes])}.items():
            self.logger.record(f"music/{name}", value)
        if means["heldout"] > self.best_heldout:
            self.best_heldout = means["heldout"]
            atomic_save(self.model, self.checkpoint_dir / "best.zip")
            self.logger.record("judges/best_heldout", self.best_heldout)
        self.calls += 1
        if self.writer is not None and self.calls % self.media_every == 1 % self.media_every:
            self._log_media(episodes, scores["proxy"])
        self.history.append((means["proxy"], means["heldout"]))
        if self.early_stop and self._diverging():
            print(f"Early stop at {self.num_timesteps} steps: the proxy score rose while held-out raters fell.")
            self.stop = True

    def _diverging(self, k: int = 3) -> bool:
        if len(self.history) <= k:
            return False
        recent = np.array(self.history[-(k + 1) :])
        return bool((np.diff(recent[:, 0]) > 0).all() and (np.diff(recent[:, 1]) < 0).all())

    def _log_media(self, episodes: list[dict], proxy: np.ndarray) -> None:
        order = np.argsort(proxy)
        for tag, i in (("best", order[-1]), ("median", order[len(order) // 2])):
            ep = episodes[i]
            audio = torch.as_tensor(np.clip(ep["audio"], -1, 1))[None]
            self.writer.add_audio(f"episodes/{tag}", audio, self.num_timesteps, sample_rate=ep["sample_rate"])
            self.logger.record(f"episodes/{tag}_roll", Image(piano_roll_image(ep["roll"]), "HWC"), exclude=NOT_LOGGED)
        self.writer.flush()


class CheckpointEvery(BaseCallback):
    """Overwrite one checkpoint atomically every ``every`` env steps: a kill loses at most one interval."""

    def __init__(self, path: Path, every: int):
        super().__init__()
        self.path, self.every = Path(path), every
        self._last = None

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.every:
            atomic_save(self.model, self.path)
            self._last = self.num_timesteps
        return True


class ProgressBar(BaseCallback):
    """A tqdm bar over the steps still to train (SB3's own needs the `rich` package)."""

    def __init__(self, total: int):
        super().__init__()
        self.total = total
        self.bar = None

    def _on_training_start(self) -> None:
        self.bar = tqdm(total=self.total, unit="step", desc="training", dynamic_ncols=True)
        self._start = self.num_timesteps

    def _on_step(self) -> bool:
        if self.n_calls % 50 == 0:
            self.bar.n = min(self.total, self.num_timesteps - self._start)
            self.bar.refresh()
        return True

    def _on_training_end(self) -> None:
        self.bar.n = min(self.total, self.num_timesteps - self._start)
        self.bar.close()
