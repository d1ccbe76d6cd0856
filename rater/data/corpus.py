"""Real music from the music21 corpus (shipped with the package, no network) as note lists and rendered clips.

Why a cache: parsing is the slow part (~0.1 s a Bach chorale, seconds an O'Neill opus, ~40 s an Essen
opus), so each parsed corpus file is stored once as ``<cache>/notes-<key>.pkl``, keyed by the music21
version, the file's path, size and mtime, and the parser version here; anything else re-parses.
Notes are kept in quarter lengths (``pitch, start_q, end_q, velocity``) and turned into seconds per clip,
at a tempo drawn for that clip.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

from studio.files import write_bytes

import numpy as np

from rater.data import degrade

PARSE_VERSION = 1  # bump when parse_file's output changes, so cached note lists are rebuilt
DEFAULT_VELOCITY = 80
FADE_SECONDS = 0.02
CLIP_SECONDS = (4.0, 8.0)
CLEAN_FRACTION = 0.3
# General MIDI programs the clean and degraded excerpts are played on.
PROGRAMS = {
    0: "piano", 19: "church organ", 48: "strings", 73: "flute", 40: "violin", 24: "nylon guitar", 68: "oboe", 46: "harp",
}  # fmt: skip


@dataclass(frozen=True)
class Collection:
    """A music21 corpus folder: which files to read and a plausible tempo range (quarter notes per minute)."""

    name: str
    suffixes: tuple[str, ...]
    bpm: tuple[float, float]


COLLECTIONS = {
    "bach": Collection("bach", (".mxl",), (66.0, 96.0)),
    "palestrina": Collection("palestrina", (".krn",), (120.0, 168.0)),
    "ryansMammoth": Collection("ryansMammoth", (".abc",), (96.0, 138.0)),
    "oneills1850": Collection("oneills1850", (".abc",), (96.0, 138.0)),
    "monteverdi": Collection("monteverdi", (".mxl",), (96.0, 132.0)),
    "essenFolksong": Collection("essenFolksong", (".abc",), (80.0, 120.0)),
}
# Files per collection for the default dataset, sized so a cold parse fits the build budget on 2 cores;
# Essen is left out because one opus file takes ~40 s to parse (ask for it with sources={"essenFolksong": 1}).
DEFAULT_SOURCES = {"bach": 150, "palestrina": 60, "ryansMammoth": 120, "oneills1850": 1, "monteverdi": 20}
# music21 collections reserved for evaluation: no dataset, prior, expectancy model, calibration or tuning reads them.
RESERVED = (
    "airdsAirs", "miscFolk", "mozart", "haydn", "beethoven", "josquin", "trecento", "schumann_clara", "joplin",
)  # fmt: skip


@dataclass(frozen=True)
class Piece:
    """One tune or movement: ``notes`` is (N, 4) float64 of pitch, start_q, end_q, velocity, sorted by start."""

    id: str
    collection: str
    notes: np.ndarray

    @property
    def quarters(self) -> float:
        return float(self.notes[:, 2].max()) if len(self.notes) else 0.0


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render one clip reproducibly."""

    index: int
    piece_id: str
    collection: str
    program: int
    degradation: str
    strength: float
    bpm: float
    offset_q: float
    seconds: float
    seed: int


def corpus_root() -> Path:
    from music21 import common  # noqa: PLC0415 - music21 import is slow; only parsing paths need it

    return Path(common.getCorpusFilePath())


def check_not_reserved(name: str) -> None:
    """Raise ValueError when ``name`` is a collection reserved for evaluation."""
    if name in RESERVED:
        raise ValueError(f"The music21 collection {name!r} is reserved for evaluation (corpus.RESERVED) and goes "
                         "into no dataset, prior or model; pick another collection.")


def select_sources(sources: dict[str, int]) -> list[Path]:
    """Pick ``count`` files per collection, evenly spaced over its sorted listing (same files for every seed)."""
    root = corpus_root()
    chosen = []
    for name, count in sources.items():
        check_not_reserved(name)
        if name not in COLLECTIONS:
            raise ValueError(f"Unknown corpus collection {name!r}; choose from {sorted(COLLECTIONS)}.")
        files = sorted(p for p in (root / name).rglob("*") if p.suffix in COLLECTIONS[name].suffixes)
        if not 0 < count <= len(files):
            raise ValueError(f"Collection {name!r} has {len(files)} files; ask for 1..{len(files)}, got {count}.")
        picks = np.linspace(0, len(files) - 1, count).round().astype(int)
        chosen.extend(files[i] for i in np.unique(picks))
    return chosen


def collection_of(path: Path) -> str:
    parts = path.parts
    return parts[len(parts) - 1 - parts[::-1].index("corpus") + 1]


def score_notes(score) -> np.ndarray:
    """All notes of a music21 score as (N, 4) float64 ``pitch, start_q, end_q, velocity``, sorted by onset."""
    rows = []
    for part in score.parts if score.parts else [score]:
        for element in part.flatten().stripTies().notes:
            length = float(element.quarterLength)
            if length <= 0:  # grace notes
                continue
            start = float(element.offset)
            velocity = element.volume.velocity or DEFAULT_VELOCITY
            for pitch in element.pitches:
                rows.append((pitch.midi, start, start + length, velocity))
    notes = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return notes[np.argsort(notes[:, 1], kind="stable")]


