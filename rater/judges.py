"""The judges of generated music: the proxy rater (the reward), held-out raters, and the simulated listeners.

Only the proxy is ever optimised against. Held-out raters (trained on other folds) and the gold score of the
simulated listener population measure whether a rising reward is real or the rater being fooled; the real
corpus excerpts give each judge a reference scale.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from studio.files import write_json

import numpy as np

from rater.data.listeners import gold_score
from rater.scorer import DEFAULT_CHECKPOINT, Scorer, checkpoint_path


@dataclass
class Judges:
    proxy: Scorer
    heldout: list[Scorer]
    rater_path: Path
    rater_hash: str
    reference: dict = field(default_factory=dict)

    def score(self, audios: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Per-piece scores: ``proxy``, ``heldout`` (mean of the held-out raters), ``heldout_select`` (the first
        held-out rater: it picks the best checkpoint and early-stops), ``heldout_report`` (the mean of the others,
        which only report; the selecting one when it is alone) and ``gold``."""
        nan = np.full(len(audios), np.nan, dtype=np.float32)
        each = [np.asarray(h(audios), dtype=np.float32) for h in self.heldout]
        heldout = np.mean(each, axis=0) if each else nan
        report = np.mean(each[1:], axis=0) if len(each) > 1 else heldout
        return {"proxy": self.proxy(audios), "heldout": heldout.astype(np.float32),
                "heldout_select": each[0] if each else nan, "heldout_report": report.astype(np.float32),
                "gold": gold_score(audios, sample_rate=self.proxy.sample_rate)}


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def rater_checkpoint(path: str | os.PathLike | None) -> Path:
    """The rater to use (``checkpoint_path``); when it is the default and missing, build the data and train it."""
    ckpt = checkpoint_path(path)
    if ckpt == DEFAULT_CHECKPOINT and not ckpt.is_file():
        print(f"No trained rater at {ckpt}: building the default dataset (if missing) and training the rater "
              "first (`python train.py --agent rater`).", flush=True)
        from rater import train as rater_train  # noqa: PLC0415 - only needed on first run

        rater_train.main([])
    return ckpt


def load_judges(
    path: str | os.PathLike | None, device: str = "auto", reference_data: str | os.PathLike | None = "data/default"
) -> Judges:
    """The proxy and held-out raters of a checkpoint; with ``reference_data``, real excerpts' scores as a scale."""
    ckpt = rater_checkpoint(path)
    judges = Judges(
        proxy=Scorer.load(ckpt, device=device),
        heldout=Scorer.load_heldout(ckpt, device=device),
        rater_path=ckpt,
        rater_hash=file_hash(ckpt),
    )
    if reference_data is not None:
        judges.reference = corpus_reference(judges, Path(reference_data))
    return judges


def corpus_reference(judges: Judges, data_dir: Path, max_clips: int = 300) -> dict:
    """Scores of real, undegraded excerpts from the test split, cached next to the rater checkpoint."""
    cache = judges.rater_path.with_name(f"reference-{judges.rater_hash}.json")
    if cache.is_file():
        return json.loads(cache.read_text())
    from rater.data.build import load_or_build  # noqa: PLC0415 - builds the default dataset if missing

    clips = load_or_build(data_dir)
    idx = clips.undegraded("test")[:max_clips]
    scores = judges.score(clips.waveforms(idx))
    reference = {"n_clips": int(len(idx))}
    for name, values in scores.items():
        reference[name] = {q: float(np.nanpercentile(values, int(q[1:]))) for q in ("p10", "p50", "p90")}
        reference[name]["mean"] = float(np.nanmean(values))
    write_json(cache, reference)
    return reference
