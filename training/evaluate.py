"""Evaluation: test ELBO, importance-sampled NLL, reconstruction, active units, sample quality.

Importance-sampled NLL (Burda et al. 2016, eq. 14 with the encoder as proposal):
    log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,  z_k ~ q(z|x)
vectorised over images and samples (no per-image loop).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from scipy import linalg

from training import runs
from training.classifier import Classifier, load_classifier, predict
from training.data import load_data, to_tensor
from training.distributed import set_threads
from training.export import check_parity, export_graph
from training.model import LOG_2PI, VAE, bits_per_dim, test_elbo

MAX_DECODED_VALUES = 1 << 25


def importance_sampled_nll(
    model: VAE,
    targets: torch.Tensor,
    k: int = 1000,
    seed: int = 0,
    max_rows: int | None = None,
    decode=None,
    log_prior=None,
) -> torch.Tensor:
    """Per-image -log p(x) in nats, estimated with k importance samples.

    `decode` (z -> logits) defaults to the torch decoder; evaluate_run passes the same decoder
    run by onnxruntime, which is faster on CPU for the k * N decodes that dominate. `log_prior`
    (flat latents [..., D] -> log p(z)) defaults to N(0, I); a stored mixture passes its own.
    """
    return importance_sampled_nlls(model, targets, {"": log_prior}, k, seed, max_rows, decode)[""]


@torch.inference_mode()
def importance_sampled_nlls(
    model: VAE,
    targets: torch.Tensor,
    log_priors: Mapping[str, Callable[[torch.Tensor], torch.Tensor] | None],
    k: int = 1000,
    seed: int = 0,
    max_rows: int | None = None,
    decode=None,
) -> dict[str, torch.Tensor]:
    """importance_sampled_nll under several priors at once (None: N(0, I)): the same importance
    samples and one decode of each, since only log p(z) differs between priors."""
    decode = decode or model.decode
    model.eval()
    # Decode passes of at most MAX_DECODED_VALUES pixels: bigger ones run slower on CPU.
    max_rows = max_rows or max(1, min(8192, MAX_DECODED_VALUES // targets[0].numel()))
    generator = torch.Generator().manual_seed(seed)
    images_per_pass = max(1, min(len(targets), max_rows // min(k, max_rows)))
    samples_per_pass = max(1, min(k, max_rows // images_per_pass))
    nll: dict[str, list[torch.Tensor]] = {name: [] for name in log_priors}
    for start in range(0, len(targets), images_per_pass):
        x = targets[start : start + images_per_pass]
        mu, logvar = model.encode(x)
        std = torch.exp(0.5 * logvar)
        log_weights: dict[str, list[torch.Tensor]] = {name: [] for name in log_priors}
        for done in range(0, k, samples_per_pass):
            s = min(samples_per_pass, k - done)
            eps = torch.randn(s, *mu.shape, generator=generator)
            z = mu + std * eps  # (s, B, *latent_shape)
            logits = decode(z.reshape(-1, *mu.shape[1:])).reshape(s, *x.shape)
            log_px_z = model.log_likelihood(logits, x.expand(s, *x.shape))
            log_qz = -0.5 * (eps.pow(2) + logvar + LOG_2PI).flatten(start_dim=2).sum(-1)
            for name, log_prior in log_priors.items():
                if log_prior is None:
                    log_pz = -0.5 * (z.pow(2) + LOG_2PI).flatten(start_dim=2).sum(-1)
                else:
                    log_pz = log_prior(z.flatten(start_dim=2))
                log_weights[name].append(log_px_z + log_pz - log_qz)
        for name, weights in log_weights.items():
            nll[name].append(math.log(k) - torch.logsumexp(torch.cat(weights), dim=0))
    return {name: torch.cat(values) for name, values in nll.items()}


@torch.inference_mode()
def reconstruction_and_activity(model: VAE, x: torch.Tensor, batch_size: int = 2000) -> dict:
    """MSE of decode(mu) against the continuous test images, and active latent units.

    A unit is active when Cov_x(E_q[z_u|x]) > 0.01 (Burda et al. 2016, section 5.2).
    """
    model.eval()
    mus, squared = [], 0.0
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        mu, _ = model.encode(batch)
        mus.append(mu.flatten(start_dim=1))
        squared += (torch.sigmoid(model.decode(mu)) - batch).pow(2).sum().item()
    variance = torch.cat(mus).var(dim=0)
    return {
        "reconstruction_mse_per_pixel": squared / x.numel(),
        "reconstruction_sse_per_image": squared / len(x),
        "active_units": int((variance > 0.01).sum()),
        "latent_dim": int(variance.numel()),
    }


@torch.inference_mode()
def generate(model: VAE, n: int, seed: int = 0, batch_size: int = 2000) -> torch.Tensor:
    """Pixel means of decoded z ~ N(0, I): what the service's /sample returns."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, *model.arch.latent_shape, generator=generator)
    return torch.cat([torch.sigmoid(model.decode(z[s : s + batch_size])) for s in range(0, n, batch_size)])


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) between two feature sets."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(linalg.sqrtm(cov_a @ cov_b))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def class_coverage(labels: np.ndarray, num_classes: int) -> dict:
    share = np.bincount(labels, minlength=num_classes) / len(labels)
    nonzero = share[share > 0]
    entropy = float(-(nonzero * np.log(nonzero)).sum())
    return {
        "share_per_class": [round(float(s), 4) for s in share],
        "entropy_nats": round(entropy, 4),
        "max_entropy_nats": round(math.log(num_classes), 4),
    }


