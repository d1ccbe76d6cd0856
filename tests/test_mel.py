"""The torch log-mel frontend matches librosa, handles any length, and is differentiable; augmentation too."""

import librosa
import numpy as np
import pytest
import torch

from rater.augment import AugmentConfig, augment, hz_to_mel, mel_to_hz, pitch_shift, time_stretch
from rater.mel import LogMel, MelConfig

SR = 16000


def tone(freq: float, seconds: float, noise: float = 0.01, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)).astype(np.float32)


def test_matches_librosa_melspectrogram():
    config = MelConfig()
    wave = tone(440.0, 3.0) + tone(1375.0, 3.0, noise=0.0)
    ours = LogMel(config)(torch.from_numpy(wave))[0].numpy()
    power = librosa.feature.melspectrogram(
        y=wave, sr=SR, n_fft=config.n_fft, hop_length=config.hop, n_mels=config.n_mels, fmin=config.fmin,
        fmax=config.fmax, power=config.power, center=True, pad_mode="constant",
    )  # fmt: skip
    reference = np.log(power + config.log_floor)
    assert ours.shape == reference.shape == (128, config.frames(wave.size))
    # Tolerance: 1e-4 of the log range (float32 STFT vs librosa's).
    assert np.abs(ours - reference).max() < 1e-4 * (reference.max() - reference.min())


@pytest.mark.parametrize("n_samples", [1, 100, 3 * SR, 10 * SR])
def test_any_length_gives_expected_frames(n_samples):
    mel = LogMel()
    out = mel(torch.from_numpy(tone(220.0, n_samples / SR)))
    assert out.shape == (1, 128, 1 + n_samples // 512)
    assert torch.isfinite(out).all()


def test_zero_padding_leaves_valid_frames_unchanged():
    mel = LogMel()
    wave = torch.from_numpy(tone(330.0, 2.0))
    alone = mel(wave)[0]
    padded = mel(torch.nn.functional.pad(wave, (0, 12345)))[0, :, : alone.shape[-1]]
    assert torch.allclose(alone, padded, atol=1e-4)


def test_gradient_reaches_waveform():
    wave = torch.from_numpy(tone(440.0, 1.0)).requires_grad_(True)
    LogMel()(wave).mean().backward()
    assert wave.grad is not None and torch.isfinite(wave.grad).all() and wave.grad.abs().sum() > 0


def test_bad_config_and_shape_are_refused():
    with pytest.raises(ValueError, match="fmax"):
        MelConfig(fmax=9000.0)
    with pytest.raises(ValueError, match="batch, samples"):
        LogMel()(torch.zeros(2, 2, 100))


def test_mel_scale_matches_librosa():
    hz = torch.tensor([50.0, 700.0, 1000.0, 4000.0, 8000.0], dtype=torch.float64)
    assert np.allclose(hz_to_mel(hz).numpy(), librosa.hz_to_mel(hz.numpy()))
    assert torch.allclose(mel_to_hz(hz_to_mel(hz)), hz)


def test_pitch_shift_by_an_octave_moves_the_peak_to_the_octave_bin():
    mel = LogMel()
    logmel = mel(torch.from_numpy(np.stack([tone(440.0, 1.0, 0.0), tone(880.0, 1.0, 0.0)])))
    shifted = pitch_shift(logmel[:1], torch.tensor([12.0]), mel.config)
    assert shifted[0].mean(-1).argmax() == logmel[1].mean(-1).argmax() != logmel[0].mean(-1).argmax()


def test_time_stretch_changes_lengths():
    logmel = torch.randn(2, 128, 50)
    out, lengths = time_stretch(logmel, torch.tensor([50, 20]), torch.tensor([1.2, 0.5]), MelConfig())
    assert lengths.tolist() == [59, 10]
    assert out.shape == (2, 128, 59)
    assert torch.allclose(out[1, :, 2], logmel[1, :, 4])


def test_augment_is_seeded_and_differentiable():
    logmel = torch.randn(4, 128, 40, requires_grad=True)
    lengths = torch.tensor([40, 30, 5, 1])
    a, la = augment(logmel, lengths, torch.Generator().manual_seed(3))
    b, lb = augment(logmel, lengths, torch.Generator().manual_seed(3))
    c, _ = augment(logmel, lengths, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and torch.equal(la, lb) and not torch.equal(a[:, :, :5], c[:, :, :5])
    assert (la >= 1).all()
    a.sum().backward()
    assert logmel.grad.abs().sum() > 0
    same, _ = augment(logmel, lengths, torch.Generator(), AugmentConfig(0.0, 0.0, 0.0))
    assert torch.equal(same, logmel)
