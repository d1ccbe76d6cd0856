"""The popularity target the rater learns: ``p = likes / plays * ln(likes)``, in one place.

The like *rate* alone rewards a clip liked once in one play as much as a hit; the ``ln(likes)`` factor
weighs the rate by how much evidence stands behind it. Every consumer (dataset builders, ingestion, the
rater's training loop) calls :func:`popularity` so the definition and its edge cases cannot drift apart.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


class InvalidCounts(ValueError):
    """Play/like counts that cannot define a popularity (the message names the first bad row)."""


def validate_counts(plays: ArrayLike, likes: ArrayLike) -> np.ndarray:
    """Mask of valid rows: finite, integer-valued, ``plays > 0`` and ``0 <= likes <= plays``."""
    plays = np.asarray(plays, dtype=np.float64)
    likes = np.asarray(likes, dtype=np.float64)
    if plays.shape != likes.shape:
        raise ValueError(f"plays and likes must have the same shape, got {plays.shape} and {likes.shape}.")
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(plays) & np.isfinite(likes)
        integer = finite & (np.floor(plays) == plays) & (np.floor(likes) == likes)
        return integer & (plays > 0) & (likes >= 0) & (likes <= plays)


def popularity(plays: ArrayLike, likes: ArrayLike) -> np.ndarray:
    """Popularity ``p = likes / plays * ln(likes)`` per row, as float64.

    Edge cases: ``likes <= 1`` gives ``p = 0`` (``ln(1) = 0``; ``ln(0)`` is undefined and a clip nobody
    liked is as unpopular as one liked once). Rows with ``plays <= 0``, ``likes > plays``, negative,
    non-finite or non-integer counts are invalid: this raises :class:`InvalidCounts` naming the first one;
    use :func:`validate_counts` to drop such rows first.
    """
    plays = np.asarray(plays, dtype=np.float64)
    likes = np.asarray(likes, dtype=np.float64)
    valid = validate_counts(plays, likes)
    if not valid.all():
        row = int(np.flatnonzero(~valid.ravel())[0])
        raise InvalidCounts(
            f"Invalid counts at row {row}: plays={plays.ravel()[row]!r}, likes={likes.ravel()[row]!r}. "
            "Counts must be finite integers with plays > 0 and 0 <= likes <= plays; "
            "drop bad rows with rater.data.popularity.validate_counts first."
        )
    safe_likes = np.maximum(likes, 1.0)
    return np.where(likes > 1, likes / plays * np.log(safe_likes), 0.0)