def sample_quality(
    model: VAE,
    classifier: Classifier,
    test_x: torch.Tensor,
    train_x: torch.Tensor,
    n_samples: int = 10_000,
    seed: int = 0,
) -> dict:
    """Fréchet distance and class coverage of samples, in the features of a classifier trained on the data."""
    samples = generate(model, n_samples, seed=seed)
    sample_features, sample_labels = predict(classifier, samples)
    test_features, _ = predict(classifier, test_x)
    train_features, _ = predict(classifier, train_x)
    return {
        "n_samples": n_samples,
        "frechet_distance_samples_vs_test": round(frechet_distance(sample_features.numpy(), test_features.numpy()), 3),
        "frechet_distance_floor_test_vs_train": round(
            frechet_distance(test_features.numpy(), train_features.numpy()), 3
        ),
        "class_coverage": class_coverage(sample_labels.numpy(), classifier.num_classes),
    }


def onnx_logits_decoder(model: VAE, folder):
    """The torch decoder exported without its sigmoid and run by onnxruntime (parity-checked)."""
    path = Path(folder) / "decoder-logits.onnx"
    latent_shape = model.arch.latent_shape
    generator = torch.Generator().manual_seed(0)
    export_graph(model.decoder, torch.randn(2, *latent_shape), path, "z", ["logits"])
    check_parity(model.decoder, path, lambda n: torch.randn(n, *latent_shape, generator=generator))
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda z: torch.from_numpy(session.run(None, {"z": z.numpy()})[0])


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, round(time.perf_counter() - started, 1)


