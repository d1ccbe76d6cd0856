"""Conservative ensemble rules, the validation choice of lambda, Wilson intervals and piece bootstraps."""

import numpy as np
import pytest
import torch

from rater.ensemble import bootstrap_rows, choose_lambda, combine, wilson


def test_combine_rules():
    members = torch.tensor([[1.0, 0.0], [3.0, 0.0], [2.0, 0.0]])
    assert torch.allclose(combine(members, "mean"), torch.tensor([2.0, 0.0]))
    assert torch.allclose(combine(members, "wco"), torch.tensor([1.0, 0.0]))
    assert torch.allclose(combine(members, "uwo", 0.5), torch.tensor([2.0 - 0.5 * 2 / 3, 0.0]))
    with pytest.raises(ValueError, match="rule"):
        combine(members, "max")


def test_choose_lambda_is_the_most_conservative_within_tolerance():
    rng = np.random.default_rng(0)
    target = rng.standard_normal(200)
    agree = np.stack([target + 0.3 * rng.standard_normal(200) for _ in range(5)])
    lam, scores = choose_lambda(agree, target, tolerance=1.0)
    assert lam == max(scores) and len(scores) == 6
    # Members that disagree wildly exactly on the best clips: penalising variance costs Spearman.
    noisy = agree.copy()
    noisy[:, target > 1] += rng.standard_normal((5, int((target > 1).sum()))) * 5
    lam, scores = choose_lambda(noisy, target, tolerance=0.0)
    assert scores[lam] == max(scores.values()) and scores[4.0] < scores[0.0]


def test_wilson_interval():
    low, high = wilson(80, 100)
    assert low == pytest.approx(0.7111, abs=1e-3) and high == pytest.approx(0.8666, abs=1e-3)
    assert wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12) and wilson(10, 10)[1] == pytest.approx(1.0)


def test_bootstrap_rows_resample_whole_pieces():
    sources = np.array(["a", "a", "b", "c", "c", "c", "d"])
    rows = np.arange(7)
    drawn = bootstrap_rows(rows, sources, np.random.default_rng(1))
    counts = {s: int((sources[drawn] == s).sum()) for s in "abcd"}
    assert sum(counts[s] // max(1, (sources == s).sum()) for s in "abcd") == 4  # four pieces drawn
    assert all(counts[s] % (sources == s).sum() == 0 for s in "abcd")
    assert np.array_equal(drawn, bootstrap_rows(rows, sources, np.random.default_rng(1)))
