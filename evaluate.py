"""Evaluate Earworm's agents: render, score and compare everything in a report you can listen to.

    python evaluate.py                               # newest run of each agent + random + real corpus excerpts
    python evaluate.py --agent ppo --episodes 32
    python evaluate.py --checkpoint runs/ppo-seed0/checkpoints/best.zip --out runs/ppo-seed0/eval-best

Writes results.json, report.md, scores.png, per-piece WAV/MIDI/PNGs and index.html (open it in a browser)
to runs/<newest evaluated run>/eval/ unless --out says otherwise. The logic lives in evaluation/report.py.
"""

from __future__ import annotations

from pathlib import Path

from evaluation.report import Args, evaluate
from studio.flags import parse_args


def main(argv: list[str] | None = None) -> dict:
    results = evaluate(parse_args(Args, argv, prog="evaluate.py", description=__doc__))
    out = Path(results["out"])
    print((out / "report.md").read_text())
    print(f"Listen: {out / 'index.html'}")
    return results


if __name__ == "__main__":
    main()
