"""Single tunes from the music21 corpus's ABC collections (Essen, O'Neill, Ryan's), parsed one tune at a time.

Why tune by tune: music21 parses a whole Essen opus file (hundreds of tunes) in ~40 s, but one tune cut out of
it (ABC tunes start at an ``X:`` line) in ~0.04 s. A build that wants a few hundred tunes spread over a
collection therefore splits the files itself and parses only the tunes it picks. Each parsed tune is cached
as ``<cache>/tune-<key>.pkl``, keyed by the music21 version, the parser version, the tune's id and its text.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rater.data import corpus
from studio.files import write_bytes

# ABC collections whose tunes can be melody sources. None of them is reserved for evaluation.
TUNE_COLLECTIONS = ("essenFolksong", "oneills1850", "ryansMammoth")
# music21's own parser test files inside the Essen folder, not part of the collection.
SKIPPED_FILES = re.compile(r"^(test|variant)")
TUNE_START = re.compile(r"(?m)^(?=X:)")
# Files the gold listeners' expectancy model is trained on (``TRAINING_SOURCES`` of rater/data/expectancy.py, from
# the listeners' branch): they never become clips, or training clips would sound less surprising than test clips.
NEVER_CLIPS = (
    "essenFolksong/ballad20.abc", "essenFolksong/ballad30.abc", "essenFolksong/ballad40.abc",
    "essenFolksong/ballad80.abc",
)  # fmt: skip


@dataclass(frozen=True)
class Tune:
    """One tune: ``number`` counts the ``X:`` blocks of ``path`` from 0."""

    path: Path
    number: int
    count: int  # tunes in the file

    @property
    def id(self) -> str:
        collection = corpus.collection_of(self.path)
        base = f"{collection}/{self.path.relative_to(corpus.corpus_root() / collection).as_posix()}"
        return base if self.count == 1 else f"{base}#{self.number}"


def split_tunes(text: str) -> list[str]:
    """The ``X:`` blocks of an ABC file, in order (text before the first one is dropped)."""
    return [block for block in TUNE_START.split(text) if block.startswith("X:")]


def read_tunes(path: Path) -> list[str]:
    return split_tunes(Path(path).read_text(encoding="latin-1"))


def collection_files(name: str) -> list[Path]:
    """The ABC files of a tune collection, sorted, without ``NEVER_CLIPS``; raises for reserved or unknown ones."""
    corpus.check_not_reserved(name)
    if name not in TUNE_COLLECTIONS:
        raise ValueError(f"{name!r} is not a tune collection; choose from {list(TUNE_COLLECTIONS)}.")
    root = corpus.corpus_root()
    return sorted(
        p
        for p in (root / name).rglob("*.abc")
        if not SKIPPED_FILES.match(p.name) and p.relative_to(root).as_posix() not in NEVER_CLIPS
    )


def select_tunes(sources: dict[str, int], exclude: list[Path] = ()) -> list[Tune]:
    """Pick ``count`` tunes per collection, evenly spaced over all its tunes (files in ``exclude`` left out).

    Same tunes for every seed, so adding a collection never moves another's picks.
    """
    excluded = {Path(p).resolve() for p in exclude}
    chosen = []
    for name, count in sources.items():
        everything = []
        for path in collection_files(name):
            if path.resolve() in excluded:
                continue
            n = len(read_tunes(path))
            everything.extend(Tune(path, k, n) for k in range(n))
        if not 0 < count <= len(everything):
            raise ValueError(f"Collection {name!r} has {len(everything)} usable tunes; ask for 1..{len(everything)}, "
                             f"got {count}.")
        picks = np.unique(np.linspace(0, len(everything) - 1, count).round().astype(int))
        chosen.extend(everything[i] for i in picks)
    return chosen


def tune_cache_key(tune: Tune, text: str) -> str:
    import music21  # noqa: PLC0415 - slow import, only needed when parsing

    payload = f"{music21.__version__}|{corpus.PARSE_VERSION}|{tune.id}|{text}"
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def parse_tune(tune: Tune, text: str) -> corpus.Piece | None:
    """One ABC tune's notes as a Piece (None when it has no notes)."""
    from music21 import converter  # noqa: PLC0415

    notes = corpus.score_notes(converter.parse(text, format="abc"))
    return corpus.Piece(tune.id, corpus.collection_of(tune.path), notes) if len(notes) else None


def load_tunes(path: Path, numbers: list[int], cache_dir: Path) -> list[corpus.Piece]:
    """Pieces for tunes ``numbers`` of the ABC file ``path``, from ``cache_dir`` when unchanged, else parsed."""
    texts = read_tunes(path)
    pieces = []
    for number in numbers:
        tune = Tune(Path(path), number, len(texts))
        cached = Path(cache_dir) / f"tune-{tune_cache_key(tune, texts[number])}.pkl"
        piece = None
        if cached.is_file():
            try:
                with cached.open("rb") as handle:
                    piece = pickle.load(handle)
            except (OSError, pickle.UnpicklingError, EOFError):
                cached.unlink(missing_ok=True)  # a damaged cache entry is parsed again below
        if not cached.is_file():
            piece = parse_tune(tune, texts[number])
            write_bytes(cached, pickle.dumps(piece, protocol=pickle.HIGHEST_PROTOCOL))
        if piece is not None:
            pieces.append(piece)
    return pieces


def group_by_file(tunes: list[Tune]) -> dict[Path, list[int]]:
    """Tune numbers per file, files in first-seen order."""
    groups: dict[Path, list[int]] = {}
    for tune in tunes:
        groups.setdefault(tune.path, []).append(tune.number)
    return groups
