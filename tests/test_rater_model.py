"""The rater CNN scores any length, ignores padding, and validates its configuration."""

import pytest
import torch

from rater.model import Rater, RaterConfig


def make_model(**kwargs) -> Rater:
    torch.manual_seed(0)
    return Rater(RaterConfig(**kwargs)).eval()


@pytest.mark.parametrize("frames", [1, 2, 94, 313])
def test_any_number_of_frames_scores(frames):
    model = make_model()
    out = model(torch.randn(3, 128, frames), torch.full((3,), frames))
    assert out.shape == (3,) and torch.isfinite(out).all()


def test_padding_does_not_change_scores():
    model = make_model(conv_layers=3, pooled=(16,))
    short, long = torch.randn(1, 128, 7), torch.randn(1, 128, 60)
    alone = torch.cat([model(short, torch.tensor([7])), model(long, torch.tensor([60]))])
    padded = torch.cat([torch.nn.functional.pad(short, (0, 53), value=-13.8), long])
    together = model(padded, torch.tensor([7, 60]))
    assert torch.allclose(alone, together, atol=1e-5)


def test_without_pooled_layers_score_is_mean_of_frame_scores():
    model = make_model(pooled=())
    logmel = torch.randn(2, 128, 20, requires_grad=True)
    lengths = torch.tensor([20, 12])
    features = model.frame_features(logmel, lengths)
    assert torch.all(features[1, :, 12:] == 0)
    frame_scores = model.head(features.transpose(1, 2))[..., 0]  # (B, frames)
    expected = torch.stack([frame_scores[0].mean(), frame_scores[1, :12].mean()])
    assert torch.allclose(model(logmel, lengths), expected, atol=1e-6)
    model(logmel, lengths).sum().backward()
    assert logmel.grad[1, :, 12:].abs().sum() == 0 and logmel.grad[1, :, :12].abs().sum() > 0


def test_input_stats_normalise():
    model = make_model()
    before = model(torch.full((1, 128, 5), 3.0), torch.tensor([5]))
    model.set_input_stats(torch.full((128,), 3.0), torch.ones(128))
    zero_input = make_model()(torch.zeros(1, 128, 5), torch.tensor([5]))
    assert torch.allclose(model(torch.full((1, 128, 5), 3.0), torch.tensor([5])), zero_input)
    assert not torch.allclose(before, zero_input)


def test_bad_config_and_input_are_refused():
    with pytest.raises(ValueError, match="odd"):
        RaterConfig(kernel_size=4)
    with pytest.raises(ValueError, match=">= 1"):
        RaterConfig(hidden=(64, 0))
    with pytest.raises(ValueError, match="batch, 128, frames"):
        make_model()(torch.randn(2, 64, 10), torch.tensor([10, 10]))
