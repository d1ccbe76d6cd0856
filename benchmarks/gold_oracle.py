"""The oracle attack: PPO with the simulated listeners' gold score itself as the reward. Can it be climbed by non-music?

For each gold version asked for (default: 2 then 1), PPO (default PianoEnv, 2 envs in this process, n_steps
256, batch 256, 4 epochs, entropy 0.01, as in FIELD_NOTES' v1 oracle) learns with ``gold_score(version=V)``
as the final-step reward. Then 64 sampled episodes of the trained policy are compared with the test-split
melodies (the default dataset's test pieces' top lines on the env grid; ``benchmarks/listening.py``):
gold, leaps, repeated notes, in-key, interval-histogram Jensen-Shannon divergence (bits, +-12 semitones), and
statistics gold v2 does not compute itself: contour direction changes per note and ending on a stable degree
(pitch range it does see). Prints the table and the acceptance checks of issue 13, and saves a few WAVs.

Run from the repo root: ``python -m benchmarks.gold_oracle [--timesteps 100000] [--versions 2,1]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from studio.theory import interval_histogram, interval_js, mean_shape_stats, mean_theory_stats
from agents.prior import GridConfig, actions_to_notes
from benchmarks.listening import DEFAULT_DATA, piece_melodies, split_pieces
from envs.piano import PianoEnv
from rater.data.listeners import gold_score

STATS = ("gold", "leaps", "repeated", "in_key", "js_bits", "pitch_range", "direction_changes", "ends_stable")


def melody_table(pieces: list, reference_hist: np.ndarray) -> dict[str, float]:
    theory, shape = mean_theory_stats(pieces), mean_shape_stats(pieces)
    return {"leaps": theory["leaps"], "repeated": theory["repeated"], "in_key": theory["in_key"],
            "js_bits": interval_js(pieces, reference_hist), **shape}


def train_oracle(version: int, timesteps: int, seed: int, n_envs: int = 2) -> PPO:
    def scorer(waves):
        return gold_score(waves, 16000, version=version)

    venv = DummyVecEnv([lambda: PianoEnv(scorer=scorer) for _ in range(n_envs)])
    venv.seed(seed)
    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=256, n_epochs=4, ent_coef=0.01, seed=seed, verbose=0,
                device="cpu")
    model.learn(total_timesteps=timesteps)
    return model


def sample(model: PPO, episodes: int, seed: int) -> tuple[list, list, np.ndarray]:
    env = PianoEnv(scorer="deferred")
    notes, audio = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=False)
            obs, _, done, _, info = env.step(int(action))
        notes.append(info["notes"])
        audio.append(info["audio"])
    env.close()
    return notes, audio, gold_score(audio, 16000, version=2)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=100_000, help="PPO steps per oracle (default 100000)")
    parser.add_argument("--versions", default="2,1", help="gold versions to attack, comma-separated (default 2,1)")
    parser.add_argument("--episodes", type=int, default=64, help="sampled episodes per policy (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="built default dataset (for the test split)")
    parser.add_argument("--out", type=Path, default=Path("runs/gold_oracle"), help="WAVs and summary.json go here")
    args = parser.parse_args(argv)
    torch_threads()

    grid = GridConfig()
    reference = [actions_to_notes(m["actions"], grid) for m in piece_melodies(split_pieces(args.data, "test"))]
    ref_hist = interval_histogram(reference)
    rows = {"test-split melodies": melody_table(reference, ref_hist)}
    env = PianoEnv(scorer="deferred")
    rng = np.random.default_rng(args.seed)
    random_notes, random_audio = [], []
    for _ in range(args.episodes):
        env.reset()
        for a in rng.integers(0, env.action_space.n, grid.n_steps):
            _, _, _, _, info = env.step(int(a))
        random_notes.append(info["notes"])
        random_audio.append(info["audio"])
    env.close()
    rows["uniform random"] = {"gold": float(gold_score(random_audio, version=2).mean()), **melody_table(random_notes, ref_hist)}
    args.out.mkdir(parents=True, exist_ok=True)
    for version in (int(v) for v in args.versions.split(",")):
        started = time.time()
        model = train_oracle(version, args.timesteps, args.seed)
        notes, audio, gold2 = sample(model, args.episodes, args.seed + 1000)
        gold_own = gold_score(audio, 16000, version=version)
        name = f"PPO on gold v{version}"
        rows[name] = {"gold": float(gold2.mean()), f"gold v{version} (own)": float(gold_own.mean()),
                      **melody_table(notes, ref_hist), "seconds": round(time.time() - started, 1)}
        order = np.argsort(gold2)
        for tag, i in (("best", order[-1]), ("median", order[len(order) // 2]), ("worst", order[0])):
            sf.write(args.out / f"v{version}-{tag}.wav", audio[i], 16000)
        rows[name]["examples"] = {tag: [int(n[0]) for n in notes[i]] for tag, i in (("best", order[-1]), ("median", order[len(order) // 2]))}
        print(name, json.dumps(rows[name]), flush=True)
    ref = rows["test-split melodies"]
    print(f"\nOracle attack, {args.timesteps} PPO steps, 2 envs, seed {args.seed}; gold = gold v2 of 64 sampled episodes")
    print(f"{'':24}" + "".join(f"{c:>18}" for c in STATS))
    for name, row in rows.items():
        print(f"{name:24}" + "".join(f"{row.get(c, float('nan')):18.3f}" for c in STATS))
    for name, row in rows.items():
        if not name.startswith("PPO"):
            continue
        checks = {
            "leaps <= 2x corpus": row["leaps"] <= 2 * ref["leaps"],
            "repeats within +-50%": abs(row["repeated"] - ref["repeated"]) <= 0.5 * ref["repeated"],
            "in-key within +-5%": abs(row["in_key"] - ref["in_key"]) <= 0.05 * ref["in_key"],
            "interval JS <= 0.1 bits": row["js_bits"] <= 0.1,
        }
        row["checks"] = checks
        print(name, ", ".join(f"{k}: {'PASS' if v else 'FAIL'}" for k, v in checks.items()))
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2, default=float) + "\n")


def torch_threads() -> None:
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)


if __name__ == "__main__":
    main()
