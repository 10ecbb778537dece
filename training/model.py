"""The VAE: a convolutional encoder x -> (mu, logvar) and decoder z -> logits.

Encoder and decoder are separate modules because that is the seam we export along
(two ONNX graphs); sampling z = mu + sigma * eps belongs to whoever holds the random
generator (training here, the server in production).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Likelihood = Literal["gaussian", "bernoulli"]
LOG_2PI = math.log(2 * math.pi)
# The seed's gaussian loss is a plain summed squared error: that is -log N(x; x_hat, sigma^2)
# with sigma^2 = 1/2, up to the constant below (kept so NLLs are proper densities).
GAUSSIAN_CONST_PER_PIXEL = 0.5 * math.log(2 * math.pi * 0.5)


@dataclass(frozen=True)
class Architecture:
    image_shape: tuple[int, int, int] = (1, 28, 28)
    latent_dim: int = 32
    channels: int = 64
    hidden: int = 512


@dataclass
class VAEOutput:
    logits: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


@dataclass
class LossTerms:
    loss: torch.Tensor  # what is minimised: recon + beta * kl, averaged over the batch
    recon: torch.Tensor  # -log p(x|z), per image, batch mean
    kl: torch.Tensor  # KL(q(z|x) || p(z)), per image, batch mean

    @property
    def neg_elbo(self) -> torch.Tensor:
        return self.recon + self.kl


def _conv_out(side: int) -> int:
    return (side + 2 * 1 - 4) // 2 + 1  # kernel 4, stride 2, padding 1 halves an even side


class Encoder(nn.Module):
    def __init__(self, arch: Architecture):
        super().__init__()
        c, h, w = arch.image_shape
        ch = arch.channels
        self.features = nn.Sequential(
            nn.Conv2d(c, ch // 2, 4, 2, 1),
            nn.ELU(),
            nn.Conv2d(ch // 2, ch, 4, 2, 1),
            nn.ELU(),
            nn.Flatten(),
        )
        flat = ch * _conv_out(_conv_out(h)) * _conv_out(_conv_out(w))
        self.hidden = nn.Sequential(nn.Linear(flat, arch.hidden), nn.ELU())
        self.to_mu = nn.Linear(arch.hidden, arch.latent_dim)
        self.to_logvar = nn.Linear(arch.hidden, arch.latent_dim)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden(self.features(image))
        return self.to_mu(h), self.to_logvar(h)


class Decoder(nn.Module):
    """Returns logits; the exported graph appends the sigmoid (see export.py)."""

    def __init__(self, arch: Architecture):
        super().__init__()
        c, h, w = arch.image_shape
        ch = arch.channels
        self.grid = (ch, _conv_out(_conv_out(h)), _conv_out(_conv_out(w)))
        self.project = nn.Sequential(
            nn.Linear(arch.latent_dim, arch.hidden),
            nn.ELU(),
            nn.Linear(arch.hidden, math.prod(self.grid)),
            nn.ELU(),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1),
            nn.ELU(),
            nn.ConvTranspose2d(ch // 2, c, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(z).view(-1, *self.grid))


class VAE(nn.Module):
    def __init__(self, arch: Architecture, likelihood: Likelihood):
        super().__init__()
        self.arch = arch
        self.likelihood = likelihood
        self.encoder = Encoder(arch)
        self.decoder = Decoder(arch)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> VAEOutput:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return VAEOutput(self.decode(z), mu, logvar, z)

    def log_likelihood(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels, one value per image (leading dims kept)."""
        if self.likelihood == "bernoulli":
            ll = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        else:
            ll = -((torch.sigmoid(logits) - x) ** 2) - GAUSSIAN_CONST_PER_PIXEL
        return ll.flatten(start_dim=-3).sum(-1)

    def loss(self, x: torch.Tensor, out: VAEOutput, beta: float = 1.0) -> LossTerms:
        # Sum over pixels and latent dims per image, then average over the batch: a
        # mean-reduced reconstruction next to a summed KL would reweight the KL by 1/784.
        recon = -self.log_likelihood(out.logits, x)
        # Closed-form KL, Kingma & Welling (2014), appendix B.
        kl = 0.5 * (-out.logvar + out.mu.pow(2) + out.logvar.exp() - 1).sum(-1)
        return LossTerms(
            loss=(recon + beta * kl).mean(), recon=recon.mean(), kl=kl.mean()
        )
