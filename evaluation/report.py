"""Evaluation: render, score and compare every agent against the same judges, in a report a person can listen to.

Why one place: training curves only show the proxy reward the agents optimised. Here every piece (agent
episodes, dreams, the random baseline, real corpus excerpts) is scored by the proxy rater, the held-out raters
and the simulated listeners, next to diversity and music-theory statistics computed the same way on real
corpus melodies, and written as ``results.json``, ``report.md``, PNGs and an ``index.html`` with players.

Read top to bottom: find runs -> pick the rater and refuse runs trained against another one -> collect pieces
(episodes, dream WAVs, corpus excerpts) -> score them -> write the folder (built aside, swapped in atomically).
Deterministic: the same seed, runs and rater give a byte-identical ``results.json``.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf

from rater.judges import Judges, file_hash, load_judges
from studio.theory import Note, diversity, mean_theory_stats
from agents.prior import prior_stats
from agents.rollout import collect_episodes, model_policy, random_policy
from studio.files import atomic_path, save_midi, save_wav, write_json, write_text
from envs.piano import piano_roll_image
from studio import SAMPLE_RATE
from studio.listen import LISTEN_RATE, PEAK_CEILING_DBFS, TARGET_LUFS, ListeningRenderer, listening_copy
from studio.progress import progress_bar

SB3_ALGOS = ("ppo", "a2c", "dqn")
JUDGES = ("proxy", "heldout", "gold")
MEASURES = (*JUDGES, "distinct_per_100", "mean_edit_distance", "in_key", "repeated", "leaps", "pc_entropy")
ENV_SAMPLE_RATE = SAMPLE_RATE  # PianoEnv's default; a run's config.json may override it with "sample_rate"
JUDGES_NOTE = ("proxy = the rater the agents were rewarded by; heldout = mean of raters trained on other folds, "
               "never used as reward; gold = expected like rate by the simulated listeners.")
LISTENING_NOTE = (f"What you hear is not what was scored: every WAV here is a listening copy, rendered again at "
                  f"{LISTEN_RATE} Hz by the same FluidSynth renderer (pieces without notes, such as dreams and corpus "
                  f"excerpts, are resampled) and given one gain to {TARGET_LUFS:g} LUFS integrated (ITU-R BS.1770), "
                  f"true peak at most {PEAK_CEILING_DBFS:g} dBFS, which wins over the loudness target. The judges "
                  "scored the rater's own render, at its sample rate and gain.")


@dataclass
class Args:
    agent: str = field(default="", metadata={"help": "evaluate only this agent: ppo, a2c, dqn or dream (empty = all)"})
    checkpoint: str = field(default="", metadata={"help": "evaluate this one SB3 checkpoint zip (its run's config.json names the algo)"})
    episodes: int = field(default=16, metadata={"help": "episodes per policy, each stochastic and deterministic"})
    seed: int = field(default=0, metadata={"help": "seed for the episodes, the random baseline and the corpus sample"})
    out: str = field(default="", metadata={"help": "output folder (empty = runs/<newest evaluated run>/eval)"})
    rater: str = field(default="", metadata={"help": "rater checkpoint (empty = the evaluated run's rater_path)"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when present), cpu or cuda: for the raters"})
    runs_dir: str = field(default="runs", metadata={"help": "where runs are found"})
    data_dir: str = field(default="data/default", metadata={"help": "dataset of real corpus excerpts (built if missing)"})
    reference_clips: int = field(default=16, metadata={"help": "real corpus excerpts (test split, undegraded) to score"})


@dataclass
class Run:
    """One run folder to evaluate: an SB3 policy checkpoint or a folder of dreamed WAVs."""

    name: str
    kind: str
    path: Path
    config: dict
    checkpoint: Path | None = None


@dataclass
class Piece:
    audio: np.ndarray
    notes: list[Note] | None = None
    midi: pretty_midi.PrettyMIDI | None = None
    roll: np.ndarray | None = None


@dataclass
class Group:
    """Pieces that share a row of the report (one policy mode, one dream mode, or a reference)."""

    label: str
    kind: str
    pieces: list[Piece]
    run: str | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- finding runs
def read_config(run_dir: Path) -> dict:
    path = run_dir / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SystemExit(f"Cannot read {path} ({err}); every run folder needs its config.json.") from err


def run_from_checkpoint(path: str | os.PathLike) -> Run:
    """The run an SB3 checkpoint zip belongs to (``runs/<name>/checkpoints/<file>.zip``)."""
    checkpoint = Path(path)
    if not checkpoint.exists():
        raise SystemExit(f"--checkpoint {checkpoint} does not exist; pass a zip (or, for --backend ray runs, a "
                         "folder) under runs/<name>/checkpoints/.")
    run_dir = checkpoint.parent.parent
    config = read_config(run_dir)
    if config.get("algo") not in SB3_ALGOS:
        raise SystemExit(f"{run_dir / 'config.json'} names algo {config.get('algo')!r}; --checkpoint needs one of "
                         f"{', '.join(SB3_ALGOS)}.")
    return Run(run_dir.name, config["algo"], run_dir, config, checkpoint)


def find_runs(runs_dir: str | os.PathLike, agent: str = "") -> list[Run]:
    """The newest run of each agent kind under ``runs_dir`` (SB3 runs by ``algo``, dream runs by their WAVs)."""
    newest: dict[str, tuple[int, Run]] = {}
    for config_path in sorted(Path(runs_dir).glob("*/config.json")):
        run_dir = config_path.parent
        config = read_config(run_dir)
        kind = config.get("algo") or config.get("agent")
        if kind in SB3_ALGOS:
            suffix = "" if config.get("backend") == "ray" else ".zip"  # Ray runs: RLlib checkpoint folders
            checkpoints = [run_dir / "checkpoints" / f"{n}{suffix}" for n in ("best", "latest")]
            found = [c for c in checkpoints if c.exists()]
            if not found:
                continue
            run = Run(run_dir.name, kind, run_dir, config, found[0])
            stamp = found[0].stat().st_mtime_ns
        elif kind in ("dream", None) and (wavs := dream_wavs(run_dir)):
            run = Run(run_dir.name, "dream", run_dir, config)
            stamp = max(p.stat().st_mtime_ns for p in wavs)
        else:
            continue
        if agent and run.kind != agent:
            continue
        if run.kind not in newest or stamp > newest[run.kind][0]:
            newest[run.kind] = (stamp, run)
    return [run for _, run in sorted(newest.values(), key=lambda item: -item[0])]


def checkpoint_sha256(path: Path) -> str:
    """Hash of an SB3 zip, or of the policy weights inside an RLlib checkpoint folder (Ray runs)."""
    if path.is_dir():
        from agents.rllib_policy import checkpoint_hash  # noqa: PLC0415

        return checkpoint_hash(path)
    return file_hash(path)


def dream_wavs(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.rglob("dream_*.wav") if "eval" not in p.relative_to(run_dir).parts)


# ------------------------------------------------------------------------------------------ rater agreement
def choose_rater(args: Args, runs: Sequence[Run]) -> str | None:
    """``--rater``, else the rater the newest policy run was trained with, else the default (None)."""
    if args.rater:
        return args.rater
    for run in runs:
        if run.kind in SB3_ALGOS and run.config.get("rater_path"):
            return run.config["rater_path"]
    return None


def check_compatible(runs: Sequence[Run], judges: Judges) -> None:
    """Refuse policies trained against another rater or rendered at another sample rate than the rater's."""
    for run in runs:
        if run.kind not in SB3_ALGOS:
            continue
        trained = run.config.get("rater_hash")
        if trained != judges.rater_hash:
            raise SystemExit(
                f"Run {run.name} was trained against rater {trained} ({run.config.get('rater_path')}), but this "
                f"evaluation uses rater {judges.rater_hash} ({judges.rater_path}). Pass --rater "
                f"{run.config.get('rater_path')} to judge it by its own rater, or retrain the run with this one."
            )
        rate = int(run.config.get("sample_rate", ENV_SAMPLE_RATE))
        if rate != judges.proxy.sample_rate:
            raise SystemExit(
                f"Run {run.name} renders at {rate} Hz but rater {judges.rater_path} scores {judges.proxy.sample_rate} "
                "Hz audio; evaluate it with a rater trained at its sample rate."
            )


