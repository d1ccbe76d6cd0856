"""Dreams you can play: gradient ascent on a piano roll through a fitted differentiable piano, and CMA-ES on
note sequences rendered by FluidSynth, both decoded to notes and judged on FluidSynth's render.

Why: raw-waveform dreaming (``agents/dream.py``) finds stationary drones the proxy loves and nobody else does.
Searching a space of things a piano can play keeps the dream music-shaped: onsets, pitches, note lengths on
PianoEnv's grid. The *transfer test* checks the shortcut: the dream is optimised through the additive piano
(``agents/diff_piano.py``), then decoded to MIDI and rendered by the real FluidSynth path, and only that render
is judged. A rater fooled by the additive piano's quirks would rank the FluidSynth renders differently.

The roll: for every grid step ``t``, pitch ``p``, logits over {no onset, a note of 1..max_len steps}; the forward
pass renders the argmax (a hard roll: exactly the notes that will be decoded) and gradients flow through the
softmax (straight-through), optionally after a first phase that renders the softmax itself (``hard_from``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from agents.diff_piano import DiffPiano, PianoGrid, notes_from_roll, render_fluidsynth, roll_from_notes
from agents.discriminator import Discriminator, RealCrops, balanced_accuracy
from agents.dream import ObjectiveConfig, ascend, critic_step, dream_objective, log_row
from studio.theory import edit_distance, pitch_sequence
from rater.augment import AugmentConfig

NOTE_MODES = ("notes", "notes-adversarial")
SEARCH_MODES = ("cmaes",)
Note = tuple[int, float, float, int]
INIT_LOGIT = 2.0  # the chosen class at init (a note, or no onset); a choice flips after ~INIT_LOGIT / lr Adam steps
OTHER_LOGIT = 5.0  # -: every other class, so the softmax's leftover mass (the soft roll's hum) starts near 4 %


@dataclass
class NoteDreamConfig(ObjectiveConfig):
    """One note-space dreaming run (gradient or CMA-ES): search budget and the objective's terms."""

    steps: int = 200
    lr: float = 0.1
    seed: int = 0
    n_clips: int = 8
    hard_from: float = 0.5
    init_notes: float = 0.75
    robust: bool = True  # the objective's other terms: ObjectiveConfig's defaults
    tv_weight: float = 0.05
    hf_weight: float = 0.3
    cma_sigma: float = 0.25

    def __post_init__(self):
        if self.steps < 0 or self.n_clips < 1 or self.lr <= 0:
            raise ValueError("note dreaming needs steps >= 0, n_clips >= 1 and lr > 0; check the --note-* flags.")
        if not 0.0 <= self.hard_from <= 1.0:
            raise ValueError(f"hard_from is a fraction of the steps in [0, 1], got {self.hard_from}.")
        if not 0.0 <= self.init_notes <= 1.0:
            raise ValueError(f"init_notes is the share of steps starting a note in [0, 1], got {self.init_notes}.")


@dataclass
class NoteDreamResult:
    notes: list[list[Note]]
    rolls: np.ndarray  # (n_clips, n_steps, n_pitches, max_len) hard rolls of the decoded notes
    audio: np.ndarray  # FluidSynth renders (n_clips, samples): what is judged
    diff_audio: np.ndarray | None  # the differentiable piano's render of the same rolls (None for CMA-ES)
    proxy_fluidsynth: np.ndarray
    proxy_diff: np.ndarray | None
    history: list[dict]
    config: NoteDreamConfig
    rater_calls: int
    seconds_taken: float
    discriminator: Discriminator | None = None
    disc_accuracy: float | None = None
    extra: dict = field(default_factory=dict)