def evaluate_run(
    run_dir,
    classifier_dir=None,
    *,
    nll_k: int = 1000,
    nll_images: int | None = None,
    n_samples: int = 10_000,
    threads: int | None = None,
    seed: int = 0,
) -> dict:
    """Every figure the model card reports, written to run_dir/eval.json."""
    set_threads(threads)
    run_dir = Path(run_dir)
    model, config = runs.load_model(run_dir)
    dataset = load_data(config)
    test_x = to_tensor(dataset.test.images, config.limit_test)
    targets = model.evaluation_targets(test_x)

    torch.manual_seed(seed)
    elbo, elbo_seconds = timed(test_elbo, model, targets)
    nll_targets = targets[:nll_images] if nll_images else targets
    with tempfile.TemporaryDirectory() as folder:
        decode = onnx_logits_decoder(model, folder)
        nll, nll_seconds = timed(importance_sampled_nll, model, nll_targets, k=nll_k, seed=seed, decode=decode)
    quality, quality_seconds, classifier_report = _sample_quality_if_possible(
        model, dataset, classifier_dir, test_x, n_samples, seed
    )
    report = {
        "test_set": _test_set_description(model),
        "test_neg_elbo_nats": round(elbo["neg_elbo"], 3),
        "test_recon_nats": round(elbo["recon"], 3),
        "test_kl_nats": round(elbo["kl"], 3),
        "importance_sampled_nll_nats": round(nll.mean().item(), 3),
        "importance_sampled_nll_stderr": round((nll.std() / math.sqrt(len(nll))).item(), 3),
        "importance_samples_k": nll_k,
        "nll_test_images": len(nll_targets),
        **_bits_per_dim(model, elbo["neg_elbo"], nll.mean().item()),
        **reconstruction_and_activity(model, test_x),
        "sample_quality": quality,
        **({"classifier": classifier_report} if classifier_report else {}),
        "seconds": {"elbo": elbo_seconds, "nll": nll_seconds, "sample_quality": quality_seconds},
        "command": (
            f"python -m training evaluate --run {run_dir}"
            + (f" --classifier {classifier_dir}" if classifier_dir else "")
            + f" --nll-k {nll_k}"
            + (f" --nll-images {nll_images}" if nll_images else "")
            + f" --n-samples {n_samples}"
        ),
    }
    runs.write_eval(run_dir, report)
    return report


def _test_set_description(model: VAE) -> str:
    if model.likelihood == "bernoulli":
        return "dynamically binarized test set (one fixed binarization, seed 1234)"
    if model.dequantizes:
        return "test set, 8-bit pixels uniformly dequantized to [0, 1) (one fixed draw, seed 1234)"
    return "test set, pixels in [0, 1]"


def _bits_per_dim(model: VAE, neg_elbo: float, nll: float) -> dict:
    """Bits per dimension for the learned-scale Gaussian, whose density is over dequantized pixels."""
    if not model.dequantizes:
        return {}
    dims = math.prod(model.arch.image_shape)
    return {
        "bits_per_dim": round(bits_per_dim(nll, dims), 4),
        "bits_per_dim_elbo": round(bits_per_dim(neg_elbo, dims), 4),
        "bits_per_dim_method": "(NLL + D ln 256) / (D ln 2), D = C*H*W: a Gaussian density on uniformly "
        "dequantized 8-bit pixels bounds the discrete NLL (Theis et al. 2016); NLL from importance sampling",
        "decoder_sigma_per_channel": [round(s, 4) for s in model.log_scale.detach().exp().flatten().tolist()],
    }


def _sample_quality_if_possible(model, dataset, classifier_dir, test_x, n_samples, seed):
    """(sample_quality, seconds, classifier report); skipped with the reason when it cannot run."""
    if not dataset.classes:
        return {"skipped": "no class labels"}, 0.0, None
    if classifier_dir is None:
        return {"skipped": "no classifier given (evaluate --classifier)"}, 0.0, None
    classifier, classifier_report = load_classifier(Path(classifier_dir))
    trained_on = tuple(classifier_report.get("image_shape", (1, 28, 28)))
    if trained_on != tuple(model.arch.image_shape) or classifier_report["dataset"] != dataset.name:
        raise SystemExit(
            f"{classifier_dir} was trained on {classifier_report['dataset']} {list(trained_on)}, "
            f"the model on {dataset.name} {list(model.arch.image_shape)}"
        )
    train_x = to_tensor(dataset.train.images, 10_000)
    quality, seconds = timed(sample_quality, model, classifier, test_x, train_x, n_samples, seed)
    return quality, seconds, classifier_report