# ------------------------------------------------------------------------------------------ collecting pieces
def episode_pieces(episodes: Sequence[dict]) -> list[Piece]:
    return [Piece(e["audio"], list(e["notes"]), e["midi"], e["roll"]) for e in episodes]


def policy_groups(run: Run, episodes: int, seed: int) -> list[Group]:
    """Stochastic episodes of an SB3 checkpoint, and its one deterministic piece (PianoEnv has no randomness,
    so every deterministic episode is the same piece)."""
    from agents.sb3 import ALGOS  # noqa: PLC0415 - imports SB3's heavy algorithms only when a policy is evaluated

    if run.config.get("backend") == "ray":
        from agents.rllib_policy import RLlibPolicy  # noqa: PLC0415 - needs the ray extra

        model = RLlibPolicy(run.checkpoint)
    else:
        model = ALGOS[run.kind].load(run.checkpoint, device="cpu")
    env_kwargs = {"sample_rate": int(run.config["sample_rate"])} if "sample_rate" in run.config else None
    groups = []
    for mode, deterministic, n in (("stochastic", False, episodes), ("deterministic", True, 1)):
        played = collect_episodes(lambda env: model_policy(model, deterministic), n, seed, env_kwargs)
        groups.append(Group(f"{run.name} {run.checkpoint.stem} ({mode})", run.kind, episode_pieces(played), run.name))
    return groups


