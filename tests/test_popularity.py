"""Popularity p = likes/plays*ln(likes): values, edge cases and the validity mask."""

import math

import numpy as np
import pytest

from rater.data.popularity import InvalidCounts, popularity, validate_counts


def test_popularity_matches_formula():
    p = popularity([100, 10, 7], [50, 10, 2])
    assert p == pytest.approx([0.5 * math.log(50), math.log(10), 2 / 7 * math.log(2)])


def test_likes_at_most_one_give_zero():
    assert popularity([5, 5, 1], [0, 1, 1]).tolist() == [0.0, 0.0, 0.0]


def test_more_evidence_at_same_rate_is_more_popular():
    assert popularity([1000], [500])[0] > popularity([10], [5])[0]


def test_validate_counts_masks_each_kind_of_bad_row():
    plays = [10, 0, 5, -3, np.nan, 4.5, 10, np.inf]
    likes = [3, 0, 6, 0, 1, 1, -1, 1]
    assert validate_counts(plays, likes).tolist() == [True, False, False, False, False, False, False, False]


@pytest.mark.parametrize("plays,likes,row", [([10, 0], [1, 0], 1), ([3, 5, 5], [1, 1, 9], 2), ([2.5], [1], 0)])
def test_invalid_counts_raise_naming_the_row(plays, likes, row):
    with pytest.raises(InvalidCounts, match=f"row {row}"):
        popularity(plays, likes)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="same shape"):
        validate_counts([1, 2], [1])
