"""Dreaming: gradient ascent on audio against the frozen rater, naive, regularised, or adversarial.

Why three modes: naive ascent on a CNN's score finds structured noise that the proxy loves and nothing else
does (an adversarial example). Feature-visualisation regularisers (random transformations before scoring,
spectral smoothness, a high-frequency penalty, bounded amplitude) keep only what survives perturbation;
a discriminator trained on real corpus excerpts vs the current dreams adds a "realness" pull. ``compare``
runs all three from the same seeds and scores them by judges the dreams never saw: held-out raters, the
simulated listeners' gold score, the discriminator and spectral flatness, beside white noise and real clips.

Note-space modes (``agents/note_dream.py``): ``notes`` and ``notes-adversarial`` ascend a piano roll through a
differentiable piano fitted to the soundfont, ``cmaes`` searches note sequences rendered by FluidSynth; all three
are decoded to notes and judged on FluidSynth's render.

    python train.py --agent dream                          # compare every mode, with white noise, top lines, real clips
    python train.py --agent dream --mode naive --steps 100 --init my.wav
    python train.py --agent dream --mode notes --note-steps 100
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from agents.discriminator import Discriminator, RealCrops, balanced_accuracy, train_step
from rater.judges import Judges, load_judges
from studio.files import atomic_path, write_json
from studio.listen import LISTEN_RATE, listening_copy
from studio.progress import progress_bar
from rater.augment import AugmentConfig
from studio.flags import parse_args

MODES = ("naive", "regularised", "adversarial")
PARAMS = ("wave", "stft")
BOUNDS = ("tanh", "clamp")
N_FFT, HOP = 512, 128


@dataclass
class ObjectiveConfig:
    """The dreaming objective's terms and the critic's schedule (``dream_objective``, ``critic_step``), shared by
    raw-waveform and note-space dreaming."""

    robust: bool = False
    max_shift: float = 0.25
    tv_weight: float = 0.0
    hf_weight: float = 0.0
    adv_weight: float = 0.0
    disc_every: int = 5
    disc_steps: int = 1
    disc_lr: float = 1e-3
    log_every: int = 10


@dataclass
class DreamConfig(ObjectiveConfig):
    """Everything that shapes one dreaming run (a run's settings, not its inputs)."""

    seconds: float = 4.0
    steps: int = 300
    lr: float = 0.05
    seed: int = 0
    n_clips: int = 8
    param: str = "stft"
    bound: str = "tanh"
    peak: float = 0.95
    init_rms: float = 0.1
    pitch_semitones: float = 0.0

    def __post_init__(self):
        if self.param not in PARAMS:
            raise ValueError(f"param must be one of {PARAMS}, got {self.param!r}.")
        if self.bound not in BOUNDS:
            raise ValueError(f"bound must be one of {BOUNDS}, got {self.bound!r}.")
        if self.seconds <= 0 or self.steps < 0 or self.n_clips < 1 or self.lr <= 0:
            raise ValueError("seconds and lr must be > 0, steps >= 0 and n_clips >= 1; check the dream flags.")
        if not 0 < self.peak < 1:
            raise ValueError(f"peak must lie in (0, 1) so dreams never clip, got {self.peak}.")


@dataclass
class DreamResult:
    waves: np.ndarray
    scores: np.ndarray
    history: list[dict]
    config: DreamConfig
    discriminator: Discriminator | None = None
    disc_accuracy: float | None = None
    seconds_taken: float = 0.0


@dataclass
class Args:
    mode: str = field(default="compare", metadata={"help": "naive, regularised, adversarial (raw waveform), notes, "
                                                   "notes-adversarial, cmaes (note space), or compare (all)"})
    init: str = field(default="noise", metadata={"help": "start from white noise or from this WAV file (PATH)"})
    seconds: float = field(default=4.0, metadata={"help": "length of each dreamed clip"})
    steps: int = field(default=300, metadata={"help": "gradient steps per dream"})
    lr: float = field(default=0.05, metadata={"help": "Adam learning rate on the parametrisation"})
    seed: int = field(default=0, metadata={"help": "seed for the initial noise, augmentations and critic"})
    n_clips: int = field(default=8, metadata={"help": "clips dreamed in one batch"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when present), cpu or cuda"})
    out: str = field(default="runs/dream", metadata={"help": "run folder: WAVs, PNGs, scores, tb/, checkpoints/"})
    rater: str = field(default="", metadata={"help": "rater checkpoint (default: rater.scorer.DEFAULT_CHECKPOINT)"})
    param: str = field(default="stft", metadata={"help": "stft (log-magnitude + phase, istft) or wave (raw samples)"})
    bound: str = field(default="tanh", metadata={"help": "amplitude bound: tanh (soft) or clamp (hard) at --peak"})
    peak: float = field(default=0.95, metadata={"help": "largest allowed sample magnitude"})
    robust: bool = field(default=True, metadata={"help": "regularised: score randomly transformed copies"})
    pitch_semitones: float = field(default=0.0, metadata={"help": "regularised: random pitch shift range (hurts gold)"})
    tv_weight: float = field(default=0.05, metadata={"help": "regularised: total-variation penalty on the log-mel"})
    hf_weight: float = field(default=0.3, metadata={"help": "regularised: high-frequency energy penalty"})
    adv_weight: float = field(default=2.0, metadata={"help": "adversarial: weight of the realness logit"})
    disc_every: int = field(default=5, metadata={"help": "adversarial: train the critic every N dream steps"})
    disc_steps: int = field(default=1, metadata={"help": "adversarial: critic updates each time (0 = frozen)"})
    discriminator: str = field(default="", metadata={"help": "adversarial: start from this critic checkpoint"})
    data_dir: str = field(default="data/default", metadata={"help": "dataset for real clips (built if missing)"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads (0 = all cores); 1 measured fastest on 2 busy cores"})
    note_steps: int = field(default=150, metadata={"help": "note modes: gradient steps per dream; cmaes: rater calls per dream"})
    note_lr: float = field(default=0.1, metadata={"help": "note modes: Adam learning rate on the roll's logits"})
    grid_steps: int = field(default=32, metadata={"help": "note modes: PianoEnv grid steps of 0.25 s per dream (32 = 8 s)"})
    hard_from: float = field(default=0.5, metadata={"help": "note modes: share of steps rendering the soft roll before the "
                                                     "hard (decoded) one; 0 = straight-through from the start"})
    init_notes: float = field(default=0.75, metadata={"help": "note modes: share of grid steps starting a note at init"})
    note_adv_weight: float = field(default=2.0, metadata={"help": "notes-adversarial: weight of the realness logit"})
    cma_sigma: float = field(default=0.25, metadata={"help": "cmaes: initial step size in the [0, 1] search box"})
    top_lines: int = field(default=32, metadata={"help": "reference: test-split top lines played through PianoEnv"})


def config_from_args(args: Args) -> DreamConfig:
    """The DreamConfig holding every flag of ``args`` that it shares a name with."""
    return DreamConfig(**{f.name: getattr(args, f.name) for f in fields(DreamConfig) if hasattr(args, f.name)})


def mode_config(mode: str, base: DreamConfig) -> DreamConfig:
    """The base config with the regularisers (and critic) switched to what ``mode`` means."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    if mode == "naive":
        return replace(base, robust=False, tv_weight=0.0, hf_weight=0.0, adv_weight=0.0)
    if mode == "regularised":
        return replace(base, adv_weight=0.0)
    return base


def noise_init(config: DreamConfig, sample_rate: int) -> np.ndarray:
    """Seeded white noise at ``init_rms``, shape (n_clips, samples)."""
    samples = int(round(config.seconds * sample_rate))
    rng = np.random.default_rng(config.seed)
    return (config.init_rms * rng.standard_normal((config.n_clips, samples))).astype(np.float32)


def wav_init(path: str | os.PathLike, config: DreamConfig, sample_rate: int) -> np.ndarray:
    """The WAV at ``path`` (mono, resampled, cropped/padded) for every clip, with a little seeded noise each."""
    import librosa  # noqa: PLC0415 - only for --init PATH
    import soundfile as sf  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--init {path}: no such file; pass 'noise' or the path of a WAV file.")
    wave, rate = sf.read(path, dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)
    if rate != sample_rate:
        wave = librosa.resample(wave, orig_sr=rate, target_sr=sample_rate)
    samples = int(round(config.seconds * sample_rate))
    wave = np.pad(wave[:samples], (0, max(0, samples - len(wave))))
    wave = np.clip(wave, -config.peak * 0.99, config.peak * 0.99)
    rng = np.random.default_rng(config.seed)
    return (wave[None] + 1e-3 * rng.standard_normal((config.n_clips, samples))).astype(np.float32)


class Parametrisation(nn.Module):
    """What the optimiser moves: raw samples, or an STFT's log-magnitude and phase, then an amplitude bound."""

    def __init__(self, init: torch.Tensor, config: DreamConfig):
        super().__init__()
        self.param, self.bound, self.peak, self.samples = config.param, config.bound, config.peak, init.shape[-1]
        raw = self.unbound(init)
        self.register_buffer("window", torch.hann_window(N_FFT, device=init.device))
        if self.param == "wave":
            self.raw = nn.Parameter(raw)
        else:
            spec = torch.stft(raw, N_FFT, HOP, window=self.window, return_complex=True)
            self.log_mag = nn.Parameter(torch.log(spec.abs() + 1e-5))
            self.phase = nn.Parameter(torch.angle(spec))

    def unbound(self, wave: torch.Tensor) -> torch.Tensor:
        if self.bound == "clamp":
            return wave.clone()
        return self.peak * torch.atanh(torch.clamp(wave / self.peak, -0.999, 0.999))

    def forward(self) -> torch.Tensor:
        """The current waveforms, shape (n_clips, samples), every sample within ±peak."""
        if self.param == "wave":
            raw = self.raw
        else:
            spec = torch.polar(torch.exp(self.log_mag), self.phase)
            raw = torch.istft(spec, N_FFT, HOP, window=self.window, length=self.samples)
        if self.bound == "clamp":
            return torch.clamp(raw, -self.peak, self.peak)
        return self.peak * torch.tanh(raw / self.peak)


def high_frequency_penalty(waves: torch.Tensor) -> torch.Tensor:
    """Energy of the first difference relative to the signal's: 2 for white noise, near 0 for low tones."""
    diff = waves[:, 1:] - waves[:, :-1]
    return (diff.pow(2).mean(dim=1) / (waves.pow(2).mean(dim=1) + 1e-8)).mean()


def total_variation(mel: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring log-mel cells along time and frequency."""
    return (mel.diff(dim=-1).abs().mean() + mel.diff(dim=-2).abs().mean()) / 2


def time_shifted(waves: torch.Tensor, generator: torch.Generator, max_shift: float, sample_rate: int) -> torch.Tensor:
    """A random circular time shift of up to ``max_shift`` seconds per clip (gain, pitch and stretch come after,
    in the mel domain, from ``rater.augment``)."""
    limit = max(1, int(max_shift * sample_rate))
    shifts = torch.randint(-limit, limit + 1, (waves.shape[0],), generator=generator).tolist()
    return torch.stack([torch.roll(w, s) for w, s in zip(waves, shifts)])


def dream_objective(waves: torch.Tensor, scorer, config, generator: torch.Generator, augment: AugmentConfig,
                    disc: Discriminator | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The dreaming objective for a batch ``waves`` (n_clips, samples) and its named terms (all scalars).

    Mean rater score (of randomly time-shifted, mel-augmented views when ``config.robust``), minus ``tv_weight`` x
    log-mel total variation, minus ``hf_weight`` x high-frequency ratio, plus ``adv_weight`` x the critic's mean
    realness logit. Shared by raw-waveform and note-space dreaming (``config`` of either kind)."""
    if config.robust:
        views = time_shifted(waves, generator, config.max_shift, scorer.sample_rate)
        score = scorer.score_tensor(views, augment=augment, generator=generator)
    else:
        score = scorer.score_tensor(waves)
    terms = {"score": score.mean()}
    objective = terms["score"]
    if config.tv_weight > 0:
        terms["tv"] = total_variation(scorer.mel(waves))
        objective = objective - config.tv_weight * terms["tv"]
    if config.hf_weight > 0:
        terms["hf"] = high_frequency_penalty(waves)
        objective = objective - config.hf_weight * terms["hf"]
    if disc is not None:
        terms["realness"] = disc(waves).mean()
        objective = objective + config.adv_weight * terms["realness"]
    return objective, terms


def ascend(optimizer: torch.optim.Optimizer, objective: torch.Tensor) -> None:
    """One gradient-ascent step on ``objective``."""
    optimizer.zero_grad(set_to_none=True)
    (-objective).backward()
    optimizer.step()


def log_row(history: list[dict], writer, tag: str, row: dict) -> None:
    """Append ``row`` (with its ``step``) to ``history`` and write its other values as ``{tag}/{key}`` scalars."""
    history.append(row)
    if writer is not None:
        for key, value in row.items():
            if key != "step":
                writer.add_scalar(f"{tag}/{key}", value, row["step"])


def critic_step(disc, disc_opt, real, waves: torch.Tensor, config, rng, step: int, writer, tag: str) -> None:
    """Train the realness critic for ``config.disc_steps`` steps every ``config.disc_every`` (no-op without one)."""
    if disc is None or config.disc_steps <= 0 or step % config.disc_every:
        return
    for _ in range(config.disc_steps):
        stats = train_step(disc, disc_opt, real.batch(config.n_clips, rng).to(waves.device), waves.detach())
    if writer is not None:
        for key, value in stats.items():
            writer.add_scalar(f"{tag}/{key}", value, step)


def dream(
    scorer,
    config: DreamConfig,
    init: np.ndarray | None = None,
    real: RealCrops | None = None,
    heldout_real: torch.Tensor | None = None,
    discriminator: Discriminator | None = None,
    writer=None,
    tag: str = "dream",
    progress: bool = True,
) -> DreamResult:
    """Ascend ``scorer.score_tensor`` (a rater ``Scorer``) from ``init`` (default: seeded white noise).

    Regularised when ``config.robust`` / ``tv_weight`` / ``hf_weight`` are set, adversarial when ``adv_weight > 0``.

    ``real`` feeds the critic (needed when adversarial); ``heldout_real`` (real clips the critic never trains on)
    gives its held-out balanced accuracy against the final dreams.
    """
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    sample_rate = scorer.sample_rate
    device = scorer.device
    init = noise_init(config, sample_rate) if init is None else np.asarray(init, dtype=np.float32)
    if init.ndim != 2 or init.shape[0] != config.n_clips:
        raise ValueError(f"init must have shape (n_clips={config.n_clips}, samples), got {init.shape}.")
    param = Parametrisation(torch.from_numpy(init).to(device), config).to(device)
    optimizer = torch.optim.Adam(param.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    augment = AugmentConfig(pitch_semitones=config.pitch_semitones)
    disc, disc_opt = None, None
    if config.adv_weight > 0:
        if real is None:
            raise ValueError("Adversarial dreaming needs real clips: pass real=RealCrops(...) (undegraded corpus clips).")
        disc = (discriminator or Discriminator(sample_rate)).to(device).eval().requires_grad_(False)
        disc_opt = torch.optim.Adam(disc.parameters(), lr=config.disc_lr)
    history: list[dict] = []
    bar = progress_bar(total=config.steps, desc=f"dream {tag}", unit="step", disable=not progress)
    for step in range(config.steps + 1):
        waves = param()
        objective, terms = dream_objective(waves, scorer, config, generator, augment, disc)
        if step % config.log_every == 0 or step == config.steps:
            log_row(history, writer, tag, {"step": step, "objective": float(objective.detach()),
                                           **{k: float(v.detach()) for k, v in terms.items()}})
        if step == config.steps:
            break
        ascend(optimizer, objective)
        critic_step(disc, disc_opt, real, waves, config, rng, step, writer, tag)
        bar.update(1)
    bar.close()
    final = param().detach()
    result = DreamResult(
        waves=final.cpu().numpy().astype(np.float32),
        scores=np.asarray(scorer(list(final.cpu().numpy())), dtype=np.float32),
        history=history,
        config=config,
        discriminator=disc,
    )
    if disc is not None and heldout_real is not None:
        result.disc_accuracy = balanced_accuracy(disc, heldout_real.to(device), final)
        if writer is not None:
            writer.add_scalar(f"{tag}/disc_heldout_acc", result.disc_accuracy, config.steps)
    result.seconds_taken = time.perf_counter() - started
    return result


def spectral_flatness(waves: Sequence[np.ndarray]) -> np.ndarray:
    """Mean spectral flatness per clip (near 1 for white noise, near 0 for tonal music)."""
    import librosa  # noqa: PLC0415 - evaluation only

    return np.array([librosa.feature.spectral_flatness(y=np.asarray(w), n_fft=N_FFT, hop_length=HOP).mean()
                     for w in waves], dtype=np.float32)


def save_mel_png(path: Path, waves: np.ndarray, sample_rate: int, title: str) -> Path:
    """A grid of log-mel spectrograms in dB below each clip's peak, one panel per clip (written atomically)."""
    import librosa  # noqa: PLC0415
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    cols = min(4, len(waves))
    rows = -(-len(waves) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), squeeze=False)
    for ax, wave in zip(axes.flat, waves):
        mel = librosa.feature.melspectrogram(y=wave, sr=sample_rate, n_fft=N_FFT, hop_length=HOP, n_mels=64)
        ax.imshow(librosa.power_to_db(mel + 1e-10, ref=np.max), origin="lower", aspect="auto", vmin=-80, vmax=0)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return path


def save_outputs(folder: Path, result: DreamResult, sample_rate: int, writer=None, tag: str = "dream") -> dict:
    """WAVs, a mel PNG, scores.json (and best/median audio in TensorBoard) for one dreaming run.

    Two WAVs per dream: ``dream_NN.wav`` is exactly what the rater scored (its sample rate and level; evaluate.py
    scores these), ``listen_NN.wav`` the listening copy (``studio.listen``: 44.1 kHz, -16 LUFS, true peak <= -1
    dBFS), which TensorBoard gets too."""
    from studio.files import save_wav  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    listening = [listening_copy(wave, sample_rate)[0] for wave in result.waves]
    for i, wave in enumerate(result.waves):
        save_wav(folder / f"dream_{i:02d}.wav", wave, sample_rate)
        save_wav(folder / f"listen_{i:02d}.wav", listening[i], LISTEN_RATE)
    save_mel_png(folder / "mel.png", result.waves, sample_rate, f"{tag}: proxy {result.scores.mean():.3f}")
    summary = {
        "scores": result.scores.tolist(),
        "mean_score": float(result.scores.mean()),
        "disc_heldout_accuracy": result.disc_accuracy,
        "seconds_taken": result.seconds_taken,
        "config": asdict(result.config),
        "history": result.history,
    }
    write_json(folder / "scores.json", summary)
    if writer is not None:
        order = np.argsort(result.scores)
        for name, i in (("best", order[-1]), ("median", order[len(order) // 2])):
            writer.add_audio(f"{tag}/{name}", torch.from_numpy(listening[i])[None], result.config.steps,
                             sample_rate=LISTEN_RATE)
    return summary


def rater_path(path: str) -> Path:
    """The rater checkpoint to dream against; fails with the command that makes one when it is missing."""
    from rater.scorer import checkpoint_path  # noqa: PLC0415

    resolved = checkpoint_path(path or None)
    if not resolved.is_file():
        raise SystemExit(f"No trained rater at {resolved}: train one first with `python train.py --agent rater` "
                         "(or pass --rater PATH).")
    return resolved


def real_clips(data_dir: str, seed: int, samples: int, max_clips: int = 256) -> tuple[RealCrops, RealCrops]:
    """Undegraded corpus clips: the train split feeds the critic, the test split is held out for evaluation."""
    from rater.data.build import load_or_build  # noqa: PLC0415 - builds the dataset on first use

    clips = load_or_build(data_dir, seed=seed)
    train, test = (RealCrops(clips.waveforms(clips.undegraded(split)[:max_clips]), samples) for split in ("train", "test"))
    return train, test


def judge(waves: Sequence[np.ndarray], judges: Judges, discriminator: Discriminator | None) -> dict:
    """Mean score of each judge on ``waves``: proxy, held-out raters, gold listeners, critic, flatness."""
    waves = [np.asarray(w, dtype=np.float32) for w in waves]
    row = {name: float(np.mean(scores)) for name, scores in judges.score(waves).items()}
    if discriminator is not None:
        with torch.no_grad():
            device = next(discriminator.parameters()).device
            logits = discriminator(torch.from_numpy(np.stack(waves)).to(device))
        row["realness"] = float(torch.sigmoid(logits).mean())
    row["flatness"] = float(spectral_flatness(waves).mean())
    return row


def format_table(rows: dict[str, dict]) -> str:
    """A Markdown table, one row per dream mode or reference."""
    columns = list(next(iter(rows.values())))
    lines = ["| run | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{row.get(c, float('nan')):.4f}" for c in columns) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    from agents import note_dream  # noqa: PLC0415 - imports this module

    args = parse_args(Args, argv, prog="train.py --agent dream", description=__doc__)
    every = (*MODES, *note_dream.NOTE_MODES, *note_dream.SEARCH_MODES)
    if args.mode not in (*every, "compare"):
        raise SystemExit(f"--mode must be one of {', '.join((*every, 'compare'))}, got {args.mode!r}.")
    from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    checkpoint = rater_path(args.rater)
    judges = load_judges(checkpoint, device=args.device, reference_data=None)
    proxy = judges.proxy
    base = config_from_args(args)
    sample_rate = proxy.sample_rate
    init = noise_init(base, sample_rate) if args.init == "noise" else wav_init(args.init, base, sample_rate)
    chosen = every if args.mode == "compare" else (args.mode,)
    modes = tuple(m for m in chosen if m in MODES)
    out = Path(args.out)
    write_json(out / "config.json", {**asdict(args), "agent": "dream", "rater_checkpoint": str(checkpoint)})
    samples = init.shape[1]
    real, heldout_real = real_clips(args.data_dir, args.seed, samples) if "adversarial" in modes else (None, None)
    writer = SummaryWriter(str(out / "tb"))
    results: dict[str, DreamResult] = {}
    for mode in modes:
        critic = Discriminator.load(args.discriminator, proxy.device) if args.discriminator and mode == "adversarial" else None
        print(f"Dreaming {args.n_clips} x {args.seconds:g} s, mode {mode}, {args.steps} steps ...", flush=True)
        held = heldout_real.fixed(4 * args.n_clips) if heldout_real is not None else None
        result = dream(proxy, mode_config(mode, base), init, real, held, critic, writer, tag=mode)
        save_outputs(out / mode, result, sample_rate, writer, tag=mode)
        if result.discriminator is not None:
            result.discriminator.save(out / "checkpoints" / "discriminator.pt")
            print(f"  critic held-out balanced accuracy: {result.disc_accuracy:.3f}")
        print(f"  proxy score {result.scores.mean():.4f} in {result.seconds_taken:.1f} s -> {out / mode}", flush=True)
        results[mode] = result
    summary = {mode: {"proxy": float(r.scores.mean()), "seconds": r.seconds_taken} for mode, r in results.items()}
    note_modes = tuple(m for m in chosen if m not in MODES)
    if note_modes:
        notes = note_dream.run_modes(args, note_modes, judges, out, writer)
        summary.update({m: {"proxy": float(r.proxy_fluidsynth.mean()), "seconds": r.seconds_taken}
                        for m, r in notes["results"].items()})
    if args.mode == "compare":
        summary = note_dream.compare_all(results, init, heldout_real, notes, judges, out, args)
    writer.close()
    return summary