class RollLogits(nn.Module):
    """Logits (n_clips, n_steps, 1 + n_pitches * max_len): at each grid step, no onset or one note (pitch, length).

    One onset per step, as in PianoEnv's melodies (notes may still overlap through their lengths): a per-cell
    choice lets every cell flip at once under Adam and the roll fills with clusters; a per-step choice keeps
    each update a change of melody."""

    def __init__(self, grid: PianoGrid, n_clips: int, init_notes: float, seed: int):
        super().__init__()
        self.grid = grid
        rng = np.random.default_rng(seed)
        logits = np.full((n_clips, grid.n_steps, 1 + grid.n_pitches * grid.max_len), -OTHER_LOGIT, np.float32)
        logits[..., 0] = INIT_LOGIT
        for c in range(n_clips):  # a random walk of notes per clip, so each dream starts somewhere else
            pitch = int(rng.integers(grid.n_pitches // 4, grid.n_pitches - grid.n_pitches // 4))
            for t in range(grid.n_steps):
                if rng.random() < init_notes:
                    pitch = int(np.clip(pitch + rng.integers(-4, 5), 0, grid.n_pitches - 1))
                    length = int(rng.integers(1, min(2, grid.max_len) + 1))
                    logits[c, t, 0], logits[c, t, 1 + pitch * grid.max_len + length - 1] = 0.0, INIT_LOGIT
        self.logits = nn.Parameter(torch.from_numpy(logits))

    def forward(self, hard: bool) -> torch.Tensor:
        """The roll (n_clips, n_steps, n_pitches, max_len): the softmax, or its argmax one-hot when ``hard``
        (gradients through the softmax: straight-through)."""
        soft = torch.softmax(self.logits, dim=-1)
        if hard:
            onehot = nn.functional.one_hot(soft.argmax(dim=-1), soft.shape[-1]).to(soft.dtype)
            soft = onehot + soft - soft.detach()
        return soft[..., 1:].reshape(*soft.shape[:2], self.grid.n_pitches, self.grid.max_len)

    def hard_roll(self) -> np.ndarray:
        with torch.no_grad():
            return self(hard=True).detach().cpu().numpy()


def note_dream(
    scorer,
    piano: DiffPiano,
    renderer,
    config: NoteDreamConfig,
    real: RealCrops | None = None,
    heldout_real: torch.Tensor | None = None,
    writer=None,
    tag: str = "notes",
) -> NoteDreamResult:
    """Ascend the proxy through ``piano`` on a roll of note logits; decode; render and score through FluidSynth.

    The objective is the raw-waveform one (``agents.dream``): mean proxy score (of randomly time-shifted and
    mel-augmented copies when ``robust``) minus ``tv_weight`` x log-mel total variation minus ``hf_weight`` x
    high-frequency ratio plus ``adv_weight`` x the critic's realness logit (critic trained on ``real``)."""
    started = time.perf_counter()
    grid = piano.grid
    if scorer.sample_rate != grid.sample_rate:
        raise ValueError(f"The rater scores {scorer.sample_rate} Hz audio, the piano renders {grid.sample_rate} Hz.")
    torch.manual_seed(config.seed)
    device = scorer.device
    piano = piano.to(device)
    logits = RollLogits(grid, config.n_clips, config.init_notes, config.seed).to(device)
    optimizer = torch.optim.Adam(logits.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    augment = AugmentConfig(pitch_semitones=0.0)
    disc = disc_opt = None
    if config.adv_weight > 0:
        if real is None:
            raise ValueError("Adversarial note dreaming needs real clips: pass real=RealCrops(...).")
        disc = Discriminator(grid.sample_rate).to(device).eval().requires_grad_(False)
        disc_opt = torch.optim.Adam(disc.parameters(), lr=config.disc_lr)
    history: list[dict] = []
    hard_step = int(round(config.hard_from * config.steps))
    for step in range(config.steps + 1):
        roll = logits(hard=step >= hard_step)
        waves = piano(roll)
        objective, terms = dream_objective(waves, scorer, config, generator, augment, disc)
        if step % config.log_every == 0 or step == config.steps:
            log_row(history, writer, tag, {"step": step, "objective": float(objective.detach()),
                                           **{k: float(v.detach()) for k, v in terms.items()},
                                           "notes_per_clip": float((roll.detach() > 0.5).sum() / config.n_clips)})
        if step == config.steps:
            break
        ascend(optimizer, objective)
        critic_step(disc, disc_opt, real, waves, config, rng, step, writer, tag)
    rolls = logits.hard_roll()
    notes = [notes_from_roll(r, grid) for r in rolls]
    rolls = np.stack([roll_from_notes(n, grid) for n in notes])  # same-pitch overlaps cut as FluidSynth plays them
    with torch.no_grad():
        diff_audio = piano(torch.from_numpy(rolls).to(device)).cpu().numpy()
    audio = np.stack([render_fluidsynth(renderer, n, grid) for n in notes])
    result = NoteDreamResult(
        notes=notes, rolls=rolls, audio=audio, diff_audio=diff_audio,
        proxy_fluidsynth=np.asarray(scorer(list(audio)), np.float32),
        proxy_diff=np.asarray(scorer(list(diff_audio)), np.float32),
        history=history, config=config, rater_calls=config.steps * config.n_clips, seconds_taken=0.0,
        discriminator=disc,
    )
    if disc is not None and heldout_real is not None:
        result.disc_accuracy = balanced_accuracy(disc, heldout_real.to(device), torch.from_numpy(audio).to(device))
    result.seconds_taken = time.perf_counter() - started
    return result


# ------------------------------------------------------------------------------------------------ CMA-ES
def vector_to_actions(x: np.ndarray, grid: PianoGrid) -> np.ndarray:
    """PianoEnv ``Discrete`` actions (0 rest, 1 hold, 2 + i note-on) from a search vector in [0, 1]^(2 n_steps):
    per step, the first number picks the pitch and the second the kind (< 0.3 rest, < 0.55 hold, else a note)."""
    x = np.clip(np.asarray(x, dtype=np.float64).reshape(grid.n_steps, 2), 0.0, 1.0)
    pitch = np.minimum((x[:, 0] * grid.n_pitches).astype(int), grid.n_pitches - 1)
    return np.where(x[:, 1] < 0.3, 0, np.where(x[:, 1] < 0.55, 1, 2 + pitch)).astype(np.int64)


def actions_to_grid_notes(actions: Sequence[int], grid: PianoGrid) -> list[Note]:
    """Notes of PianoEnv actions on ``grid`` (``studio.grid.actions_to_notes`` at the exact rendered step)."""
    from studio.grid import actions_to_notes  # noqa: PLC0415

    notes = actions_to_notes(actions, grid.low_pitch, grid.step_frames / grid.sample_rate, grid.velocity)
    return [(int(p), float(s), float(e), int(v)) for p, s, e, v in notes]


def cmaes_dream(scorer, renderer, grid: PianoGrid, config: NoteDreamConfig, writer=None, tag: str = "cmaes") -> NoteDreamResult:
    """One CMA-ES per clip (``cmaes.CMA``, bounds [0, 1], seeded) over note sequences rendered by FluidSynth and
    scored by the proxy: ``config.steps`` rater calls per clip, the budget of gradient note dreaming. Each
    clip's dream is the best sequence it evaluated."""
    from cmaes import CMA  # noqa: PLC0415 - only this mode needs it

    started = time.perf_counter()
    dim = 2 * grid.n_steps
    bounds = np.tile([0.0, 1.0], (dim, 1))
    optimizers = []
    for c in range(config.n_clips):
        mean = np.random.default_rng([config.seed, c]).uniform(0.2, 0.8, dim)
        optimizers.append(CMA(mean=mean, sigma=config.cma_sigma, bounds=bounds, seed=config.seed * 1000 + c))
    popsize = optimizers[0].population_size
    generations = max(1, config.steps // popsize)
    best = [(-np.inf, None)] * config.n_clips
    history = []
    for gen in range(generations):
        asked = [[opt.ask() for _ in range(popsize)] for opt in optimizers]
        notes = [actions_to_grid_notes(vector_to_actions(x, grid), grid) for xs in asked for x in xs]
        scores = scorer([render_fluidsynth(renderer, n, grid) for n in notes]).reshape(config.n_clips, popsize)
        for c, opt in enumerate(optimizers):
            opt.tell([(x, -float(s)) for x, s in zip(asked[c], scores[c])])
            k = int(np.argmax(scores[c]))
            if scores[c, k] > best[c][0]:
                best[c] = (float(scores[c, k]), asked[c][k])
        row = {"step": (gen + 1) * popsize, "score": float(np.mean([b[0] for b in best])),
               "population_mean": float(scores.mean())}
        history.append(row)
        if writer is not None:
            for key, value in row.items():
                if key != "step":
                    writer.add_scalar(f"{tag}/{key}", value, row["step"])
    notes = [actions_to_grid_notes(vector_to_actions(x, grid), grid) for _, x in best]
    audio = np.stack([render_fluidsynth(renderer, n, grid) for n in notes])
    return NoteDreamResult(
        notes=notes, rolls=np.stack([roll_from_notes(n, grid) for n in notes]), audio=audio, diff_audio=None,
        proxy_fluidsynth=np.asarray(scorer(list(audio)), np.float32), proxy_diff=None, history=history,
        config=config, rater_calls=generations * popsize * config.n_clips,
        seconds_taken=time.perf_counter() - started, extra={"popsize": popsize, "generations": generations},
    )


# ------------------------------------------------------------------------------------------------ measures
def distinct_count(pieces: Sequence[Sequence[Note]], share: float = 0.25) -> int:
    """How many pieces differ from every other piece kept so far by an edit distance (on pitch sequences) above
    ``share`` of the longer sequence: a greedy count of mutually distinct pieces, in order."""
    kept: list[tuple[int, ...]] = []
    for piece in pieces:
        seq = pitch_sequence(piece)
        if all(edit_distance(seq, other) > share * max(len(seq), len(other), 1) for other in kept):
            kept.append(seq)
    return len(kept)


def onsets_per_second(waves: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
    """Onsets per second of each waveform by librosa's onset detector (the same measure for every row)."""
    import librosa  # noqa: PLC0415

    return np.array([len(librosa.onset.onset_detect(y=np.asarray(w, np.float32), sr=sample_rate, units="frames"))
                     / (len(w) / sample_rate) for w in waves], dtype=np.float32)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equal-length score vectors (nan when either is constant)."""
    from scipy.stats import spearmanr  # noqa: PLC0415

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def roll_image(roll: np.ndarray, grid: PianoGrid) -> np.ndarray:
    """A (n_steps, n_pitches) piano roll in PianoEnv's convention (1 = onset, 0.5 = held) of a hard roll."""
    out = np.zeros((grid.n_steps, grid.n_pitches), np.float32)
    for pitch, start, end, _ in notes_from_roll(roll, grid):
        step = grid.step_frames / grid.sample_rate
        a, b = int(round(start / step)), int(round(end / step))
        out[a:b, pitch - grid.low_pitch] = 0.5
        out[a, pitch - grid.low_pitch] = 1.0
    return out


def top_lines(data_dir: str, grid: PianoGrid, n: int, seed: int = 0) -> list[np.ndarray]:
    """PianoEnv action sequences (``n_steps`` long) of the top lines of the dataset's test-split pieces:
    skyline of the parsed score, quantised to the env's grid (``studio.grid.melody_to_actions``), first bars."""
    from pathlib import Path  # noqa: PLC0415

    import pandas as pd  # noqa: PLC0415

    from rater.data import corpus  # noqa: PLC0415 - music21 is slow to import
    from studio.grid import melody_to_actions, skyline  # noqa: PLC0415

    meta_path = Path(data_dir) / "meta.csv"
    if not meta_path.is_file():
        raise FileNotFoundError(f"No dataset at {data_dir} (meta.csv missing): build it with `python -m rater.data build`.")
    meta = pd.read_csv(meta_path)
    test = set(meta.loc[meta["split"] == "test", "source"])
    cache = Path(data_dir).parent / ".cache"
    seqs = []
    for path in corpus.select_sources(corpus.DEFAULT_SOURCES):
        for piece in corpus.load_pieces(path, cache):
            if piece.id not in test:
                continue
            actions = melody_to_actions(skyline(piece.notes), grid.low_pitch, grid.n_pitches)
            if actions is not None and len(actions) >= grid.n_steps // 2:
                seqs.append(np.pad(actions[: grid.n_steps], (0, max(0, grid.n_steps - len(actions)))))
    if not seqs:
        raise ValueError(f"No test-split piece of {data_dir} gave a top line; is the dataset the default corpus one?")
    order = np.random.default_rng(seed).permutation(len(seqs))[:n]
    return [seqs[i] for i in sorted(order)]


def play_top_lines(action_seqs: Sequence[np.ndarray], grid: PianoGrid) -> list[dict]:
    """Each action sequence played through PianoEnv (deferred scorer): its episode info (audio, notes, roll)."""
    from envs.piano import PianoEnv  # noqa: PLC0415

    env = PianoEnv(scorer="deferred", n_steps=grid.n_steps, step_seconds=grid.step_seconds,
                   low_pitch=grid.low_pitch, n_pitches=grid.n_pitches, sample_rate=grid.sample_rate,
                   tail_seconds=grid.tail_seconds)
    episodes = []
    for actions in action_seqs:
        env.reset()
        for a in actions:
            _, _, terminated, _, info = env.step(int(a))
        episodes.append(info)
    env.close()
    return episodes


# ------------------------------------------------------------------------------------------------ the run
def save_note_outputs(folder, result: NoteDreamResult, grid: PianoGrid, writer=None, tag: str = "notes") -> dict:
    """Per dream: the FluidSynth render (``dream_XX.wav``, what is judged), its MIDI (``dream_XX.mid``), the
    differentiable piano's render (``additive_XX.wav``); ``rolls.png``, ``mel.png``, ``scores.json``; and in
    TensorBoard the best and median dreams' audio and every dream's piano roll."""
    from pathlib import Path  # noqa: PLC0415

    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from agents.dream import save_mel_png  # noqa: PLC0415
    from studio.files import atomic_path, save_midi, save_wav, write_json  # noqa: PLC0415
    from envs.piano import notes_to_midi, piano_roll_image  # noqa: PLC0415

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sr = grid.sample_rate
    images = [piano_roll_image(roll_image(r, grid), grid.low_pitch, scale=3) for r in result.rolls]
    for i, notes in enumerate(result.notes):
        save_wav(folder / f"dream_{i:02d}.wav", result.audio[i], sr)
        save_midi(folder / f"dream_{i:02d}.mid", notes_to_midi(notes))
        if result.diff_audio is not None:
            save_wav(folder / f"additive_{i:02d}.wav", result.diff_audio[i], sr)
    gap = np.full((images[0].shape[0], 6, 3), 255, np.uint8)
    with atomic_path(folder / "rolls.png") as tmp:
        plt.imsave(tmp, np.concatenate([x for img in images for x in (img, gap)][:-1], axis=1), format="png")
    save_mel_png(folder / "mel.png", result.audio, sr, f"{tag} (FluidSynth): proxy {result.proxy_fluidsynth.mean():.3f}")
    summary = {
        "notes": [[list(n) for n in notes] for notes in result.notes],
        "proxy_fluidsynth": result.proxy_fluidsynth.tolist(),
        "proxy_differentiable": None if result.proxy_diff is None else result.proxy_diff.tolist(),
        "transfer_spearman": None if result.proxy_diff is None else spearman(result.proxy_fluidsynth, result.proxy_diff),
        "disc_heldout_accuracy": result.disc_accuracy,
        "rater_calls": result.rater_calls,
        "seconds_taken": result.seconds_taken,
        "config": result.config.__dict__,
        "history": result.history,
        **result.extra,
    }
    write_json(folder / "scores.json", summary)
    if writer is not None:
        order = np.argsort(result.proxy_fluidsynth)
        step = result.config.steps
        for name, i in (("best", order[-1]), ("median", order[len(order) // 2])):
            writer.add_audio(f"{tag}/{name}", torch.from_numpy(result.audio[i])[None], step, sample_rate=sr)
        for i, img in enumerate(images):
            writer.add_image(f"{tag}/roll_{i:02d}", img, step, dataformats="HWC")
    return summary


def run_modes(args, modes: Sequence[str], judges, out, writer=None) -> dict:
    """Fit the differentiable piano, then run each note-space mode of ``modes`` with ``args`` (dream.Args)."""
    from dataclasses import replace  # noqa: PLC0415

    from agents.diff_piano import fit_piano, fit_report  # noqa: PLC0415
    from agents.dream import real_clips  # noqa: PLC0415
    from studio.files import write_json  # noqa: PLC0415
    from studio.synth import Renderer  # noqa: PLC0415

    proxy = judges.proxy
    grid = PianoGrid(n_steps=args.grid_steps, sample_rate=proxy.sample_rate)
    renderer = Renderer(sample_rate=grid.sample_rate)
    started = time.perf_counter()
    fit = fit_piano(renderer, grid)
    fit_seconds = time.perf_counter() - started
    report = fit_report(fit, renderer)
    write_json(out / "piano_fit.json", {**report, "fit_seconds": fit_seconds, "soundfont": renderer.soundfont.name})
    print(f"Differentiable piano fitted to {renderer.soundfont.name} in {fit_seconds:.1f} s: mean log-mel distance "
          f"per note {report['fitted_mean_db']:.2f} dB (naive additive piano {report['naive_mean_db']:.2f} dB; "
          f"per pitch in piano_fit.json)", flush=True)
    piano = DiffPiano(fit)
    base = NoteDreamConfig(steps=args.note_steps, lr=args.note_lr, seed=args.seed, n_clips=args.n_clips,
                           hard_from=args.hard_from, init_notes=args.init_notes, robust=args.robust,
                           tv_weight=args.tv_weight, hf_weight=args.hf_weight, disc_every=args.disc_every,
                           disc_steps=args.disc_steps, cma_sigma=args.cma_sigma)
    real = heldout = None
    if "notes-adversarial" in modes:
        real, test_crops = real_clips(args.data_dir, args.seed, grid.samples)
        heldout = test_crops.fixed(4 * args.n_clips)
    results = {}
    for mode in modes:
        print(f"Dreaming {args.n_clips} x {grid.samples / grid.sample_rate:.2f} s in note space, mode {mode}, "
              f"{args.note_steps} {'rater calls' if mode == 'cmaes' else 'steps'} per dream ...", flush=True)
        if mode == "cmaes":
            result = cmaes_dream(proxy, renderer, grid, base, writer)
        else:
            config = replace(base, adv_weight=args.note_adv_weight if mode == "notes-adversarial" else 0.0)
            result = note_dream(proxy, piano, renderer, config, real, heldout, writer, tag=mode)
        summary = save_note_outputs(out / mode, result, grid, writer, mode)
        if result.discriminator is not None:
            result.discriminator.save(out / "checkpoints" / "discriminator-notes.pt")
            print(f"  critic held-out balanced accuracy: {result.disc_accuracy:.3f}")
        transfer = "" if result.proxy_diff is None else (
            f" (differentiable render {result.proxy_diff.mean():.4f}, Spearman {summary['transfer_spearman']:.2f})")
        print(f"  proxy on the FluidSynth render {result.proxy_fluidsynth.mean():.4f}{transfer}, "
              f"{np.mean([len(n) for n in result.notes]):.1f} notes per dream, {result.seconds_taken:.1f} s "
              f"-> {out / mode}", flush=True)
        results[mode] = result
    renderer.close()
    return {"results": results, "grid": grid, "fit": report, "fit_seconds": fit_seconds}


COLUMNS = ("n", "proxy", "heldout", "gold", "gold_median", "realness", "onsets_per_s", "distinct", "seconds",
           "rater_calls")


def judge_row(waves: Sequence[np.ndarray], judges, critic, sample_rate: int, notes=None, seconds=None,
              calls=None) -> tuple[dict, dict[str, np.ndarray]]:
    """Every column of the comparison for one row (judges' means, gold also as a median, the critic's P(real),
    onsets per second, mutually distinct pieces when there are notes, wall time, rater calls), and the judges'
    per-piece scores."""
    waves = [np.asarray(w, np.float32) for w in waves]
    scores = judges.score(waves)
    row = {"n": len(waves), **{k: float(np.mean(v)) for k, v in scores.items()},
           "gold_median": float(np.median(scores["gold"]))}
    if critic is not None:
        with torch.no_grad():
            device = next(critic.parameters()).device
            row["realness"] = float(torch.sigmoid(critic(torch.from_numpy(np.stack(waves)).to(device))).mean())
    row["onsets_per_s"] = float(onsets_per_second(waves, sample_rate).mean())
    if notes is not None:
        row["distinct"] = distinct_count(notes)
    if seconds is not None:
        row["seconds"] = float(seconds)
    if calls is not None:
        row["rater_calls"] = int(calls)
    return row, scores


def format_rows(rows: dict[str, dict]) -> str:
    """The comparison as a Markdown table (– where a column does not apply)."""
    lines = ["| run | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, row in rows.items():
        cells = []
        for c in COLUMNS:
            v = row.get(c)
            cells.append("–" if v is None or (isinstance(v, float) and not np.isfinite(v))
                         else f"{v:d}" if isinstance(v, int) else f"{v:.1f}" if c == "seconds" else f"{v:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_all(raw: dict, noise: np.ndarray, raw_heldout: RealCrops | None, notes: dict, judges, out, args) -> dict:
    """Every mode beside white noise, test-split top lines played through PianoEnv and real clips, judged alike;
    the issue's acceptance checks; printed and saved as comparison.json / comparison.md."""
    from agents.dream import real_clips  # noqa: PLC0415
    from studio.files import write_json, write_text  # noqa: PLC0415

    grid, results = notes["grid"], notes["results"]
    sr = grid.sample_rate
    critic = next((r.discriminator for r in results.values() if r.discriminator is not None), None)
    critic_name = "notes-adversarial" if critic is not None else "adversarial"
    if critic is None and "adversarial" in raw:
        critic = raw["adversarial"].discriminator
    rows, per_piece = {}, {}
    rows["white noise"], _ = judge_row(list(noise), judges, critic, sr)
    for mode, r in raw.items():
        rows[f"raw {mode}"], _ = judge_row(list(r.waves), judges, critic, sr, seconds=r.seconds_taken,
                                           calls=r.config.steps * r.config.n_clips)
    for mode, r in results.items():
        rows[f"note {mode}" if mode != "cmaes" else "CMA-ES (FluidSynth)"], per_piece[mode] = judge_row(
            list(r.audio), judges, critic, sr, notes=r.notes, seconds=r.seconds_taken, calls=r.rater_calls)
    lines = play_top_lines(top_lines(args.data_dir, grid, args.top_lines, args.seed), grid)
    top_label = "top lines (test split, PianoEnv)"
    rows[top_label], top_scores = judge_row([e["audio"] for e in lines], judges, critic, sr,
                                            notes=[e["notes"] for e in lines])
    _, test_crops = real_clips(args.data_dir, args.seed, grid.samples)
    rows["real clips (test)"], _ = judge_row(list(test_crops.fixed(args.n_clips).numpy()), judges, critic, sr)
    top_gold, top_proxy = float(np.median(top_scores["gold"])), float(np.median(top_scores["proxy"]))
    checks = {}
    need = int(np.ceil(0.75 * args.n_clips))
    for mode in ("notes", "notes-adversarial"):
        if mode not in results:
            continue
        r, row = results[mode], rows[f"note {mode}"]
        checks[mode] = {
            "gold_mean_vs_top_lines_median": [row["gold"], top_gold, row["gold"] >= top_gold],
            "proxy_mean_vs_top_lines_median": [row["proxy"], top_proxy, row["proxy"] >= top_proxy],
            "transfer_spearman": [spearman(r.proxy_fluidsynth, r.proxy_diff), 0.7,
                                  spearman(r.proxy_fluidsynth, r.proxy_diff) >= 0.7],
            "distinct": [row["distinct"], need, row["distinct"] >= need],
            "seconds": [r.seconds_taken, 300.0, r.seconds_taken <= 300.0],
        }
    table = format_rows(rows)
    note = (f"proxy/heldout/gold of note-space and CMA-ES rows are on FluidSynth's render of the decoded notes; gold = "
            f"expected like rate by the simulated listeners (mean; gold_median the median); realness = the {critic_name} "
            f"run's critic, P(real); onsets_per_s by librosa's onset detector; distinct = mutually distinct pieces "
            f"(edit distance on decoded pitch sequences > 25 % of length); seconds = wall time of the dream (loaded "
            f"2-core machine); raw rows are {args.seconds:g} s clips, note rows {grid.samples / sr:.2f} s. Differentiable "
            f"piano fit: {notes['fit']['fitted_mean_db']:.2f} dB mean log-mel distance per note "
            f"(naive additive {notes['fit']['naive_mean_db']:.2f} dB).")
    check_lines = [f"- {mode} {name}: {v[0]:.3f} vs {v[1]:.3f} -> {'pass' if v[2] else 'MISS'}"
                   for mode, c in checks.items() for name, v in c.items()]
    print(table, note, "Acceptance (issue 16):", *check_lines, sep="\n")
    payload = {"rows": rows, "checks": checks, "fit": notes["fit"],
               "transfer_spearman": {m: spearman(r.proxy_fluidsynth, r.proxy_diff) for m, r in results.items()
                                     if r.proxy_diff is not None},
               "critic_heldout_accuracy": {m: r.disc_accuracy for m, r in {**raw, **results}.items()
                                           if getattr(r, "disc_accuracy", None) is not None}}
    write_json(out / "comparison.json", payload)
    write_text(out / "comparison.md", "# Dreaming: raw waveform vs note space vs CMA-ES\n\n" + table + "\n\n" + note
               + "\n\nAcceptance (issue 16):\n" + "\n".join(check_lines) + "\n")
    return payload
