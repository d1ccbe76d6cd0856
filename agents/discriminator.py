"""A small real-vs-dreamed discriminator on log-mel spectrograms, for adversarial dreaming.

Why: gradient ascent on a rater finds whatever raises its score, mostly structured noise. A critic trained
to tell real corpus excerpts from the current dreams supplies a "realness" logit; adding it to the objective
pulls dreams toward what real music looks like to a convolutional net, the same kind of eye the rater has.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from studio.files import atomic_path

from rater.mel import LogMel
from studio import SAMPLE_RATE


class Discriminator(nn.Module):
    """Log-mel -> four conv blocks -> global average pool -> one realness logit per waveform."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, width: int = 16):
        super().__init__()
        self.sample_rate, self.width = sample_rate, width
        self.mel = LogMel(sample_rate=sample_rate)
        layers: list[nn.Module] = []
        channels = 1
        for out in (width, 2 * width, 2 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.LeakyReLU(0.2), nn.MaxPool2d(2)]
            channels = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Realness logits, shape (batch,), for float waveforms of shape (batch, samples)."""
        return self.head(self.body(self.mel(waves).unsqueeze(1)).mean(dim=(2, 3))).squeeze(1)

    def save(self, path: str | os.PathLike) -> Path:
        """Atomic checkpoint: a crash mid-write never leaves a broken file."""
        with atomic_path(path) as tmp:
            torch.save({"sample_rate": self.sample_rate, "width": self.width, "state_dict": self.state_dict()}, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> Discriminator:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No discriminator checkpoint at {path}; drop --discriminator to train a new one.")
        state = torch.load(path, map_location=device, weights_only=True)
        model = cls(sample_rate=state["sample_rate"], width=state["width"])
        model.load_state_dict(state["state_dict"])
        return model.to(device)


class RealCrops:
    """Real waveforms served as random fixed-length crops (zero-padded when a clip is shorter)."""

    def __init__(self, waves: Sequence[np.ndarray], samples: int):
        if len(waves) == 0:
            raise ValueError("RealCrops needs at least one real clip; check the dataset's undegraded rows.")
        self.waves = [np.asarray(w, dtype=np.float32) for w in waves]
        self.samples = samples

    def __len__(self) -> int:
        return len(self.waves)

    def crop(self, index: int, rng: np.random.Generator) -> np.ndarray:
        wave = self.waves[index]
        if len(wave) <= self.samples:
            return np.pad(wave, (0, self.samples - len(wave)))
        start = int(rng.integers(0, len(wave) - self.samples + 1))
        return wave[start:start + self.samples]

    def batch(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        """``n`` random crops of random clips, shape (n, samples)."""
        picks = rng.integers(0, len(self.waves), size=n)
        return torch.from_numpy(np.stack([self.crop(int(i), rng) for i in picks]))

    def fixed(self, n: int) -> torch.Tensor:
        """The first ``n`` clips cropped from their start: a deterministic evaluation set."""
        return torch.from_numpy(np.stack([self.crop(i, np.random.default_rng(i)) for i in range(min(n, len(self)))]))


def train_step(disc: Discriminator, optimizer: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor) -> dict:
    """One binary cross-entropy step (real = 1, dreamed = 0); leaves the critic frozen in eval mode after."""
    disc.train().requires_grad_(True)
    logits = disc(torch.cat([real, fake]))
    labels = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))]).to(logits.device)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    disc.eval().requires_grad_(False)
    accuracy = ((logits.detach() > 0).float() == labels).float().mean()
    return {"disc_loss": float(loss.detach()), "disc_acc": float(accuracy)}


@torch.no_grad()
def balanced_accuracy(disc: Discriminator, real: torch.Tensor, fake: torch.Tensor) -> float:
    """Mean of the accuracy on real and on dreamed clips (0.5 = chance), with the critic in eval mode."""
    disc.eval()
    real_acc = (disc(real) > 0).float().mean()
    fake_acc = (disc(fake) <= 0).float().mean()
    return float((real_acc + fake_acc) / 2)
