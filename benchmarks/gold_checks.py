"""Measurements of the simulated listeners (issue 13), gold v1 and v2 side by side.

- ``transcription``: note F-measure (mir_eval, onset within 50 ms and pitch right, offsets ignored) of
  ``rater.data.transcribe`` on PianoEnv renders of test-split melodies and on multi-instrument excerpts.
- ``order``: on test-split melodies (top lines played through PianoEnv), how often gold prefers the real
  melody over its pitch shuffle, random pitches and random onsets (``benchmarks/listening.py``).
- ``degradations``: mean gold of clean test-split excerpts (piano, 6 s) and of each degradation at
  strengths 0.3 / 0.6 / 1.0 (same seed at every strength, so the same notes are touched, more of them).
- ``ceiling``: Spearman(gold, observed p) when the population's plays/likes sampling is applied to gold
  v2 of every clip of the built default dataset (the noise ceiling of any rater).
- ``speed``: clips per second on one core for 8-s clips, v1 and v2 in the same run (ratio).

The listeners and the default data's likes are simulated. Run from the repo root:
``python -m benchmarks.gold_checks [--parts transcription,order,degradations,ceiling,speed]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import mir_eval
import numpy as np
from scipy import stats

from benchmarks.listening import DEFAULT_DATA, EnvRenderer, piece_melodies, scramble, split_pieces
from rater.data import corpus, degrade
from rater.data.listeners import ListenerPopulation
from rater.data.popularity import popularity
from rater.data.transcribe import Transcriber

SR = 16000
SCRAMBLES = ("pitch_shuffle", "random_pitches", "random_onsets")
STRENGTHS = (0.3, 0.6, 1.0)


def _hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, float) - 69) / 12)


def note_f1(reference: np.ndarray, estimate: np.ndarray) -> float:
    """mir_eval note F-measure without offsets; notes are (pitch, onset_s, end_s, ...) rows."""
    reference, estimate = np.asarray(reference, float), np.asarray(estimate, float)
    if len(reference) == 0 or len(estimate) == 0:
        return float(len(reference) == len(estimate))
    ref_iv = np.column_stack([reference[:, 1], np.maximum(reference[:, 2], reference[:, 1] + 1e-3)])
    est_iv = np.column_stack([estimate[:, 1], np.maximum(estimate[:, 2], estimate[:, 1] + 1e-3)])
    return float(mir_eval.transcription.precision_recall_f1_overlap(
        ref_iv, _hz(reference[:, 0]), est_iv, _hz(estimate[:, 0]), offset_ratio=None)[2])


def excerpt_specs(pieces: list, n: int, seed: int, programs: tuple[int, ...]) -> list[tuple]:
    """(piece, spec) pairs of clean 6-s excerpts, one per piece (up to n), programs cycling."""
    out = []
    rng = np.random.default_rng(seed)
    for k, piece in enumerate(pieces[:n]):
        bpm = float(np.mean(corpus.COLLECTIONS[piece.collection].bpm))
        onsets = np.unique(piece.notes[:, 1])
        starts = onsets[(onsets <= max(0.0, piece.quarters - 6.0 * bpm / 60)) & (onsets == np.floor(onsets))]
        offset = float(rng.choice(starts)) if len(starts) else float(onsets[0])
        spec = corpus.ClipSpec(index=k, piece_id=piece.id, collection=piece.collection, program=programs[k % len(programs)],
                               degradation=degrade.CLEAN, strength=0.0, bpm=bpm, offset_q=offset, seconds=6.0,
                               seed=int(rng.integers(2**31)))
        out.append((piece, spec))
    return out


def test_pieces(data: Path) -> list:
    ids = set(split_pieces(data, "test"))
    pieces = []
    for rel in sorted({i.split("#")[0] for i in ids}):
        pieces += [p for p in corpus.load_pieces(corpus.corpus_root() / rel, Path("data/.cache")) if p.id in ids]
    return [p for p in pieces if p.quarters >= 8]


def part_transcription(args) -> None:
    tx = Transcriber(SR)
    render = EnvRenderer()
    f_env = []
    for m in piece_melodies(split_pieces(args.data, "test")):
        audio, notes = render(m["actions"])
        f_env.append(note_f1(np.array(notes, float), tx(audio)))
    render.close()
    print(f"transcription F (no offsets), PianoEnv renders of {len(f_env)} test-split melodies: "
          f"mean {np.mean(f_env):.3f}, median {np.median(f_env):.3f}, min {np.min(f_env):.3f}")
    from studio.synth import Renderer  # noqa: PLC0415

    renderer = Renderer(sample_rate=SR)
    rows = {}
    for piece, spec in excerpt_specs(test_pieces(args.data), 40, args.seed, tuple(sorted(corpus.PROGRAMS))):
        wave = corpus.render_clip(renderer, spec, piece.notes)
        ref = corpus.playable(corpus.excerpt_seconds(piece.notes, spec.offset_q, spec.bpm, spec.seconds), spec.seconds)
        ref = np.unique(ref[:, :3], axis=0)  # doubled notes (two voices in unison) count once
        rows.setdefault(corpus.PROGRAMS[spec.program], []).append(note_f1(ref, tx(wave)))
    renderer.close()
    allf = [f for v in rows.values() for f in v]
    print(f"multi-instrument excerpts (polyphonic, 6 s, {len(allf)} clips): mean F {np.mean(allf):.3f}; by program: "
          + ", ".join(f"{k} {np.mean(v):.2f}" for k, v in sorted(rows.items())))


def part_order(args) -> None:
    melodies = piece_melodies(split_pieces(args.data, "test"))
    render = EnvRenderer()
    rng = np.random.default_rng(args.seed)
    waves = {"real": [render(m["actions"])[0] for m in melodies]}
    for kind in SCRAMBLES:
        waves[kind] = [render(scramble(m["actions"], kind, rng))[0] for m in melodies]
    render.close()
    print(f"order: {len(melodies)} test-split melodies ({len({m['piece'] for m in melodies})} pieces), "
          "share of pairs where gold prefers the real melody")
    print(f"{'':8}" + "".join(f"{k:>16}" for k in SCRAMBLES) + f"{'mean gold real':>16}")
    for version in (1, 2):
        pop = ListenerPopulation(version=version)
        gold = {k: pop(v) for k, v in waves.items()}
        print(f"{'v' + str(version):8}" + "".join(f"{np.mean(gold['real'] > gold[k]):16.2f}" for k in SCRAMBLES)
              + f"{gold['real'].mean():16.3f}")


def part_degradations(args) -> None:
    from studio.synth import Renderer  # noqa: PLC0415

    renderer = Renderer(sample_rate=SR)
    specs = excerpt_specs(test_pieces(args.data), args.pieces, args.seed, (0,))
    waves = {("none", 0.0): []}
    for piece, spec in specs:
        waves[("none", 0.0)].append(corpus.render_clip(renderer, spec, piece.notes))
        for kind in degrade.DEGRADATIONS:
            for strength in STRENGTHS:
                degraded = corpus.ClipSpec(**{**spec.__dict__, "degradation": kind, "strength": strength})
                waves.setdefault((kind, strength), []).append(corpus.render_clip(renderer, degraded, piece.notes))
    renderer.close()
    print(f"degradations: mean gold of {len(specs)} test-split excerpts (piano, 6 s), strengths {STRENGTHS}")
    pops = {v: ListenerPopulation(version=v) for v in (1, 2)}
    clean = {v: float(pops[v](waves[("none", 0.0)]).mean()) for v in (1, 2)}
    print(f"{'':15}{'v1 0.3/0.6/1.0':>26}{'v2 0.3/0.6/1.0':>26}  v2 monotone")
    print(f"{'clean':15}{clean[1]:26.3f}{clean[2]:26.3f}")
    for kind in degrade.DEGRADATIONS:
        cells, mono = [], None
        for v in (1, 2):
            means = [float(pops[v](waves[(kind, s)]).mean()) for s in STRENGTHS]
            cells.append("/".join(f"{m:.3f}" for m in means))
            if v == 2:
                mono = clean[2] > means[0] > means[1] > means[2]
        print(f"{kind:15}{cells[0]:>26}{cells[1]:>26}  {'yes' if mono else 'NO'}")


def part_ceiling(args) -> None:
    from rater.data.clips import Clips  # noqa: PLC0415

    clips = Clips.load(args.data)
    meta = clips.meta
    pop = ListenerPopulation(version=2)
    started = time.perf_counter()
    gold = np.concatenate([pop(clips.waveforms(range(s, min(s + 64, len(meta))))) for s in range(0, len(meta), 64)])
    seconds = time.perf_counter() - started
    for version, g in (("v1 (as built)", meta["gold"].to_numpy()), ("v2", gold)):
        plays, likes = pop.simulate_counts(np.clip(g, 0, 1), np.random.default_rng([0, 1]))
        p = popularity(plays, likes)
        print(f"noise ceiling {version}: Spearman(gold, p) {stats.spearmanr(g, p)[0]:.3f}, "
              f"Pearson {stats.pearsonr(g, p)[0]:.3f} over {len(g)} clips of {args.data}")
    print(f"  v2 scored {len(meta)} clips in {seconds:.1f} s; mean gold v2 by degradation: "
          + ", ".join(f"{k} {v:.2f}" for k, v in meta.assign(g2=gold).groupby("degradation")["g2"].mean().items()))


def part_speed(args) -> None:
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    from studio.synth import Renderer  # noqa: PLC0415

    renderer = Renderer(sample_rate=SR)
    waves = []
    for piece, spec in excerpt_specs(test_pieces(args.data), 24, args.seed, (0, 40, 73)):
        spec = corpus.ClipSpec(**{**spec.__dict__, "seconds": 8.0})
        waves.append(corpus.render_clip(renderer, spec, piece.notes))
    renderer.close()
    rates = {}
    for version in (1, 2):
        pop = ListenerPopulation(version=version)
        pop(waves[:2])  # warm-up
        best = np.inf
        for _ in range(3):
            started = time.perf_counter()
            pop(waves)
            best = min(best, time.perf_counter() - started)
        rates[version] = len(waves) / best
    print(f"speed (8-s clips, one thread, best of 3 over {len(waves)} clips; machine shared and loaded): "
          f"v1 {rates[1]:.0f} clips/s, v2 {rates[2]:.0f} clips/s, v2/v1 cost ratio {rates[1] / rates[2]:.2f}")


PARTS = {"transcription": part_transcription, "order": part_order, "degradations": part_degradations,
         "ceiling": part_ceiling, "speed": part_speed}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {','.join(PARTS)}")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="built default dataset (test split, clips)")
    parser.add_argument("--pieces", type=int, default=12, help="test-split pieces for the degradation table")
    parser.add_argument("--seed", type=int, default=0, help="seed for excerpts and scrambles")
    args = parser.parse_args(argv)
    for part in args.parts.split(","):
        if part not in PARTS:
            raise SystemExit(f"Unknown part {part!r}; choose from {', '.join(PARTS)}.")
        PARTS[part](args)


if __name__ == "__main__":
    main()
