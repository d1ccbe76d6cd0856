"""Time note-space dreaming (8 dreams x 8 s; budget: <= 5 min on 2 CPU cores) against raw-waveform dreaming of
the same length and number of steps, measured in the same run.

Each step of note dreaming renders the roll through the fitted differentiable piano (agents/diff_piano.py), then
scores it with the rater; raw dreaming resynthesises an STFT. The ratio says what the piano costs.

    python -m benchmarks.note_dream_speed [--rater PATH] [--steps 150] [--n-clips 8] [--grid-steps 32]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from agents.diff_piano import DiffPiano, PianoGrid, fit_piano
from agents.dream import Args, config_from_args, dream, mode_config, rater_path
from agents.note_dream import NoteDreamConfig, note_dream
from studio.synth import Renderer
from rater.scorer import Scorer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rater", default="")
    parser.add_argument("--steps", type=int, default=Args.note_steps)
    parser.add_argument("--n-clips", type=int, default=Args.n_clips)
    parser.add_argument("--grid-steps", type=int, default=Args.grid_steps)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    proxy = Scorer.load(rater_path(args.rater), device="cpu")
    grid = PianoGrid(n_steps=args.grid_steps, sample_rate=proxy.sample_rate)
    renderer = Renderer(sample_rate=grid.sample_rate)
    started = time.perf_counter()
    piano = DiffPiano(fit_piano(renderer, grid))
    fit_seconds = time.perf_counter() - started
    seconds = grid.samples / grid.sample_rate
    raw = dream(proxy, mode_config("regularised", replace(config_from_args(Args(seconds=seconds, n_clips=args.n_clips)),
                                                          steps=args.steps)))
    notes = note_dream(proxy, piano, renderer, NoteDreamConfig(steps=args.steps, n_clips=args.n_clips))
    print(f"{args.n_clips} dreams x {seconds:.2f} s, {args.steps} steps, {args.threads} thread(s):")
    print(f"  fit the piano: {fit_seconds:.1f} s")
    print(f"  raw waveform (regularised, stft): {raw.seconds_taken:.1f} s")
    print(f"  note space (regularised):         {notes.seconds_taken:.1f} s "
          f"({notes.seconds_taken / raw.seconds_taken:.2f} x raw; budget 300 s)")


if __name__ == "__main__":
    main()
