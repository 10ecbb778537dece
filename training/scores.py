"""The test-set score table behind /score's percentiles and outlier flag: `python -m training score-table MODEL`.

It runs the model folder's own ONNX graphs with service/scoring.py's functions (numpy-only), so a
stored percentile means exactly what a served one does. The table holds the first half of the
test set; the second half measures the false-positive rate at the configured percentile, and
another dataset's test images (--ood) the AUROC of each rule.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from sklearn.metrics import roc_auc_score

from service.priors import Mixture, load_prior
from service.scoring import (
    ScoreTable,
    complexity_bits,
    corrected_score,
    importance_latents,
    log_likelihood,
    score_noise,
    score_one,
    table_arrays,
)
from training.cards import add_to_card
from training.config import TrainConfig
from training.data import load_data, load_dataset, to_tensor

SCORES_FILE = "scores.npz"
OUTLIER_PERCENTILE = 99.0


class FolderModel:
    """A model folder's graphs and card, as the service reads them."""

    def __init__(self, model_dir: Path, threads: int | None = None):
        self.card = json.loads((model_dir / "model.json").read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        self.sessions = {
            graph: ort.InferenceSession(
                str(model_dir / self.card["files"][graph]["path"]), options, providers=["CPUExecutionProvider"]
            )
            for graph in ("encoder", "decoder")
        }
        self.likelihood = self.card["likelihood"]
        sigma = self.card.get("metrics", {}).get("decoder_sigma_per_channel")
        self.sigma = None if sigma is None else np.asarray(sigma, dtype=np.float64)
        self.prior_kind = self.card.get("prior", {}).get("default", "standard")
        self.prior: Mixture | None = None
        if self.prior_kind == "mixture":
            stored = load_prior(
                model_dir / self.card["files"]["prior"]["path"], self.card["latent_dim"], self.card.get("labels")
            )
            self.prior = stored.mixture

    def scores(self, images: np.ndarray, k: int, seed: int, chunk: int = 16) -> np.ndarray:
        """[N, 4] (neg_elbo, reconstruction, kl, nll) of float32 images [N, C, H, W]."""
        eps = score_noise(seed, k, self.card["latent_dim"])
        latent_shape = self.card.get("latent_shape") or [self.card["latent_dim"]]
        out = []
        for start in range(0, len(images), chunk):
            x = images[start : start + chunk]
            mu, logvar = self.sessions["encoder"].run(["mu", "logvar"], {"image": x})
            mu, logvar = mu.reshape(len(x), -1), logvar.reshape(len(x), -1)
            z = np.concatenate([importance_latents(m, v, eps) for m, v in zip(mu, logvar, strict=True)])
            (decoded,) = self.sessions["decoder"].run(["image"], {"z": z.reshape(len(z), *latent_shape)})
            for i in range(len(x)):
                log_px_z = log_likelihood(x[i], decoded[i * k : (i + 1) * k], self.likelihood, self.sigma)
                out.append(score_one(mu[i], logvar[i], eps, log_px_z, self.prior))
        return np.asarray(out, dtype=np.float64)


def _pixels(images_uint8: np.ndarray) -> list[np.ndarray]:
    """Dataset uint8 images ([N, H, W] or [N, C, H, W]) as the service's PNG input ([H, W] or [H, W, C])."""
    return list(images_uint8 if images_uint8.ndim == 3 else images_uint8.transpose(0, 2, 3, 1))


def score_images(model: FolderModel, images_uint8: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(neg_elbo [N], complexity-corrected [N]) of dataset images."""
    floats = to_tensor(images_uint8).numpy()
    scores = model.scores(floats, k, seed)
    complexity = np.array([complexity_bits(p) for p in _pixels(images_uint8)])
    corrected = np.array([corrected_score(s, c) for s, c in zip(scores[:, 0], complexity, strict=True)])
    return scores[:, 0], corrected


def score_table(
    model_dir: Path, *, ood: str | None = None, images: int | None = None, k: int = 64, seed: int = 0, threads=None
) -> dict:
    started = time.perf_counter()
    model_dir = Path(model_dir)
    model = FolderModel(model_dir, threads)
    dataset = load_data(TrainConfig.from_dict(model.card["training"]["config"]))
    test = dataset.test.images[:images] if images else dataset.test.images
    half = len(test) // 2
    neg_elbo, corrected = score_images(model, test, k, seed)
    arrays = table_arrays(neg_elbo[:half], corrected[:half], k, seed, model.prior_kind)
    table = ScoreTable(
        arrays["neg_elbo"], arrays["complexity_corrected"], arrays["combined"], k=k, seed=seed, prior=model.prior_kind
    )

    def rules(values: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
        raw, corr = values
        return {
            "raw": np.array([table.percentile(v) for v in raw]),
            "complexity_corrected": np.array([table.rank(table.corrected, v) for v in corr]),
            "two_sided": np.array([table.outlier_score(a, b) for a, b in zip(raw, corr, strict=True)]),
        }

    held = rules((neg_elbo[half:], corrected[half:]))
    report: dict = {
        "file": SCORES_FILE,
        "score": "negative ELBO in nats; complexity-corrected: negative ELBO in bits minus the PNG length in bits",
        "importance_samples_k": k,
        "seed": seed,
        "prior": model.prior_kind,
        "table_images": half,
        "table": f"the first {half} test images, pixels in [0, 1] as the service sees them (normalize=false)",
        "outlier_rule": "outlier_score = test-set percentile of max(percentile of the negative ELBO, percentile "
        "of the complexity-corrected score); outlier when above VAE_OUTLIER_PERCENTILE",
        "test_neg_elbo_nats_mean": round(float(neg_elbo.mean()), 3),
        "heldout_false_positive_rate": {
            "percentile": OUTLIER_PERCENTILE,
            "images": len(test) - half,
            "rate": round(float((held["two_sided"] > OUTLIER_PERCENTILE).mean()), 4),
        },
    }
    if ood:
        other = load_dataset(ood).test.images[: len(test) - half]
        outside = rules(score_images(model, other, k, seed))
        labels = np.r_[np.zeros(len(test) - half), np.ones(len(other))]
        report["ood"] = {
            "dataset": ood,
            "images": len(other),
            "auroc": {rule: round(float(roc_auc_score(labels, np.r_[held[rule], outside[rule]])), 4) for rule in held},
            "flagged_share": round(float((outside["two_sided"] > OUTLIER_PERCENTILE).mean()), 4),
        }
    path = model_dir / SCORES_FILE
    with path.open("wb") as stream:
        np.savez(stream, **arrays)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["command"] = (
        f"python -m training score-table {model_dir}"
        + (f" --ood {ood}" if ood else "")
        + (f" --images {images}" if images else "")
        + f" --k {k}"
    )
    add_to_card(model_dir, "scores", path, report)
    return report
