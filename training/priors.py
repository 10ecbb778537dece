"""Learned latent priors stored with a model: `python -m training fit-prior MODEL`.

The standard prior N(0, I) is what the VAE was trained against, but its aggregate posterior
q(z) = E_x q(z|x) fills only part of that ball, so prior samples land where the decoder has seen
little. A Gaussian mixture fitted to the aggregate posterior (Tomczak & Welling's "ex-post"
density estimation) samples where the data is. What it is fitted on matters: one posterior
sample z ~ q(z|x) per image gives a density as wide as the posterior (good likelihood); the
encoder means give a narrower one (sharper samples, poor likelihood). Both are measured.

Class-conditional priors: a density fitted on every latent of a class also covers the latents
whose decoding looks like a neighbouring class (a blurred coat is a pullover). With `guide`, a
second classifier (not the one that measures) keeps only the training images whose reconstruction
it assigns to their own label, so the class prior samples where the decoder draws that class.

prior.npz, schema_version 1 (docs/model-card.md), all float64:
    weights [K], means [K, D], covariances [K, D, D]                     the mixture
    class_weights [C, M], class_means [C, M, D], class_covariances [C, M, D, D]   one small
    mixture per class (absent for models without labels)
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from training import runs
from training.cards import add_to_card
from training.classifier import label_probabilities, load_classifier, predict
from training.data import Dataset, load_data, to_tensor
from training.distributed import set_threads
from training.evaluate import class_coverage, frechet_distance, importance_sampled_nlls, onnx_logits_decoder
from training.model import LOG_2PI, VAE

logger = logging.getLogger("training.priors")

PRIOR_FILE = "prior.npz"
SCHEMA_VERSION = 1
TEMPERATURES = (0.6, 0.7, 0.8, 0.9, 1.0)
GUIDE_MIN_IMAGES = 50  # per class, whatever the guide's confidence, so its mixture has points to fit


@dataclass(frozen=True)
class Mixture:
    """A Gaussian mixture over flat latents, full covariances."""

    weights: np.ndarray  # [K]
    means: np.ndarray  # [K, D]
    covariances: np.ndarray  # [K, D, D]

    @classmethod
    def of(cls, gmm: GaussianMixture) -> Mixture:
        return cls(gmm.weights_.astype(np.float64), gmm.means_.astype(np.float64), gmm.covariances_.astype(np.float64))

    @classmethod
    def standard(cls, dim: int) -> Mixture:
        return cls(np.ones(1), np.zeros((1, dim)), np.eye(dim)[None])

    def sample(self, n: int, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
        """n latents: a component by weight, then its mean + T * L eps (the service draws the same way)."""
        component = rng.choice(len(self.weights), size=n, p=self.weights / self.weights.sum())
        eps = rng.standard_normal((n, self.means.shape[1]))
        chol = np.linalg.cholesky(self.covariances)
        return self.means[component] + temperature * np.einsum("nij,nj->ni", chol[component], eps)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log density of flat latents [..., D], in torch (for the importance-sampled NLL)."""
        chol = torch.from_numpy(np.linalg.cholesky(self.covariances)).float()  # [K, D, D]
        means = torch.from_numpy(self.means).float()
        log_weights = torch.from_numpy(np.log(self.weights)).float()
        flat = z.reshape(-1, z.shape[-1])
        terms = []
        for k in range(len(log_weights)):
            diff = (flat - means[k]).T  # [D, R]
            solved = torch.linalg.solve_triangular(chol[k], diff, upper=False)
            half_log_det = chol[k].diagonal().log().sum()
            terms.append(log_weights[k] - half_log_det - 0.5 * (solved.pow(2).sum(0) + z.shape[-1] * LOG_2PI))
        return torch.logsumexp(torch.stack(terms), dim=0).reshape(z.shape[:-1])


