"""Train an Earworm agent. ``python train.py`` (no flags) runs the main job: PPO against the default rater.

    python train.py --agent rater          # build the default dataset if missing, train the rater ensemble
    python train.py --agent prior          # the real-music prior PPO starts from (else trained by --agent ppo)
    python train.py --agent ppo            # RL against the frozen rater (also a2c, dqn, random)
    python train.py --agent dream          # gradient ascent on audio against the rater
    python train.py --agent ppo --help     # every flag of that agent, with its default
    python train.py --agent ppo --backend ray [--address HOST:PORT]   # PPO on RLlib over a Ray cluster

The logic lives in the packages (rater/train.py, agents/sb3.py, agents/dream.py); this file only dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import sys

AGENTS = {
    "ppo": "agents.sb3",
    "a2c": "agents.sb3",
    "dqn": "agents.sb3",
    "random": "agents.sb3",
    "rater": "rater.train",
    "prior": "agents.prior",
    "dream": "agents.dream",
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False
    )
    parser.add_argument("--agent", choices=sorted(AGENTS), default="ppo", help="what to train (default: ppo)")
    parser.add_argument("--backend", choices=("sb3", "ray"), default="sb3",
                        help="RL engine: sb3 on this machine (default) or ray (RLlib PPO over a Ray cluster)")
    args, rest = parser.parse_known_args(argv)
    if args.backend == "ray":
        if args.agent != "ppo":
            raise SystemExit(f"--backend ray trains ppo only, not {args.agent}.")
        importlib.import_module("agents.rllib").main(rest)
        return
    if "--agent" not in argv and rest in (["-h"], ["--help"]):
        parser.print_help()
        print("\nAdd --agent NAME --help to see that agent's flags.")
        return
    module = importlib.import_module(AGENTS[args.agent])
    module.main(["--algo", args.agent, *rest] if AGENTS[args.agent] == "agents.sb3" else rest)


if __name__ == "__main__":
    main()
