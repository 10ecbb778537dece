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
GaussianScale = Literal["fixed", "learned"]
LOG_2PI = math.log(2 * math.pi)
# The seed's gaussian loss is a plain summed squared error: that is -log N(x; x_hat, sigma^2)
# with sigma^2 = 1/2, up to the constant below (kept so NLLs are proper densities).
GAUSSIAN_CONST_PER_PIXEL = 0.5 * math.log(2 * math.pi * 0.5)
# Down-sampling stops before a side would fall below this, so 28x28 keeps its two stages (28, 14, 7).
MIN_GRID_SIDE = 4
EVAL_NOISE_SEED = 1234


@dataclass(frozen=True)
class Architecture:
    image_shape: tuple[int, int, int] = (1, 28, 28)
    latent_dim: int = 32
    channels: int = 64
    hidden: int = 512
    latent_channels: int | None = None  # set: a spatial latent [K, h, w] at the lowest resolution

    @property
    def sides(self) -> list[tuple[int, int]]:
        """(height, width) at the input and after each stride-2 stage."""
        height, width = self.image_shape[1:]
        sides = [(height, width)]
        while min(_conv_out(height), _conv_out(width)) >= MIN_GRID_SIDE:
            height, width = _conv_out(height), _conv_out(width)
            sides.append((height, width))
        return sides

    @property
    def widths(self) -> list[int]:
        """Filters per stage: channels/2, channels, then doubling (capped) as the grid shrinks."""
        stages = len(self.sides) - 1
        return [self.channels // 2] + [min(self.channels * 2**i, 8 * self.channels) for i in range(stages - 1)]

    @property
    def grid(self) -> tuple[int, int, int]:
        """The encoder's last feature map (channels, h, w)."""
        return (self.widths[-1], *self.sides[-1])

    @property
    def latent_shape(self) -> tuple[int, ...]:
        if self.latent_channels is None:
            return (self.latent_dim,)
        return (self.latent_channels, *self.sides[-1])


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
        layers: list[nn.Module] = []
        in_channels = arch.image_shape[0]
        for width in arch.widths:
            layers += [nn.Conv2d(in_channels, width, 4, 2, 1), nn.ELU()]
            in_channels = width
        self.hidden: nn.Module
        self.to_mu: nn.Module
        self.to_logvar: nn.Module
        if arch.latent_channels is None:
            self.features = nn.Sequential(*layers, nn.Flatten())
            self.hidden = nn.Sequential(nn.Linear(math.prod(arch.grid), arch.hidden), nn.ELU())
            self.to_mu = nn.Linear(arch.hidden, arch.latent_dim)
            self.to_logvar = nn.Linear(arch.hidden, arch.latent_dim)
        else:
            self.features = nn.Sequential(*layers)
            self.hidden = nn.Identity()
            self.to_mu = nn.Conv2d(in_channels, arch.latent_channels, 3, padding=1)
            self.to_logvar = nn.Conv2d(in_channels, arch.latent_channels, 3, padding=1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden(self.features(image))
        return self.to_mu(h), self.to_logvar(h)


class Decoder(nn.Module):
    """Returns logits; the exported graph appends the sigmoid (see export.py)."""

    def __init__(self, arch: Architecture):
        super().__init__()
        self.grid = arch.grid
        if arch.latent_channels is None:
            self.project = nn.Sequential(
                nn.Linear(arch.latent_dim, arch.hidden),
                nn.ELU(),
                nn.Linear(arch.hidden, math.prod(self.grid)),
                nn.ELU(),
            )
        else:
            self.project = nn.Sequential(nn.Conv2d(arch.latent_channels, self.grid[0], 3, padding=1), nn.ELU())
        layers: list[nn.Module] = []
        outputs = [arch.image_shape[0], *arch.widths[:-1]]
        for stage in reversed(range(len(arch.widths))):
            (big_h, big_w), (small_h, small_w) = arch.sides[stage], arch.sides[stage + 1]
            # output_padding restores an odd side that the stride-2 convolution rounded down.
            restore = (big_h - 2 * small_h, big_w - 2 * small_w)
            layers.append(nn.ConvTranspose2d(arch.widths[stage], outputs[stage], 4, 2, 1, output_padding=restore))
            if stage:
                layers.append(nn.ELU())
        self.upsample = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(z).view(-1, *self.grid))


class VAE(nn.Module):
    def __init__(self, arch: Architecture, likelihood: Likelihood, gaussian_scale: GaussianScale = "fixed"):
        super().__init__()
        self.arch = arch
        self.likelihood = likelihood
        self.gaussian_scale = gaussian_scale
        self.encoder = Encoder(arch)
        self.decoder = Decoder(arch)
        if self.dequantizes:
            # A learned sigma per channel (Rybkin et al. 2021), 0.1 at first so the KL cannot swamp early training.
            self.log_scale = nn.Parameter(torch.full((arch.image_shape[0], 1, 1), math.log(0.1)))

    @property
    def dequantizes(self) -> bool:
        """A learned-scale Gaussian is a density on [0, 1]: it sees dequantized 8-bit pixels."""
        return self.likelihood == "gaussian" and self.gaussian_scale == "learned"

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor, samples: int = 1) -> VAEOutput:
        """One z per image; with samples = k > 1, z and logits get a leading axis of k (IWAE)."""
        mu, logvar = self.encode(x)
        if samples == 1:
            z = self.reparameterize(mu, logvar)
            return VAEOutput(self.decode(z), mu, logvar, z)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(samples, *mu.shape, device=mu.device)
        logits = self.decode(z.flatten(0, 1)).view(samples, *x.shape)
        return VAEOutput(logits, mu, logvar, z)

    def iwae_loss(self, x: torch.Tensor, out: VAEOutput) -> LossTerms:
        """-IWAE bound (Burda et al. 2016) with the doubly reparameterised encoder gradient (Tucker
        et al. 2019, DReG): log q takes detached parameters, and z's gradient is scaled by the
        normalised weights once more, so the encoder gets sum_j w_j^2 d log w_j / dz_j."""
        k = out.z.shape[0]
        log_px = self.log_likelihood(out.logits, x.expand(k, *x.shape))  # [k, B]
        mu, logvar = out.mu.detach(), out.logvar.detach()
        log_q = -0.5 * ((out.z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).flatten(start_dim=2).sum(-1)
        log_p = -0.5 * (out.z.pow(2) + LOG_2PI).flatten(start_dim=2).sum(-1)
        log_w = log_px + log_p - log_q
        with torch.no_grad():
            w = torch.softmax(log_w, dim=0)
        if out.z.requires_grad:
            out.z.register_hook(lambda grad: grad * w.view(*w.shape, *([1] * (grad.dim() - 2))))
        surrogate = -(w * log_w).sum(0).mean()
        bound = (torch.logsumexp(log_w, dim=0) - math.log(k)).mean()
        # The value is the negative bound; the gradient is the surrogate's.
        loss = surrogate - surrogate.detach() - bound.detach()
        return LossTerms(loss=loss, recon=-log_px.mean(), kl=(log_q - log_p).mean().detach())

    def log_likelihood(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels, one value per image (leading dims kept)."""
        if self.likelihood == "bernoulli":
            ll = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        elif self.dequantizes:
            scaled = (x - torch.sigmoid(logits)) * torch.exp(-self.log_scale)
            ll = -0.5 * scaled.pow(2) - self.log_scale - 0.5 * LOG_2PI
        else:
            ll = -((torch.sigmoid(logits) - x) ** 2) - GAUSSIAN_CONST_PER_PIXEL
        return ll.flatten(start_dim=-3).sum(-1)

    def loss(self, x: torch.Tensor, out: VAEOutput, beta: float = 1.0) -> LossTerms:
        # Sum over pixels and latent dims per image, then average over the batch: a
        # mean-reduced reconstruction next to a summed KL would reweight the KL by 1/784.
        recon = -self.log_likelihood(out.logits, x)
        # Closed-form KL, Kingma & Welling (2014), appendix B.
        kl = 0.5 * (-out.logvar + out.mu.pow(2) + out.logvar.exp() - 1).flatten(start_dim=1).sum(-1)
        return LossTerms(loss=(recon + beta * kl).mean(), recon=recon.mean(), kl=kl.mean())

    def training_targets(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Fresh noise every batch: dynamic binarization (bernoulli) or uniform dequantization."""
        if self.likelihood == "bernoulli":
            return torch.bernoulli(x, generator=generator)
        if self.dequantizes:
            return dequantize(x, generator)
        return x

    def evaluation_targets(self, x: torch.Tensor) -> torch.Tensor:
        """The same noise on every run, so test figures compare across runs."""
        return self.training_targets(x, torch.Generator().manual_seed(EVAL_NOISE_SEED))


def dequantize(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """8-bit pixels x = k/255 -> (k + u) / 256 with u ~ U[0, 1) (Theis et al. 2016, section 3.1)."""
    return (torch.round(x * 255) + torch.rand(x.shape, generator=generator)) / 256


def bits_per_dim(nll_nats: float, dims: int) -> float:
    """Discrete 8-bit NLL in bits per dimension from a density on dequantized [0, 1) pixels.

    Each pixel's bin has width 1/256, so -log P(k) <= -log p(y) + log 256 per dimension.
    """
    return (nll_nats + dims * math.log(256)) / (dims * math.log(2))


@torch.no_grad()
def test_elbo(model: VAE, x: torch.Tensor, batch_size: int = 1000) -> dict[str, float]:
    """Negative ELBO and its two terms, per image, averaged over x (already the model's targets)."""
    model.eval()
    totals = {"neg_elbo": 0.0, "recon": 0.0, "kl": 0.0}
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        terms = model.loss(batch, model(batch))
        for key, value in (("neg_elbo", terms.neg_elbo), ("recon", terms.recon), ("kl", terms.kl)):
            totals[key] += value.item() * len(batch)
    return {key: value / len(x) for key, value in totals.items()}