def random_group(episodes: int, seed: int) -> Group:
    played = collect_episodes(lambda env: random_policy(env, seed), episodes, seed)
    return Group("random baseline", "random", episode_pieces(played))


def dream_groups(run: Run, sample_rate: int) -> list[Group]:
    """A run's dreamed WAVs, one group per sub-folder (dream mode)."""
    by_folder: dict[str, list[Piece]] = {}
    for path in dream_wavs(run.path):
        audio, rate = sf.read(path, dtype="float32")
        if rate != sample_rate or audio.ndim != 1:
            raise SystemExit(f"{path} is {audio.ndim}-D audio at {rate} Hz; the rater scores mono {sample_rate} Hz. "
                             "Dream again with this rater.")
        folder = str(path.parent.relative_to(run.path))
        by_folder.setdefault(folder, []).append(dream_piece(audio, path.with_suffix(".mid")))
    return [Group(f"{run.name} {'' if folder == '.' else folder}".strip(), "dream", pieces, run.name)
            for folder, pieces in by_folder.items()]


def dream_piece(audio: np.ndarray, midi_path: Path, step_seconds: float = 0.25, low_pitch: int = 48,
                n_pitches: int = 36) -> Piece:
    """A dreamed WAV, with its notes, MIDI and piano roll (PianoEnv's grid) when a MIDI file sits beside it."""
    if not midi_path.is_file():
        return Piece(audio)
    midi = pretty_midi.PrettyMIDI(str(midi_path))
    notes = sorted(((n.pitch, n.start, n.end, n.velocity) for inst in midi.instruments for n in inst.notes),
                   key=lambda n: (n[1], n[0]))
    steps = max(1, int(round(max((n[2] for n in notes), default=0.0) / step_seconds)))
    roll = np.zeros((steps, n_pitches), dtype=np.float32)
    for pitch, start, end, _ in notes:
        a, b = int(round(start / step_seconds)), max(int(round(end / step_seconds)), int(round(start / step_seconds)) + 1)
        if 0 <= pitch - low_pitch < n_pitches:
            roll[a:b, pitch - low_pitch] = np.maximum(roll[a:b, pitch - low_pitch], 0.5)
            roll[a, pitch - low_pitch] = 1.0
    return Piece(audio, notes, midi, roll)


def corpus_group(data_dir: str, seed: int, n: int, sample_rate: int) -> Group:
    """Undegraded test-split excerpts of the default dataset (real music, rendered the same way)."""
    from rater.data.build import load_or_build  # noqa: PLC0415 - builds the dataset on first use

    clips = load_or_build(data_dir, seed=seed)
    if clips.sample_rate != sample_rate:
        raise SystemExit(f"{data_dir} holds {clips.sample_rate} Hz clips but the rater scores {sample_rate} Hz; "
                         "pass a --data-dir built at the rater's sample rate.")
    idx = clips.undegraded("test")
    if len(idx) == 0:
        raise SystemExit(f"{data_dir} has no undegraded test-split clips to use as the real-music reference.")
    picked = np.sort(np.random.default_rng(seed).choice(idx, min(n, len(idx)), replace=False))
    return Group("corpus excerpts (test split)", "corpus", [Piece(w) for w in clips.waveforms(picked)])


