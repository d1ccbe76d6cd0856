"""`make demo`: the main job on the built-in default data, stage by stage, ending with each stage's wall time.

    data      python -m rater.data build            the default dataset (likes by the SIMULATED listeners)
    rater     python train.py --agent rater         the rater ensemble, frozen as the reward (the demo skips the
                                                    baseline rows: run it without --no-baselines for the table)
    prior     python train.py --agent prior         the real-music prior the policy starts from
    RL        python train.py --agent ppo           PPO from the prior under KL control, watched by the judges
    evaluate  python evaluate.py                    WAVs, MIDI and the report with players

Every stage is the command a user would type, run as its own process. A stage whose output is already there
is not redone: the data build loads an unchanged dataset, an existing rater or prior checkpoint is kept (delete
``runs/rater`` or ``runs/prior`` to retrain), and an existing RL run is resumed with ``--resume``. So running
`make demo` again, or after Ctrl-C, continues instead of starting over. The table of
wall times is printed at the end and written to ``runs/demo_times.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from studio.files import write_json

RUNS = Path("runs")


def stages(seed: int) -> list[tuple[str, list[str] | None]]:
    """(name, command) per stage; the command is None when the stage's output is already there."""
    py = sys.executable
    rl = ["train.py", "--agent", "ppo", "--seed", str(seed)]
    if (RUNS / f"ppo-seed{seed}" / "checkpoints" / "latest.zip").exists():
        rl.append("--resume")
    return [
        ("data", [py, "-m", "rater.data", "build", "--seed", str(seed)]),
        ("rater", None if (RUNS / "rater" / "checkpoints" / "rater.pt").exists()
         else [py, "train.py", "--agent", "rater", "--seed", str(seed), "--no-baselines"]),
        ("prior", None if (RUNS / "prior" / "prior.pt").exists()
         else [py, "train.py", "--agent", "prior", "--seed", str(seed)]),
        ("RL", [py, *rl]),
        ("evaluate", [py, "evaluate.py", "--seed", str(seed)]),
    ]


def format_table(times: dict[str, float]) -> str:
    total = sum(times.values())
    lines = ["", "make demo: wall time per stage", f"{'stage':<10}{'seconds':>10}{'share':>8}"]
    lines += [f"{name:<10}{sec:>10.1f}{sec / total:>8.0%}" for name, sec in times.items()]
    lines.append(f"{'total':<10}{total:>10.1f}   ({total / 60:.1f} min; budget 10 min on 2 cores)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="seed for every stage (default: 0)")
    args = parser.parse_args(argv)
    times: dict[str, float] = {}
    for name, cmd in stages(args.seed):
        if cmd is None:
            print(f"\n== {name}: kept from an earlier run", flush=True)
            times[name] = 0.0
            continue
        print(f"\n== {name}: {' '.join(cmd[1:])}", flush=True)
        started = time.perf_counter()
        code = subprocess.call(cmd)
        times[name] = time.perf_counter() - started
        if code != 0:
            print(format_table(times))
            raise SystemExit(f"make demo: stage {name!r} failed (exit code {code}); fix it and run `make demo` again.")
    write_json(RUNS / "demo_times.json", {k: round(v, 1) for k, v in times.items()})
    print(format_table(times))
    return times


if __name__ == "__main__":
    main()