@torch.inference_mode()
def encode_all(model: VAE, images: torch.Tensor, batch_size: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar) of every image, flat [N, D] float64."""
    mus, logvars = [], []
    for start in range(0, len(images), batch_size):
        mu, logvar = model.encode(images[start : start + batch_size])
        mus.append(mu.flatten(start_dim=1))
        logvars.append(logvar.flatten(start_dim=1))
    return torch.cat(mus).double().numpy(), torch.cat(logvars).double().numpy()


def posterior_samples(mu: np.ndarray, logvar: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape)


def fit_mixture(points: np.ndarray, components: int, seed: int) -> GaussianMixture:
    # reg_covar keeps near-collapsed (inactive) latent units from making a covariance singular.
    gmm = GaussianMixture(components, covariance_type="full", reg_covar=1e-4, max_iter=200, random_state=seed)
    return gmm.fit(points)


@torch.inference_mode()
def decode_means(model: VAE, z: np.ndarray, batch_size: int = 2000) -> torch.Tensor:
    """Pixel means of decoded latents: what the service's /sample returns."""
    latents = torch.from_numpy(z).float().reshape(len(z), *model.arch.latent_shape)
    return torch.cat([torch.sigmoid(model.decode(latents[s : s + batch_size])) for s in range(0, len(z), batch_size)])


def quality(model: VAE, classifier, z: np.ndarray, test_features: np.ndarray) -> dict:
    features, labels = predict(classifier, decode_means(model, z))
    return {
        "frechet_distance": round(frechet_distance(features.numpy(), test_features), 3),
        "class_coverage": class_coverage(labels.numpy(), classifier.num_classes),
    }


