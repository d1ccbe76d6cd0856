"""The log-frequency front end and the tonal rater: pitch geometry, equivariance, key invariance, masking."""

import numpy as np
import pytest
import torch

from rater.logfreq import LogFreq, LogFreqConfig, augment_logfreq, filterbank, transpose
from rater.tonal import TonalConfig, TonalRater

SR = 16000


def tone(pitch: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.2 * np.sin(2 * np.pi * LogFreqConfig.pitch_hz(pitch) * t)).astype(np.float32)


def test_filterbank_rows_average_and_cover_every_bin():
    config = LogFreqConfig()
    bank = filterbank(config)
    assert bank.shape == (config.n_bins, config.n_fft // 2 + 1)
    assert np.allclose(bank.sum(1), 1.0, atol=1e-5) and (bank >= 0).all()


@pytest.mark.parametrize("pitch", [45, 60, 67.5, 81])
def test_a_tone_peaks_at_its_pitch_bin_and_transposition_shifts_it(pitch):
    config = LogFreqConfig()
    front = LogFreq(config)
    spec = front(torch.from_numpy(tone(pitch)))[0].mean(-1)
    expected = int(round((pitch - config.low_pitch) * config.bins_per_semitone))
    assert int(spec.argmax()) == expected
    up = front(torch.from_numpy(tone(pitch + 3)))[0].mean(-1)
    assert int(up.argmax()) == expected + 3 * config.bins_per_semitone


def test_frames_and_bad_configs():
    config = LogFreqConfig()
    assert LogFreq(config)(torch.zeros(2, 16000)).shape == (2, config.n_bins, config.frames(16000))
    with pytest.raises(ValueError, match="Nyquist"):
        LogFreqConfig(octaves=9)
    with pytest.raises(ValueError, match="batch, samples"):
        LogFreq()(torch.zeros(1, 1, 100))


def test_transpose_and_augment():
    spec = torch.randn(2, 144, 10)
    shifted = transpose(spec, torch.tensor([4, -2]), fill=-13.8)
    assert torch.equal(shifted[0, 4:], spec[0, :-4]) and torch.all(shifted[0, :4] == -13.8)
    assert torch.equal(shifted[1, :-2], spec[1, 2:])
    lengths = torch.tensor([10, 7])
    a = augment_logfreq(spec, lengths, torch.Generator().manual_seed(0), 6.0, 2, 0.1)
    b = augment_logfreq(spec, lengths, torch.Generator().manual_seed(0), 6.0, 2, 0.1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0][:, :, :7], spec[:, :, :7])
    with pytest.raises(ValueError, match="stretch"):
        augment_logfreq(spec, lengths, torch.Generator(), 0.0, 0, 1.5)


def make_model(**kwargs) -> TonalRater:
    torch.manual_seed(0)
    return TonalRater(TonalConfig(**kwargs)).eval()


@pytest.mark.parametrize("frames", [1, 2, 31, 250])
def test_any_number_of_frames_scores(frames):
    out = make_model()(torch.randn(3, 144, frames), torch.full((3,), frames))
    assert out.shape == (3,) and torch.isfinite(out).all()


OPTIONS = [{}, {"summary": True, "correlate": True}]


@pytest.mark.parametrize("options", OPTIONS)
def test_padding_does_not_change_scores(options):
    model = make_model(**options)
    short, long = torch.randn(1, 144, 7), torch.randn(1, 144, 60)
    alone = torch.cat([model(short, torch.tensor([7])), model(long, torch.tensor([60]))])
    padded = torch.cat([torch.nn.functional.pad(short, (0, 53), value=5.0), long])
    assert torch.allclose(alone, model(padded, torch.tensor([7, 60])), atol=1e-5)


@pytest.mark.parametrize("options", OPTIONS)
def test_key_readout_is_transposition_invariant_and_differentiable(options):
    """Whole-semitone transpositions (energy away from the edges) leave the key fit and DFT features unchanged."""
    model = make_model(**options)
    spec = torch.full((1, 144, 40), -10.0)
    spec[:, 48:96] = torch.randn(1, 48, 40)
    shifted = transpose(spec, torch.tensor([2 * 5]), fill=-10.0)
    c = model.config
    key = slice(2 * c.temporal_channels, 2 * c.temporal_channels + c.n_keys + 7 * c.front_channels)
    lengths = torch.tensor([40])
    a, b = model.features(spec, lengths)[0][0, key], model.features(shifted, lengths)[0][0, key]
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(model(spec, lengths), model(transpose(spec, torch.tensor([1]), fill=-10.0), lengths))
    spec.requires_grad_(True)
    model(spec, lengths).sum().backward()
    assert spec.grad.abs().sum() > 0


def test_aux_head_shape_and_bad_input():
    model = make_model()
    score, aux = model.forward_with_aux(torch.randn(2, 144, 21), torch.tensor([21, 9]))
    assert score.shape == (2,) and aux.shape == (2, 2, 72, 11)
    with pytest.raises(ValueError, match="batch, 144, frames"):
        model(torch.randn(2, 128, 10), torch.tensor([10, 10]))
    with pytest.raises(ValueError, match="whole octaves"):
        TonalConfig(n_bins=100)