# ------------------------------------------------------------------------------------------------ numbers
def group_row(group: Group) -> dict[str, float]:
    row = {"n": len(group.pieces), **{j: float(np.nanmean(group.scores[j])) for j in JUDGES}}
    notes = [p.notes for p in group.pieces if p.notes is not None]
    if notes:
        row.update(diversity(notes))
        row.update(mean_theory_stats(notes))
    return row


def finite_or_none(value):
    """JSON has no NaN: missing numbers become null."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-").lower()


# ------------------------------------------------------------------------------------------------ writing
def save_png(path: Path, image: np.ndarray, **kwargs) -> None:
    import matplotlib.pyplot as plt  # noqa: PLC0415 - Agg backend is selected in evaluate()

    with atomic_path(path) as tmp:
        plt.imsave(tmp, image, format="png", **kwargs)


def mel_image(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    import librosa  # noqa: PLC0415 - slow import, only for pictures

    mel = librosa.feature.melspectrogram(y=audio, sr=sample_rate, n_fft=512, hop_length=128, n_mels=64)
    return librosa.power_to_db(mel + 1e-10, ref=1.0)[::-1]


def listening_audio(piece: Piece, sample_rate: int, listener: ListeningRenderer) -> tuple[np.ndarray, dict]:
    """The piece as a person hears it (``studio.listen``): re-rendered from its MIDI when it has one, else its
    audio resampled; returns the 44.1 kHz audio and its measured loudness (LUFS) and true peak (dBFS)."""
    audio, level = listener.render_midi(piece.midi) if piece.midi is not None else listening_copy(piece.audio, sample_rate)
    return audio, {"lufs": round(level.lufs_after, 2), "true_peak_dbfs": round(level.true_peak_after, 2)}


def write_piece_files(out: Path, group: Group, sample_rate: int, listener: ListeningRenderer) -> list[dict]:
    """Listening-copy WAV, MIDI, piano roll and mel PNGs of each piece; returns their paths, scores and levels.

    The scores are the judges' on the rater's own render (``piece.audio`` at ``sample_rate``); the WAV is the
    listening copy, and the mel PNG shows what the rater heard."""
    folder = Path("pieces") / slug(group.label)
    (out / folder).mkdir(parents=True, exist_ok=True)
    entries = []
    for i, piece in enumerate(group.pieces):
        stem = folder / f"{i:02d}"
        entry = {"id": f"{slug(group.label)}/{i:02d}", "wav": f"{stem}.wav", "mel_png": f"{stem}.mel.png"}
        audio, level = listening_audio(piece, sample_rate, listener)
        save_wav(out / entry["wav"], audio, LISTEN_RATE)
        entry.update(level)
        save_png(out / entry["mel_png"], mel_image(piece.audio, sample_rate), cmap="magma", vmin=-80, vmax=0)
        if piece.midi is not None:
            entry["midi"] = f"{stem}.mid"
            save_midi(out / entry["midi"], piece.midi)
        if piece.roll is not None:
            entry["roll_png"] = f"{stem}.roll.png"
            save_png(out / entry["roll_png"], piano_roll_image(piece.roll))
        entry.update({j: float(group.scores[j][i]) for j in JUDGES})
        entries.append(entry)
    return entries


def plot_scores(path: Path, groups: Sequence[Group]) -> None:
    """Score distributions: one panel per judge, one box (with the pieces as dots) per group."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, len(JUDGES), figsize=(5 * len(JUDGES), 0.45 * len(groups) + 1.5), sharey=True)
    for ax, judge in zip(axes, JUDGES):
        values = [np.nan_to_num(g.scores[judge], nan=0.0) for g in groups]
        ax.boxplot(values, orientation="horizontal", showfliers=False)
        for k, v in enumerate(values, 1):
            ax.plot(v, np.full(len(v), k) + np.linspace(-0.15, 0.15, len(v)), ".", alpha=0.5)
        ax.set_title({"gold": "gold (simulated listeners)", "heldout": "held-out raters"}.get(judge, "proxy rater"))
    axes[0].set_yticks(range(1, len(groups) + 1), [g.label for g in groups])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, metadata={"Software": None})
    plt.close(fig)


