"""SB3 callbacks: the over-optimisation monitor, atomic checkpoints and a progress bar (one job each).

The monitor logs, every rollout, what the reward hides: held-out raters, the simulated listeners' gold score,
diversity and music-theory statistics of the episodes the policy just played, and (with ``KLPPO``) how far the
policy has moved from the prior, √KL(π ‖ prior), the x-axis of the over-optimisation curves (``agents/overopt.py``).
It keeps the checkpoint with the best score of the *selecting* held-out rater (not the proxy it optimises) and,
with ``early_stop``, stops at the held-out turnover: when that rater's smoothed score has not beaten its best
for ``patience`` checks.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Image, TensorBoardOutputFormat

from agents.interrupt import interrupt_point
from agents.overopt import curve_fit, plot_curve, png_to_array
from rater.judges import Judges
from studio.files import atomic_path
from studio.theory import diversity, mean_theory_stats
from studio.listen import ListeningRenderer
from envs.piano import piano_roll_image
from studio.progress import progress_bar

NOT_LOGGED = ("stdout", "log", "json", "csv")


def atomic_save(model, path: Path) -> None:
    """Save an SB3 model so that a crash mid-write never leaves a broken checkpoint."""
    with atomic_path(path) as tmp:
        model.save(tmp)
        interrupt_point("checkpoint")  # the temporary is written, the target not yet replaced


class OverOptimisationMonitor(BaseCallback):
    def __init__(self, judges: Judges, checkpoint_dir: Path, every: int = 1, media_every: int = 5,
                 early_stop: bool = False, window: int = 100, max_scored: int = 32, patience: int = 12, smooth: int = 3,
                 n_steps: int = 32):
        super().__init__()
        self.judges, self.checkpoint_dir = judges, Path(checkpoint_dir)
        self.every, self.media_every, self.early_stop, self.max_scored = every, media_every, early_stop, max_scored
        self.patience, self.smooth, self.n_steps = patience, smooth, n_steps
        self.curve: list[dict] = []  # one point per monitor call: step, sqrt_kl and the judges' means
        self.recent: deque[tuple] = deque(maxlen=window)  # notes of the last `window` episodes, for diversity
        self.fresh: list[dict] = []
        self.history: list[tuple[float, float]] = []
        self.best_heldout = -np.inf
        self.rollouts = 0
        self.best_step: int | None = None
        self.calls = 0
        self.writer = None
        self.stop = False
        self.gold_target: dict | None = None  # when the gold score first reached the corpus's 90th percentile
        self.started = time.time()
        self.listener = ListeningRenderer()  # TensorBoard's audio is for people: 44.1 kHz, -16 LUFS (studio.listen)
        self.media_seconds = 0.0  # wall time spent making listening copies, to keep an eye on their cost

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
        kl = getattr(getattr(self.model, "rollout_buffer", None), "kl_stats", None)
        point = {"step": int(self.num_timesteps), **means, "sqrt_kl": float("nan")}
        if kl is not None:
            episode_kl = max(kl["kl_per_step"], 0.0) * self.n_steps  # chain rule: the sequence KL
            point.update(sqrt_kl=float(np.sqrt(episode_kl)), kl=episode_kl)
            self.logger.record("judges/kl_to_prior", episode_kl)
            self.logger.record("judges/sqrt_kl_to_prior", point["sqrt_kl"])
            self.logger.record("judges/prior_logp_per_step", kl["prior_logp_per_step"])
        self.curve.append(point)
        ref = self.judges.reference
        if ref:
            self.logger.record("judges/gold_vs_corpus_p90", means["gold"] - ref["gold"]["p90"])
            if self.gold_target is None and means["gold"] >= ref["gold"]["p90"]:
                self.gold_target = {"steps": self.num_timesteps, "seconds": round(time.time() - self.started, 1)}
            self.logger.record("judges/heldout_over_proxy", means["heldout"] / max(abs(means["proxy"]), 1e-8))
        for name, value in {**diversity(list(self.recent)), **mean_theory_stats([e["notes"] for e in episodes])}.items():
            self.logger.record(f"music/{name}", value)
        select = means["heldout_select"]
        if select > self.best_heldout:
            self.best_heldout = select
            atomic_save(self.model, self.checkpoint_dir / "best.zip")
            self.best_step = int(self.num_timesteps)
            self.logger.record("judges/best_heldout", self.best_heldout)
        self.calls += 1
        if self.writer is not None and self.calls % self.media_every == 1 % self.media_every:
            self._log_media(episodes, scores["proxy"])
        self.history.append((means["proxy"], select))
        if self.early_stop and self._turned_over():
            print(f"Early stop at {self.num_timesteps} steps: the selecting held-out rater's score peaked "
                  f"{self.patience} checks ago (best checkpoint at step {self.best_step}).", flush=True)
            self.stop = True

    def _turned_over(self) -> bool:
        """True when the selecting held-out rater's moving average (``smooth`` checks) has not beaten its best
        for ``patience`` checks."""
        if len(self.history) < self.smooth + self.patience:
            return False
        values = np.array([h[1] for h in self.history])
        smoothed = np.convolve(values, np.ones(self.smooth) / self.smooth, mode="valid")
        return int(np.argmax(smoothed)) < len(smoothed) - self.patience

    def overoptimisation(self) -> dict:
        """The curve so far and Gao et al.'s fit of its gold gain (``agents/overopt.py``)."""
        points = [p for p in self.curve if np.isfinite(p["sqrt_kl"])]
        return {"curve": self.curve, "fit": curve_fit(points), "best_step": self.best_step}

    def _log_media(self, episodes: list[dict], proxy: np.ndarray) -> None:
        """Best and median episode by proxy score: a listening copy re-rendered from its MIDI (two renders of
        ~8 s at 44.1 kHz, tens of ms) and its piano roll."""
        order = np.argsort(proxy)
        for tag, i in (("best", order[-1]), ("median", order[len(order) // 2])):
            ep = episodes[i]
            started = time.perf_counter()
            audio, _ = self.listener.render_midi(ep["midi"])
            self.media_seconds += time.perf_counter() - started
            self.writer.add_audio(f"episodes/{tag}", torch.as_tensor(audio)[None], self.num_timesteps,
                                  sample_rate=self.listener.sample_rate)
            self.logger.record(f"episodes/{tag}_roll", Image(piano_roll_image(ep["roll"]), "HWC"), exclude=NOT_LOGGED)
        points = [p for p in self.curve if np.isfinite(p["sqrt_kl"])]
        if len(points) >= 2:
            image = png_to_array(plot_curve(points, curve_fit(points)))
            self.logger.record("judges/overoptimisation", Image(image, "HWC"), exclude=NOT_LOGGED)
        self.logger.record("time/listening_copies_s", self.media_seconds)
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
        self.bar = progress_bar(total=self.total, unit="step", desc="training", dynamic_ncols=True)
        self._start = self.num_timesteps

    def _on_step(self) -> bool:
        if self.n_calls % 50 == 0:
            self.bar.n = min(self.total, self.num_timesteps - self._start)
            self.bar.refresh()
        return True

    def _on_training_end(self) -> None:
        self.bar.n = min(self.total, self.num_timesteps - self._start)
        self.bar.close()
