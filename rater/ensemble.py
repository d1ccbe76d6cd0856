"""Conservative ensemble rewards (Coste et al. 2024) and the small statistics the rater reports use.

K reward members differ by seed and by a bootstrap sample of the training pieces. Their scores combine
into one reward that is cautious where they disagree: ``uwo`` (uncertainty-weighted optimisation) is
``mean - lambda * variance`` over the members, ``wco`` (worst-case optimisation) is their ``min``, and
``mean`` is the plain average. All work in the rater's normalised target units (z-scores of ``p``), so
``lambda`` does not depend on the scale of ``p``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

RULES = ("uwo", "wco", "mean")
LAMBDAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def combine(members: torch.Tensor, rule: str, lam: float = 0.0) -> torch.Tensor:
    """Combine member scores (K, B) (normalised units) into one reward per clip (B,); differentiable.

    ``uwo``: ``mean - lam * var`` (population variance over the K members); ``wco``: ``min``; ``mean``.
    """
    if rule not in RULES:
        raise ValueError(f"Unknown ensemble rule {rule!r}; use one of {list(RULES)}.")
    if members.dim() != 2 or members.shape[0] < 1:
        raise ValueError(f"combine expects member scores of shape (K >= 1, batch), got {tuple(members.shape)}.")
    if rule == "wco":
        return members.min(0).values
    mean = members.mean(0)
    if rule == "mean" or lam == 0:
        return mean
    return mean - lam * members.var(0, unbiased=False)


def choose_lambda(members: np.ndarray, target: np.ndarray, tolerance: float, lambdas=LAMBDAS) -> tuple[float, dict]:
    """The most conservative ``lambda`` whose ``uwo`` validation Spearman is within ``tolerance`` of the best.

    ``members`` (K, N) normalised validation predictions, ``target`` (N,). Returns (lambda, {lambda: Spearman}).
    Only ever call this with the validation split: it is a choice.
    """
    from scipy.stats import spearmanr  # noqa: PLC0415

    scores = {}
    for lam in lambdas:
        reward = combine(torch.as_tensor(members, dtype=torch.float64), "uwo", lam).numpy()
        scores[float(lam)] = float(spearmanr(reward, target).statistic)
    best = max(scores.values())
    return max(lam for lam, s in scores.items() if s >= best - tolerance), scores


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval (lower, upper) of a rate ``successes / n`` (ties may count 1/2)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (centre - half, centre + half)


def bootstrap_rows(rows: np.ndarray, sources: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A bootstrap sample of ``rows`` by source piece: pieces drawn with replacement, all of a piece's rows each time."""
    pieces = np.unique(sources[rows])
    drawn = rng.choice(pieces, size=len(pieces), replace=True)
    counts = dict(zip(*np.unique(drawn, return_counts=True)))
    return np.concatenate([np.repeat(rows[sources[rows] == piece], counts.get(piece, 0)) for piece in pieces])