def fit_prior(
    model_dir: Path,
    classifier_dir: Path | None,
    *,
    components: tuple[int, ...] = (10, 25, 50, 100),
    fit_images: int = 30_000,
    heldout_images: int = 5_000,
    samples_per_image: int = 1,
    class_components: int = 4,
    guide_dir: Path | None = None,
    guide_confidence: float = 0.5,
    n_samples: int = 10_000,
    nll_images: int = 1_000,
    nll_k: int = 200,
    seed: int = 0,
    threads: int | None = None,
) -> dict:
    """Fit the priors, measure them, write model_dir/prior.npz and the card's `prior` section."""
    set_threads(threads)
    started = time.perf_counter()
    model_dir = Path(model_dir)
    model, config = runs.load_any_model(model_dir)
    dataset: Dataset = load_data(config)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(dataset.train.images))[: fit_images + heldout_images]
    train_x = to_tensor(dataset.train.images[order])
    labels = dataset.train.labels[order].astype(np.int64)
    mu, logvar = encode_all(model, train_x)
    z = posterior_samples(mu, logvar, rng)
    fit, held = slice(0, fit_images), slice(fit_images, None)
    # More draws per image trace the aggregate posterior q(z) more closely; the first is z itself.
    z_fit = np.concatenate(
        [z[fit], *(posterior_samples(mu[fit], logvar[fit], rng) for _ in range(samples_per_image - 1))]
    )

    # K by the held-out log-likelihood of posterior samples of images the fit did not see.
    selection = {}
    for k in components:
        gmm = fit_mixture(z_fit, k, seed)
        selection[k] = (gmm, float(gmm.score(z[held])))
        logger.info("K=%d: held-out log-likelihood %.3f nats per latent", k, selection[k][1])
    best_k = max(selection, key=lambda k: selection[k][1])
    mixture = Mixture.of(selection[best_k][0])
    on_means = Mixture.of(fit_mixture(mu[fit], best_k, seed))

    classes = dataset.classes
    kept = np.ones(fit_images, dtype=bool)
    guide_report = None
    if classes and guide_dir is not None:
        guide, guide_info = load_classifier(Path(guide_dir))
        confidence = label_probabilities(guide, decode_means(model, mu[fit]), torch.from_numpy(labels[fit])).numpy()
        kept = confidence >= guide_confidence
        for c in range(len(classes)):  # a class the guide hardly recognises keeps its likeliest images
            members = np.flatnonzero(labels[fit] == c)
            if kept[members].sum() < GUIDE_MIN_IMAGES:
                kept[members[np.argsort(-confidence[members])[:GUIDE_MIN_IMAGES]]] = True
        guide_report = {
            "classifier": str(guide_dir),
            "seed": guide_info["seed"],
            "test_accuracy": guide_info["test_accuracy"],
            "confidence": guide_confidence,
            "kept_share_per_class": [round(float(kept[labels[fit] == c].mean()), 4) for c in range(len(classes))],
        }

    def class_mixtures(points: np.ndarray, keep: np.ndarray) -> list[Mixture]:
        return [
            Mixture.of(fit_mixture(points[fit][(labels[fit] == c) & keep], class_components, seed))
            for c in range(len(classes))
        ]

    # Per class, fitted both ways; the one whose samples the classifier more often assigns to the
    # requested class is stored (class-conditional priors are for sampling only).
    per_class = {
        source: class_mixtures(points, kept) for source, points in (("posterior samples", z), ("encoder means", mu))
    }
    # What the guide changes, measured beside it.
    baseline = None if guide_report is None else class_mixtures(z, np.ones(fit_images, dtype=bool))

    report: dict = {
        "kinds": ["standard", "mixture"],
        "fitted_on": f"{samples_per_image} posterior sample(s) z ~ q(z|x) per image, {fit_images} training images "
        f"(seed {seed})",
        "components": best_k,
        "covariance": "full",
        "selection": {
            "rule": f"K with the highest mean log-likelihood of posterior samples of {heldout_images} held-out "
            "training images",
            "heldout_log_likelihood_nats": {str(k): round(v[1], 3) for k, v in selection.items()},
        },
    }
    measured = _measure(
        model, dataset, classifier_dir, mixture, on_means, per_class, n_samples, nll_images, nll_k, seed, baseline
    )
    report["metrics"] = measured
    chosen: list[Mixture] = []
    if classes:
        fidelity = {s: v for s, v in measured.get("class_conditional", {}).items() if s in per_class}
        source = max(fidelity, key=lambda s: fidelity[s]["mean_share"]) if fidelity else "posterior samples"
        chosen = per_class[source]
        report["class_conditional"] = {
            "components_per_class": class_components,
            "fitted_on": f"the {source} of the same training images, split by label"
            + ("" if guide_report is None else ", keeping those whose reconstruction the guide recognises"),
            "rule": "fitted on posterior samples and on encoder means; stored: the one whose samples the "
            "classifier assigns to the requested class more often",
        }
        if guide_report is not None:
            report["class_conditional"]["guide"] = guide_report
    fds = measured.get("sample_quality", {})
    if fds:
        report["default"] = min(("standard", "mixture"), key=lambda kind: fds[kind]["frechet_distance"])
        report["default_rule"] = "the kind whose samples have the lower classifier Fréchet distance to the test set"
    else:
        report["default"] = "standard"
        report["default_rule"] = "no classifier: the prior the model was trained with"

    path = model_dir / PRIOR_FILE
    arrays = {
        "schema_version": np.array(SCHEMA_VERSION),
        "weights": mixture.weights,
        "means": mixture.means,
        "covariances": mixture.covariances,
    }
    if chosen:
        arrays |= {
            "class_weights": np.stack([m.weights for m in chosen]),
            "class_means": np.stack([m.means for m in chosen]),
            "class_covariances": np.stack([m.covariances for m in chosen]),
        }
    with path.open("wb") as stream:
        np.savez(stream, **arrays)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["command"] = (
        f"python -m training fit-prior {model_dir}"
        + (f" --classifier {classifier_dir}" if classifier_dir else "")
        + f" --components {' --components '.join(map(str, components))}"
        + f" --fit-images {fit_images} --samples-per-image {samples_per_image}"
        + (f" --guide {guide_dir} --guide-confidence {guide_confidence}" if guide_report else "")
        + f" --n-samples {n_samples} --nll-images {nll_images} --nll-k {nll_k}"
    )
    if (model_dir / "model.json").exists():  # a model folder; a run folder keeps prior.npz beside its checkpoint
        add_to_card(model_dir, "prior", path, report, list(classes))
    return report