def parse_file(path: Path) -> list[Piece]:
    """Parse one corpus file (a score or an opus of tunes) into pieces with at least one note."""
    from music21 import converter, stream  # noqa: PLC0415

    parsed = converter.parse(path)
    scores = parsed.scores if isinstance(parsed, stream.Opus) else [parsed]
    collection = collection_of(path)
    base = f"{collection}/{path.relative_to(corpus_root() / collection).as_posix()}"
    pieces = []
    for number, score in enumerate(scores):
        notes = score_notes(score)
        if len(notes):
            pieces.append(Piece(base if len(scores) == 1 else f"{base}#{number}", collection, notes))
    return pieces


def cache_key(path: Path) -> str:
    import music21  # noqa: PLC0415

    stat = path.stat()
    text = f"{music21.__version__}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{PARSE_VERSION}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def load_pieces(path: Path, cache_dir: Path) -> list[Piece]:
    """Parsed pieces of one corpus file, from ``cache_dir`` when its inputs are unchanged, else parsed and cached."""
    cached = Path(cache_dir) / f"notes-{cache_key(path)}.pkl"
    if cached.is_file():
        try:
            with cached.open("rb") as handle:
                return pickle.load(handle)
        except (OSError, pickle.UnpicklingError, EOFError):
            pass  # a damaged cache entry is rebuilt below
    pieces = parse_file(path)
    write_bytes(cached, pickle.dumps(pieces, protocol=pickle.HIGHEST_PROTOCOL))
    return pieces


def plan_clips(pieces: list[Piece], n_clips: int, seed: int) -> list[ClipSpec]:
    """Draw ``n_clips`` clips cycling over shuffled pieces: excerpt, tempo, program, degradation, strength."""
    pieces = [p for p in pieces if p.quarters * 60.0 / COLLECTIONS[p.collection].bpm[1] >= CLIP_SECONDS[0]]
    if not pieces:
        raise ValueError("No pieces to make clips from: the selected corpus files had no notes (or none 4 s long).")
    rng = np.random.default_rng(seed)
    programs = sorted(PROGRAMS)
    specs, order = [], []
    for index in range(n_clips):
        if not order:
            order = list(rng.permutation(len(pieces)))
        piece = pieces[order.pop()]
        low, high = COLLECTIONS[piece.collection].bpm
        bpm = float(rng.uniform(low, high))
        seconds = round(float(rng.uniform(*CLIP_SECONDS)), 2)
        span_q = seconds * bpm / 60.0
        onsets = np.unique(piece.notes[:, 1])
        starts = onsets[(onsets <= max(0.0, piece.quarters - span_q)) & (onsets == np.floor(onsets))]
        offset_q = float(rng.choice(starts)) if len(starts) else float(onsets[0])
        if rng.random() < CLEAN_FRACTION:
            degradation, strength = degrade.CLEAN, 0.0
        else:
            degradation = str(rng.choice(degrade.DEGRADATIONS))
            strength = round(1.0 - 0.95 * float(rng.random()), 3)
        specs.append(
            ClipSpec(
                index=index,
                piece_id=piece.id,
                collection=piece.collection,
                program=int(rng.choice(programs)),
                degradation=degradation,
                strength=strength,
                bpm=round(bpm, 2),
                offset_q=offset_q,
                seconds=seconds,
                seed=int(rng.integers(2**31)),
            )
        )
    return specs


def excerpt_seconds(notes_q: np.ndarray, offset_q: float, bpm: float, seconds: float) -> np.ndarray:
    """Notes starting in a window of three clip lengths from ``offset_q``, in seconds from the excerpt start."""
    per_q = 60.0 / bpm
    window = (notes_q[:, 1] >= offset_q) & (notes_q[:, 1] < offset_q + 3 * seconds / per_q)
    notes = notes_q[window].copy()
    notes[:, 1:3] = (notes[:, 1:3] - offset_q) * per_q
    return notes


def playable(notes: np.ndarray, seconds: float) -> np.ndarray:
    """Keep notes that start inside the clip with a valid MIDI pitch; clamp velocity and minimum length."""
    notes = notes[(notes[:, 1] < seconds) & (notes[:, 0] >= 0) & (notes[:, 0] <= 127)].copy()
    notes[:, 0] = np.round(notes[:, 0])
    notes[:, 3] = np.clip(np.round(notes[:, 3]), 1, 127)
    notes[:, 2] = np.clip(notes[:, 2], notes[:, 1] + 0.03, seconds + 0.5)
    return notes


def render_clip(renderer, spec: ClipSpec, notes_q: np.ndarray) -> np.ndarray:
    """Render one planned clip: excerpt, degrade, synthesise, crop to ``spec.seconds`` with a short fade."""
    degrade.check_degradation(spec.degradation, spec.strength)
    rng = np.random.default_rng(spec.seed)
    sr = renderer.sample_rate
    notes = excerpt_seconds(notes_q, spec.offset_q, spec.bpm, spec.seconds)
    if spec.degradation in degrade.NOTE_DEGRADATIONS:
        notes = degrade.NOTE_DEGRADATIONS[spec.degradation](notes, spec.strength, rng)
    frames = int(round(spec.seconds * sr))
    wave = np.zeros(frames, dtype=np.float32)
    groups = [(notes, 0.0)]
    if spec.degradation == "detune":
        groups = degrade.detune_split(notes, spec.strength, rng)
    for group, cents in groups:
        group = playable(group, spec.seconds)
        if len(group):
            rendered = renderer.render_notes(group, program=spec.program, tail_seconds=0.0, detune_cents=cents)
            n = min(frames, len(rendered))
            wave[:n] += rendered[:n]
    fade = min(frames, int(FADE_SECONDS * sr))
    wave[frames - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    if spec.degradation in degrade.AUDIO_DEGRADATIONS:
        wave = degrade.degrade_audio(wave, spec.degradation, spec.strength, rng, sr)
    return np.clip(wave, -1.0, 1.0).astype(np.float32)
