"""POST /score's figures: how likely an image is under the model, and whether it is an outlier.

For one image x with encoder (mu, logvar) and k importance samples z_j = mu + sigma * eps_j
(eps from default_rng(seed), the same k draws for every image of a request, so an image's score
never depends on what else it came with):
    recon   = -mean_j log p(x|z_j)
    kl      = KL(q(z|x) || p(z)): closed form under N(0, I), mean_j log q(z_j|x) - log p(z_j) under a mixture
    neg_elbo = recon + kl;   nll = -(logsumexp_j [log p(x|z_j) + log p(z_j) - log q(z_j|x)] - log k)
Outliers (two-sided, calibrated on the model's own test set, which training/scores.py scores with
these same functions): a likelihood model can find simple images from elsewhere *more* likely than
its own data (Nalisnick et al. 2019), so the flag also looks at the score minus the image's
complexity, its PNG-compressed length in bits (Serrà et al. 2020), and takes the larger of the two
test-set percentiles, itself ranked against the test set's.

Numpy and Pillow only.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from service.priors import LOG_2PI, Mixture, read_versioned_npz, standard_log_prob

SCHEMA_VERSION = 1
PROBABILITY_FLOOR = 1e-7  # float32 probabilities saturate at 0 and 1; log(0) would be -inf


def score_noise(seed: int, k: int, latent_dim: int) -> np.ndarray:
    """The k importance draws eps [k, D] every image of a request shares."""
    return np.random.default_rng(seed).standard_normal((k, latent_dim), dtype=np.float32)


def importance_latents(mu: np.ndarray, logvar: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """One image's flat (mu, logvar) [D] -> its k latents [k, D] float32."""
    return (mu[None] + np.exp(0.5 * logvar)[None] * eps).astype(np.float32)


def log_likelihood(x: np.ndarray, decoded: np.ndarray, likelihood: str, sigma: np.ndarray | None) -> np.ndarray:
    """log p(x|z) for one image x [C, H, W] and its k decodings [k, C, H, W] in [0, 1] -> [k]."""
    target = x.astype(np.float64)[None]
    out = decoded.astype(np.float64)
    if likelihood == "bernoulli":
        p = np.clip(out, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
        per_pixel = target * np.log(p) + (1 - target) * np.log1p(-p)
    else:  # gaussian with the decoder's per-channel sigma
        assert sigma is not None
        scale = sigma.reshape(1, -1, 1, 1)
        per_pixel = -0.5 * ((target - out) / scale) ** 2 - np.log(scale) - 0.5 * LOG_2PI
    return per_pixel.reshape(len(out), -1).sum(axis=1)


class Score(NamedTuple):
    neg_elbo: float
    reconstruction: float
    kl: float
    nll: float


def score_one(
    mu: np.ndarray,
    logvar: np.ndarray,
    eps: np.ndarray,
    log_px_z: np.ndarray,
    prior: Mixture | None,
) -> Score:
    """The figures of one image from its flat (mu, logvar) [D], the shared eps [k, D] and log p(x|z_j) [k]."""
    z = importance_latents(mu, logvar, eps)
    log_q = -0.5 * ((eps.astype(np.float64) ** 2) + logvar.astype(np.float64) + LOG_2PI).sum(axis=1)
    log_p = standard_log_prob(z) if prior is None else prior.log_prob(z)
    if prior is None:
        lv = logvar.astype(np.float64)
        kl = 0.5 * float((-lv + mu.astype(np.float64) ** 2 + np.exp(lv) - 1).sum())
    else:
        kl = float((log_q - log_p).mean())
    reconstruction = -float(log_px_z.mean())
    log_w = log_px_z + log_p - log_q
    peak = log_w.max()
    nll = -(float(peak + np.log(np.exp(log_w - peak).sum())) - math.log(len(eps)))
    return Score(reconstruction + kl, reconstruction, kl, nll)


def complexity_bits(pixels: np.ndarray) -> float:
    """The image's length in bits as a PNG at the highest compression: a generic measure of how
    much there is to describe, whatever the model ([H, W] or [H, W, C] uint8)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=9)
    return 8.0 * len(buffer.getvalue())


def bits_per_dim(nll_nats: float, dims: int, dequantized: bool) -> float:
    """A density on [0, 1] pixels bounds the 8-bit NLL after adding D ln 256 (Theis et al. 2016)."""
    return (nll_nats + (dims * math.log(256) if dequantized else 0.0)) / (dims * math.log(2))


def corrected_score(neg_elbo: float, complexity: float) -> float:
    """Bits the model needs beyond what a PNG needs: high for what the model does not know."""
    return neg_elbo / math.log(2) - complexity


@dataclass(frozen=True)
class ScoreTable:
    """The test set's scores, sorted (scores.npz, written by `python -m training score-table`)."""

    neg_elbo: np.ndarray
    corrected: np.ndarray
    combined: np.ndarray  # max of the two percentiles, per test image
    k: int
    seed: int
    prior: str

    @staticmethod
    def rank(sorted_values: np.ndarray, value: float) -> float:
        """Percent of the table at or below value."""
        return 100.0 * float(np.searchsorted(sorted_values, value, side="right")) / len(sorted_values)

    def percentile(self, neg_elbo: float) -> float:
        return self.rank(self.neg_elbo, neg_elbo)

    def outlier_score(self, neg_elbo: float, corrected: float) -> float:
        """0..100: how far out the image is on the two-sided rule, as a test-set percentile."""
        combined = max(self.rank(self.neg_elbo, neg_elbo), self.rank(self.corrected, corrected))
        return self.rank(self.combined, combined)


def combined_percentiles(neg_elbo: np.ndarray, corrected: np.ndarray) -> np.ndarray:
    """Per test image, the larger of its two percentiles within the test set."""
    ranks = [
        100.0 * np.searchsorted(np.sort(values), values, side="right") / len(values) for values in (neg_elbo, corrected)
    ]
    return np.maximum(*ranks)


def table_arrays(neg_elbo: np.ndarray, corrected: np.ndarray, k: int, seed: int, prior: str) -> dict[str, np.ndarray]:
    return {
        "schema_version": np.array(SCHEMA_VERSION),
        "neg_elbo": np.sort(neg_elbo),
        "complexity_corrected": np.sort(corrected),
        "combined": np.sort(combined_percentiles(neg_elbo, corrected)),
        "k": np.array(k),
        "seed": np.array(seed),
        "prior": np.array(prior),
    }


def load_table(path: Path) -> ScoreTable:
    """Read and check scores.npz; ValueError says what is wrong (the registry names the file)."""
    arrays = read_versioned_npz(path, SCHEMA_VERSION)
    columns = []
    for name in ("neg_elbo", "complexity_corrected", "combined"):
        values = arrays.get(name)
        if values is None or values.ndim != 1 or len(values) == 0 or not np.isfinite(values).all():
            raise ValueError(f"{name} must be a non-empty 1-D array of finite scores")
        if (np.diff(values) < 0).any():
            raise ValueError(f"{name} must be sorted")
        columns.append(values.astype(np.float64))
    neg_elbo, corrected, combined = columns
    return ScoreTable(
        neg_elbo, corrected, combined, k=int(arrays["k"]), seed=int(arrays["seed"]), prior=str(arrays["prior"])
    )