def _measure(
    model, dataset, classifier_dir, mixture, on_means, per_class, n_samples, nll_images, nll_k, seed, baseline=None
):
    dim = mixture.means.shape[1]
    standard = Mixture.standard(dim)
    test_x = to_tensor(dataset.test.images)
    targets = model.evaluation_targets(test_x)[:nll_images]
    out: dict = {}
    # The same images and importance samples under each prior; the k x N decodes run on onnxruntime.
    with tempfile.TemporaryDirectory() as folder:
        decode = onnx_logits_decoder(model, folder)
        priors = {"standard": None, "mixture": mixture.log_prob}
        nll = importance_sampled_nlls(model, targets, priors, k=nll_k, seed=seed, decode=decode)
    out["importance_sampled_nll_nats"] = {
        kind: {"mean": round(v.mean().item(), 3), "stderr": round((v.std() / math.sqrt(len(v))).item(), 3)}
        for kind, v in nll.items()
    }
    out["importance_sampled_nll_protocol"] = f"first {nll_images} test images ({_targets_name(model)}), k = {nll_k}"
    if classifier_dir is None or not dataset.classes:
        return out
    classifier, _ = load_classifier(Path(classifier_dir))
    test_features = predict(classifier, test_x)[0].numpy()

    def draw(prior: Mixture, temperature: float = 1.0, n: int = n_samples) -> np.ndarray:
        return prior.sample(n, np.random.default_rng(seed), temperature)

    out["sample_quality"] = {
        "n_samples": n_samples,
        "standard": quality(model, classifier, draw(standard), test_features),
        "mixture": quality(model, classifier, draw(mixture), test_features),
        "mixture_fitted_on_means": quality(model, classifier, draw(on_means), test_features),
        "temperature_sweep": {
            kind: {
                str(t): quality(model, classifier, draw(prior, t), test_features)["frechet_distance"]
                for t in TEMPERATURES
            }
            for kind, prior in (("standard", standard), ("mixture", mixture))
        },
    }
    # What the decoder can draw at all: class-conditional samples cannot be recognised more often
    # than reconstructions of real test images are.
    _, recognised = predict(classifier, decode_means(model, encode_all(model, test_x)[0]))
    out["reconstructions_classified_as_their_label"] = reconstruction_fidelity(
        recognised.numpy(), dataset.test.labels.astype(np.int64), len(dataset.classes)
    )
    per = max(1, n_samples // len(dataset.classes))
    test_labels = dataset.test.labels.astype(np.int64)
    out["class_conditional"] = {}
    # The class Fréchet distance (samples against that class's test images) shows what a narrower
    # class prior costs in variety.
    measured = dict(per_class) | ({} if baseline is None else {"posterior samples, no guide": baseline})
    for source, priors in measured.items():
        share, distances = [], []
        for c, prior in enumerate(priors):
            features, predicted = predict(classifier, decode_means(model, draw(prior, n=per)))
            share.append(float((predicted.numpy() == c).mean()))
            if per > features.shape[1]:  # fewer samples than features: no covariance to compare
                distances.append(round(frechet_distance(features.numpy(), test_features[test_labels == c]), 2))
        out["class_conditional"][source] = {
            "samples_per_class": per,
            "share_classified_as_requested": [round(s, 4) for s in share],
            "mean_share": round(float(np.mean(share)), 4),
            "class_frechet_distance": distances or None,
        }
    return out


def reconstruction_fidelity(predicted: np.ndarray, labels: np.ndarray, classes: int) -> dict:
    per_class = [float((predicted[labels == c] == c).mean()) for c in range(classes)]
    return {"share": round(float((predicted == labels).mean()), 4), "per_class": [round(v, 4) for v in per_class]}


def _targets_name(model: VAE) -> str:
    return "dynamically binarized, seed 1234" if model.likelihood == "bernoulli" else "as evaluate uses them"