def overoptimisation_plots(out: Path, runs: Sequence[Run]) -> dict:
    """For each RL run that recorded an over-optimisation curve (``overoptimisation.json``), a PNG of proxy,
    held-out and gold against √KL(π ‖ prior) in ``out`` and Gao et al.'s fit of the gold gain."""
    from agents.overopt import plot_curve  # noqa: PLC0415

    found = {}
    for run in runs:
        path = run.path / "overoptimisation.json"
        if run.kind == "dream" or not path.is_file():
            continue
        data = json.loads(path.read_text())
        points = [p for p in data["curve"] if p.get("sqrt_kl") is not None and np.isfinite(p["sqrt_kl"])]
        if len(points) < 2:
            continue
        name = f"overopt-{slug(run.name)}.png"
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(plot_curve(points, data["fit"]))
        found[run.name] = {"png": name, "fit": data["fit"], "best_step": data.get("best_step")}
    return found


def fit_text(fit: dict) -> str:
    if not fit or fit.get("a") is None:
        return "too few points for Gao et al.'s fit"
    peak = (f"fitted peak at √KL = {fit['d_peak']:.2f} (gold gain {fit['gain_peak']:+.3f}"
            f"{', beyond the data' if not fit.get('peak_within_data') else ''})") if fit.get("d_peak") else "no turnover"
    return f"gold gain over the initial policy = d ({fit['a']:.3f} − {fit['b']:.3f} ln d), {peak}, R² {format_cell(fit.get('r2'))}"


def format_cell(value) -> str:
    return "–" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.3f}"


def report_markdown(results: dict) -> str:
    header = "| | n | " + " | ".join(MEASURES) + " |"
    lines = ["# Earworm evaluation", "", header, "|---" * (len(MEASURES) + 2) + "|"]
    for label, row in results["rows"].items():
        lines.append(f"| {label} | {row.get('n', '')} | " + " | ".join(format_cell(row.get(m)) for m in MEASURES) + " |")
    lines += ["", JUDGES_NOTE, LISTENING_NOTE,
              "Diversity: distinct pieces per 100 and mean pairwise edit distance of pitch sequences; theory: share "
              "of notes in the best-fitting key, repeated notes, leaps over 7 semitones, pitch-class entropy (bits). "
              "The corpus melodies row gives them for real top lines cut to one episode.",
              f"Rater {results['rater']['hash']} ({results['rater']['path']}), seed {results['seed']}, "
              f"{results['episodes']} episodes per policy mode.", "", "![scores](scores.png)", ""]
    for run, curve in results.get("overoptimisation", {}).items():
        lines += [f"Over-optimisation, {run}: {fit_text(curve['fit'])}.", "", f"![over-optimisation]({curve['png']})", ""]
    return "\n".join(lines)


