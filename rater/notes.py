"""The notes each clip of a default-built dataset was rendered from, for the tonal rater's auxiliary head.

The default build (``rater/data/build.py``) does not save notes, but every clip is rendered from known notes
by a deterministic plan: ``corpus.plan_clips(pieces, n_clips, seed)`` over the parsed pieces of the build's
sources, then the excerpt, the note-level degradation (seeded per clip) and ``corpus.playable``. This module
replays that plan (parsing from the note cache) and checks it against ``meta.csv`` (piece, tempo, offset,
degradation and strength of every clip), so a dataset from another recipe or another build version is
refused with a clear error rather than given wrong notes. A data build that saved each clip's notes would
make this unnecessary (see the issue 14 report). The replay matched the pre-melody default build exactly (each
clip re-rendered from its notes correlated > 0.99 with the stored audio); main's build with melody clips plans
differently and is refused until the build saves notes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rater.data import corpus, degrade
from rater.data.clips import Clips


def clip_notes(clips: Clips, cache_dir: str | Path) -> list[np.ndarray]:
    """Per clip, the (N, 4) notes ``pitch, start_s, end_s, velocity`` it was rendered from (seconds from its start)."""
    build = clips.info.get("build")
    if clips.info.get("kind") != "default" or not isinstance(build, dict) or "sources" not in build:
        raise ValueError(
            "The auxiliary piano-roll head needs the notes each clip was rendered from; this dataset is not a "
            "default build whose plan can be replayed. Train with --aux-weight 0, or build data that saves notes."
        )
    paths = corpus.select_sources(dict(sorted(build["sources"].items())))
    pieces = [piece for path in paths for piece in corpus.load_pieces(path, Path(cache_dir))]
    specs = corpus.plan_clips(pieces, int(build["n_clips"]), int(build["seed"]))
    meta = clips.meta
    by_piece = {piece.id: piece.notes for piece in pieces}
    if len(specs) != len(meta):
        raise ValueError(f"Replaying the build plan gave {len(specs)} clips, the dataset has {len(meta)}; rebuild the data.")
    out = []
    for spec, row in zip(specs, meta.itertuples(index=False)):
        if (spec.piece_id, spec.degradation) != (row.source, row.degradation) or not np.isclose(spec.bpm, row.bpm) \
                or not np.isclose(spec.offset_q, row.offset_q) or not np.isclose(spec.strength, row.strength):  # fmt: skip
            raise ValueError(
                f"Clip {row.id}: the replayed build plan ({spec.piece_id}, {spec.degradation}) does not match meta.csv "
                f"({row.source}, {row.degradation}); the data was built by other code. Rebuild it or use --aux-weight 0."
            )
        rng = np.random.default_rng(spec.seed)
        notes = corpus.excerpt_seconds(by_piece[spec.piece_id], spec.offset_q, spec.bpm, spec.seconds)
        if spec.degradation in degrade.NOTE_DEGRADATIONS:
            notes = degrade.NOTE_DEGRADATIONS[spec.degradation](notes, spec.strength, rng)
        out.append(corpus.playable(notes, spec.seconds))
    return out


def roll_targets(notes: list[np.ndarray], starts: np.ndarray, n_frames: int, frame_seconds: float, low_pitch: int,
                 n_pitches: int) -> np.ndarray:  # fmt: skip
    """(B, 2, n_pitches, n_frames) float32 targets: channel 0 a note sounds, channel 1 a note starts.

    Frame ``j`` of row ``b`` is at ``(starts[b] + j) * frame_seconds`` seconds into its clip; an onset counts
    in the frame whose centre is nearest. Pitches outside ``low_pitch .. low_pitch + n_pitches - 1`` are dropped.
    """
    out = np.zeros((len(notes), 2, n_pitches, n_frames), dtype=np.float32)
    times = np.arange(n_frames) * frame_seconds
    for b, (clip, start) in enumerate(zip(notes, starts)):
        offset = start * frame_seconds
        for pitch, begin, end, _ in clip:
            row = int(pitch) - low_pitch
            if not 0 <= row < n_pitches:
                continue
            out[b, 0, row, (times + offset >= begin) & (times + offset < end)] = 1.0
            onset = int(round((begin - offset) / frame_seconds))
            if 0 <= onset < n_frames:
                out[b, 1, row, onset] = 1.0
    return out
