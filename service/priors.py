"""Latent priors: N(0, T^2 I), or the Gaussian mixture stored with the model.

prior.npz is written by `python -m training fit-prior` (schema in docs/model-card.md): one mixture
over the aggregate posterior and, for models with classes, one small mixture per class. Numpy
only; drawing uses the same steps as training/priors.py, so the card's figures describe what
/sample returns.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1
LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class Mixture:
    weights: np.ndarray  # [K], sums to 1
    means: np.ndarray  # [K, D]
    cholesky: np.ndarray  # [K, D, D], lower: covariance = L L^T
    inverse_cholesky: np.ndarray  # [K, D, D]
    half_log_det: np.ndarray  # [K]: 0.5 log det covariance
    cdf: np.ndarray  # [K]: what Generator.choice(K, p=weights) builds on every call

    @classmethod
    def of(cls, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> Mixture:
        chol = np.linalg.cholesky(covariances)  # LinAlgError unless every covariance is positive definite
        weights = weights / weights.sum()
        cdf = weights.cumsum()
        cdf /= cdf[-1]
        return cls(
            weights=weights,
            means=means,
            cholesky=chol,
            inverse_cholesky=np.linalg.inv(chol),
            half_log_det=np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1),
            cdf=cdf,
        )

    def sample(self, n: int, rng: np.random.Generator, temperature: float) -> np.ndarray:
        """[n, D] float32: a component by weight, then its mean + T * L eps.

        The random stream is training's (`rng.choice(K, p=weights)` is this uniform draw and
        search, minus its per-call checks); matmul stands for training's einsum at half the cost."""
        component = self.cdf.searchsorted(rng.random(n), side="right")
        eps = rng.standard_normal((n, self.means.shape[1]))
        z = self.means[component] + temperature * np.matmul(self.cholesky[component], eps[:, :, None])[:, :, 0]
        return z.astype(np.float32)

    def log_prob(self, z: np.ndarray) -> np.ndarray:
        """log density of flat latents [R, D] -> [R] float64."""
        diff = z.astype(np.float64)[None] - self.means[:, None]  # [K, R, D]
        solved = np.einsum("kij,krj->kri", self.inverse_cholesky, diff)
        dim = z.shape[1]
        per_component = (
            np.log(self.weights)[:, None] - self.half_log_det[:, None] - 0.5 * ((solved**2).sum(axis=2) + dim * LOG_2PI)
        )
        peak = per_component.max(axis=0)
        return peak + np.log(np.exp(per_component - peak).sum(axis=0))


def standard_log_prob(z: np.ndarray) -> np.ndarray:
    """log N(z; 0, I) of flat latents [R, D] -> [R] float64."""
    flat = z.astype(np.float64)
    return -0.5 * ((flat**2).sum(axis=1) + flat.shape[1] * LOG_2PI)


@dataclass(frozen=True)
class StoredPrior:
    mixture: Mixture
    classes: tuple[Mixture, ...]  # by label index; empty without class priors


def read_versioned_npz(path: Path, schema_version: int) -> dict[str, np.ndarray]:
    """Every array of an .npz file (no pickles) whose `schema_version` is the one we read."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"not a readable .npz archive ({exc})") from None
    version = arrays.get("schema_version")
    if version is None or version.shape != () or int(version) != schema_version:
        raise ValueError(f"schema_version must be {schema_version}, found {None if version is None else version}")
    return arrays


def load_prior(path: Path, latent_dim: int, labels: list[str] | None) -> StoredPrior:
    """Read and check prior.npz; ValueError says what is wrong (the registry names the file)."""
    arrays = read_versioned_npz(path, SCHEMA_VERSION)
    mixture = _mixture(arrays, "", latent_dim)
    classes: tuple[Mixture, ...] = ()
    if "class_means" in arrays:
        if "class_weights" not in arrays or "class_covariances" not in arrays:
            raise ValueError("class_weights [C, M], class_means [C, M, D] and class_covariances must come together")
        weights, means, covariances = (arrays[f"class_{n}"] for n in ("weights", "means", "covariances"))
        if weights.ndim != 2 or len(weights) != len(means) or len(covariances) != len(means):
            raise ValueError("class_weights [C, M], class_means [C, M, D] and class_covariances need the same C")
        if not labels or len(labels) != len(weights):
            raise ValueError(f"{len(weights)} class priors, but the card lists {len(labels or [])} labels")
        classes = tuple(
            _mixture({"weights": w, "means": m, "covariances": c}, "class ", latent_dim)
            for w, m, c in zip(weights, means, covariances, strict=True)
        )
    return StoredPrior(mixture, classes)


def _mixture(arrays: dict[str, np.ndarray], what: str, latent_dim: int) -> Mixture:
    try:
        weights, means, covariances = (arrays[name].astype(np.float64) for name in ("weights", "means", "covariances"))
    except KeyError as missing:
        raise ValueError(f"{what}mixture array {missing} is missing") from None
    k = len(weights)
    if (
        weights.ndim != 1
        or k == 0
        or means.shape != (k, latent_dim)
        or covariances.shape != (k, latent_dim, latent_dim)
    ):
        raise ValueError(
            f"{what}mixture shapes weights {list(weights.shape)}, means {list(means.shape)}, covariances "
            f"{list(covariances.shape)}; expected [K], [K, {latent_dim}], [K, {latent_dim}, {latent_dim}]"
        )
    if not (np.isfinite(weights).all() and np.isfinite(means).all() and np.isfinite(covariances).all()):
        raise ValueError(f"{what}mixture holds NaN or inf")
    if (weights < 0).any() or not math.isclose(float(weights.sum()), 1.0, rel_tol=1e-6):
        raise ValueError(f"{what}mixture weights must be non-negative and sum to 1 (sum {weights.sum():.6g})")
    try:
        return Mixture.of(weights, means, covariances)
    except np.linalg.LinAlgError:
        raise ValueError(f"{what}mixture covariances must be symmetric positive definite") from None