def index_html(results: dict) -> str:
    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Earworm evaluation</title>",
             "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px;vertical-align:middle}img{height:96px;max-width:420px}</style></head><body>",
             "<h1>Earworm evaluation</h1>", f"<p>{esc(JUDGES_NOTE)}</p>", f"<p>{esc(LISTENING_NOTE)}</p>",
             "<table><tr><th></th><th>n</th>" + "".join(f"<th>{esc(m)}</th>" for m in MEASURES) + "</tr>"]
    for label, row in results["rows"].items():
        cells = "".join(f"<td>{format_cell(row.get(m))}</td>" for m in MEASURES)
        parts.append(f"<tr><th>{esc(label)}</th><td>{row.get('n', '')}</td>{cells}</tr>")
    parts += ["</table>", "<p><img src='scores.png' alt='score distributions' style='height:auto;max-width:100%'></p>"]
    for run, curve in results.get("overoptimisation", {}).items():
        parts.append(f"<h2>Over-optimisation: {esc(run)}</h2><p>{esc(fit_text(curve['fit']))}</p>"
                     f"<p><img src='{esc(curve['png'])}' alt='scores against sqrt KL' style='height:auto'></p>")
    for label, pieces in results["pieces"].items():
        parts.append(f"<h2>{esc(label)}</h2><table><tr><th>piece</th><th>listen</th>"
                     + "".join(f"<th>{j}</th>" for j in JUDGES) + "<th>piano roll</th><th>mel</th><th>MIDI</th></tr>")
        for p in pieces:
            roll = f"<img src='{esc(p['roll_png'])}' alt='piano roll'>" if "roll_png" in p else ""
            midi = f"<a href='{esc(p['midi'])}'>MIDI</a>" if "midi" in p else ""
            parts.append(f"<tr><td>{esc(p['id'])}</td><td><audio controls preload='none' src='{esc(p['wav'])}'></audio></td>"
                         + "".join(f"<td>{format_cell(p[j])}</td>" for j in JUDGES)
                         + f"<td>{roll}</td><td><img src='{esc(p['mel_png'])}' alt='mel spectrogram'></td><td>{midi}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------ the run
def evaluate(args: Args) -> dict:
    """Evaluate runs (or one checkpoint) and the references; write the report folder; return results."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    if args.episodes < 1 or args.reference_clips < 1:
        raise SystemExit("--episodes and --reference-clips must be >= 1.")
    if args.agent and args.agent not in (*SB3_ALGOS, "dream"):
        raise SystemExit(f"--agent must be one of {', '.join((*SB3_ALGOS, 'dream'))}, got {args.agent!r}.")
    runs = [run_from_checkpoint(args.checkpoint)] if args.checkpoint else find_runs(args.runs_dir, args.agent)
    if args.agent and not runs:
        raise SystemExit(f"No {args.agent} run with a checkpoint or dream WAVs under {args.runs_dir}; train one first.")
    judges = load_judges(choose_rater(args, runs), device=args.device, reference_data=None)
    check_compatible(runs, judges)
    sample_rate = judges.proxy.sample_rate

    stages: list[Callable[[], list[Group]]] = []
    for run in runs:
        if run.kind == "dream":
            stages.append(lambda run=run: dream_groups(run, sample_rate))
        else:
            stages.append(lambda run=run: policy_groups(run, args.episodes, args.seed))
    stages.append(lambda: [random_group(args.episodes, args.seed)])
    stages.append(lambda: [corpus_group(args.data_dir, args.seed, args.reference_clips, sample_rate)])
    groups: list[Group] = []
    for stage in progress_bar(stages, desc="render + score", unit="agent"):
        for group in stage():
            group.scores = judges.score([p.audio for p in group.pieces])
            groups.append(group)

    out = Path(args.out) if args.out else Path(args.runs_dir) / (runs[0].name if runs else "baseline") / "eval"
    rows = {g.label: group_row(g) for g in groups}
    corpus = prior_stats(Path(args.runs_dir) / "prior" / "prior.pt")
    if corpus is not None:
        rows["corpus melodies (top line)"] = corpus["corpus_melodies"]
    else:
        print("No real-music prior trained yet (runs/prior/prior.pt): the corpus-melody reference row is left out.")
    listener = ListeningRenderer()
    with atomic_path(out) as tmp:  # readers never see half an evaluation
        tmp.mkdir()
        results = finite_or_none({
            "seed": args.seed,
            "episodes": args.episodes,
            "rater": {"path": str(judges.rater_path), "hash": judges.rater_hash, "sample_rate": sample_rate,
                      "heldout_members": len(judges.heldout)},
            "runs": {r.name: {"kind": r.kind, "checkpoint": str(r.checkpoint) if r.checkpoint else None,
                              "checkpoint_sha256": checkpoint_sha256(r.checkpoint) if r.checkpoint else None,
                              "train_seed": r.config.get("seed"), "rater_hash": r.config.get("rater_hash")}
                     for r in runs},
            "judges": JUDGES_NOTE,
            "listening": LISTENING_NOTE,
            "rows": rows,
            "pieces": {g.label: write_piece_files(tmp, g, sample_rate, listener) for g in groups},
        })
        plot_scores(tmp / "scores.png", groups)
        results["overoptimisation"] = overoptimisation_plots(tmp, runs)
        write_json(tmp / "results.json", results)
        write_text(tmp / "report.md", report_markdown(results))
        write_text(tmp / "index.html", index_html(results))
    listener.close()
    results["out"] = str(out)
    return results
