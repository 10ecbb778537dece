"""Export a trained run as models/<name>/{encoder,decoder}.onnx + model.json (the model card), and
projection.json, the latent map of its test set (training/projection.py).

The model card is the contract with the service; its schema is documented in
docs/model-card.md and versioned by CARD_SCHEMA_VERSION.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from training import runs
from training.cards import sha256_file
from training.data import CLASS_NAMES
from training.model import VAE
from training.projection import ProjectionDataMissing, write_projection

log = logging.getLogger("training.export")

CARD_SCHEMA_VERSION = 1
OPSET = 18
PARITY_BATCHES = (1, 3, 64)
PARITY_TOLERANCE = 1e-4
PREPROCESSING = {"mnist": "mnist-digit", "fashion-mnist": "fashion-product"}  # else "fit" (folder data)


class DecoderWithSigmoid(nn.Module):
    """z -> pixel means in [0, 1] (for bernoulli: the pixel probability)."""

    def __init__(self, model: VAE):
        super().__init__()
        self.decoder = model.decoder

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))


def export_graph(
    module: nn.Module, example: torch.Tensor, path: Path, input_name: str, output_names: list[str]
) -> None:
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    program = torch.onnx.export(
        module,
        (example,),
        dynamo=True,
        input_names=[input_name],
        output_names=output_names,
        dynamic_shapes=({0: batch},),
        opset_version=OPSET,
        external_data=False,
    )
    program.save(str(path))
    onnx.checker.check_model(str(path), full_check=True)


def check_parity(module: nn.Module, path: Path, make_input, batches=PARITY_BATCHES) -> float:
    """Max |onnxruntime - torch| over the given batch sizes; raises if above tolerance."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    if isinstance(session.get_inputs()[0].shape[0], int):
        raise RuntimeError(f"{path.name}: batch axis is fixed, expected a dynamic one")
    worst = 0.0
    for n in batches:
        x = make_input(n)
        with torch.no_grad():
            expected = module(x)
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        for e, g in zip(expected, got, strict=True):
            if g.shape != tuple(e.shape):
                raise RuntimeError(f"{path.name}: batch {n} gave shape {g.shape}, torch {tuple(e.shape)}")
            worst = max(worst, float(np.abs(e.numpy() - g).max()))
    if worst > PARITY_TOLERANCE:
        raise RuntimeError(f"{path.name}: onnxruntime differs from torch by {worst:.2e} > {PARITY_TOLERANCE}")
    return worst


def export_model(
    model: VAE,
    out_dir: Path,
    *,
    name: str,
    dataset: str,
    version: str,
    training: dict,
    metrics: dict | None = None,
    preprocessing: dict | None = None,
    labels: list[str] | None = None,
) -> dict:
    """Write both graphs and the card; returns the card.

    `preprocessing` is the card's {"preprocessing": ..., "preprocessing_options": ...}; by default
    the built-in dataset's own (mnist-digit, fashion-product).
    """
    model = model.cpu().eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    image_shape = list(model.arch.image_shape)
    latent_shape = list(model.arch.latent_shape)
    generator = torch.Generator().manual_seed(0)

    def images(n: int) -> torch.Tensor:
        return torch.rand(n, *image_shape, generator=generator)

    def latents(n: int) -> torch.Tensor:
        return torch.randn(n, *latent_shape, generator=generator)

    encoder_path, decoder_path = out_dir / "encoder.onnx", out_dir / "decoder.onnx"
    decoder = DecoderWithSigmoid(model).eval()
    # Example batches of size >= 2, else the dynamo exporter specialises the batch axis to 1.
    export_graph(model.encoder, images(2), encoder_path, "image", ["mu", "logvar"])
    export_graph(decoder, latents(2), decoder_path, "z", ["image"])
    parity = {
        "encoder": check_parity(model.encoder, encoder_path, images),
        "decoder": check_parity(decoder, decoder_path, latents),
    }
    card = {
        "schema_version": CARD_SCHEMA_VERSION,
        "name": name,
        "version": version,
        "dataset": dataset,
        "image_shape": image_shape,
        "latent_dim": math.prod(latent_shape),
        "latent_shape": latent_shape,
        "likelihood": model.likelihood,
        "decoder_output": "probabilities",  # the graph applies the sigmoid: pixel means in [0, 1]
        **(preprocessing or {"preprocessing": PREPROCESSING.get(dataset, "none")}),
        **({"labels": list(labels)} if labels else {}),
        "files": {
            "encoder": {"path": encoder_path.name, "sha256": sha256_file(encoder_path)},
            "decoder": {"path": decoder_path.name, "sha256": sha256_file(decoder_path)},
        },
        "graphs": {
            "encoder": {
                "inputs": {"image": ["N", *image_shape]},
                "outputs": {"mu": ["N", *latent_shape], "logvar": ["N", *latent_shape]},
            },
            "decoder": {
                "inputs": {"z": ["N", *latent_shape]},
                "outputs": {"image": ["N", *image_shape]},
            },
        },
        "export": {
            "opset": OPSET,
            "parity_max_abs_diff": parity,
            "parity_batches": list(PARITY_BATCHES),
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
        },
        "training": training,
        "metrics": metrics or {},
    }
    write_card(out_dir, card)
    return card


def write_card(out_dir: Path, card: dict) -> None:
    (out_dir / "model.json").write_text(json.dumps(card, indent=2) + "\n")


def read_card(out_dir: Path) -> dict:
    return json.loads((out_dir / "model.json").read_text())


def _training_summary(run_dir: Path) -> dict:
    config = runs.read_config(run_dir)
    epochs = runs.read_metrics(run_dir)
    data = runs.read_data_summary(run_dir)
    summary = {
        "config": config.to_dict(),
        **({"data": data["source"]} if "source" in data else {}),
        "epochs_completed": len(epochs),
        "train_seconds": round(sum(e["epoch_seconds"] for e in epochs), 1),
        "final_epoch": epochs[-1] if epochs else None,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "command": " ".join(["python -m training train --out", str(run_dir), *config.command_line()]),
    }
    if config.init_from:
        summary["started_from"] = _started_from(Path(config.init_from))
    earlier = summary.get("started_from", {}).get("total_train_seconds", 0.0)
    summary["total_train_seconds"] = round(summary["train_seconds"] + earlier, 1)
    return summary


def _started_from(source: Path) -> dict:
    """What a fine-tuned run's weights started from: a run's summary or a model card's training
    section, whose own history nests inside, so the card shows the whole chain and its cost."""
    earlier = read_card(source)["training"] if (source / "model.json").exists() else _training_summary(source)
    earlier.setdefault("total_train_seconds", earlier.get("train_seconds", 0.0))
    return {"path": str(source), **earlier}


def _preprocessing(config) -> dict:
    """The card's preprocessing: the built-in dataset's own, or `fit` with the folder's settings."""
    if config.data is None:
        return {"preprocessing": PREPROCESSING[config.dataset]}
    return {
        "preprocessing": "fit",
        "preprocessing_options": {"background": list(config.background_rgb), "resize": config.resize},
    }


def _selection(run_dir: Path, compare_with: list[Path], chosen: str) -> dict | None:
    """Which likelihood gives better samples (lower classifier FD) at an equal schedule."""
    if not compare_with:
        return None
    candidates = []
    for other in compare_with:
        config, report = runs.read_config(other), runs.read_eval(other)
        quality = report.get("sample_quality", {})
        if "frechet_distance_samples_vs_test" not in quality:
            raise SystemExit(f"--compare-with {other}: no Fréchet distance in its eval.json ({quality or 'no eval'})")
        candidates.append(
            {
                "run": str(other),
                "likelihood": config.likelihood,
                "epochs": config.epochs,
                "frechet_distance": quality["frechet_distance_samples_vs_test"],
                "class_entropy_nats": quality["class_coverage"]["entropy_nats"],
            }
        )
    best = min(candidates, key=lambda c: c["frechet_distance"])
    scores = ", ".join(f"{c['likelihood']} {c['frechet_distance']}" for c in candidates)
    return {
        "reason": f"{best['likelihood']} samples are closer to the test set in classifier features "
        f"(Fréchet distance, lower is better: {scores})",
        "rule": "ship the likelihood whose samples have the lower classifier Fréchet distance to the test set, "
        "comparing runs trained with the same schedule",
        "candidates": candidates,
        "winner": best["likelihood"],
        "shipped_likelihood": chosen,
    }


def export_run(
    run_dir: Path,
    out_dir: Path,
    *,
    name: str,
    version: str,
    compare_with: Sequence[Path] = (),
    note: str | None = None,
) -> dict:
    model, config = runs.load_model(run_dir)
    metrics = runs.read_eval(run_dir)
    selection = _selection(run_dir, list(compare_with), config.likelihood)
    if selection and selection["winner"] != config.likelihood:
        raise SystemExit(f"{run_dir} uses {config.likelihood} but {selection['winner']} scored the better FD")
    training = _training_summary(run_dir)
    if selection:
        training["likelihood_selection"] = selection
    if note:
        training["note"] = note
    labels = runs.read_data_summary(run_dir).get("class_names")
    if labels is None and config.data is None:
        labels = list(CLASS_NAMES[config.dataset])  # a run from before data.json
    started = time.perf_counter()
    card = export_model(
        model,
        out_dir,
        name=name,
        dataset=config.source_name,
        version=version,
        training=training,
        metrics=metrics,
        preprocessing=_preprocessing(config),
        labels=labels,
    )
    card["export"]["seconds"] = round(time.perf_counter() - started, 1)
    write_card(out_dir, card)
    try:
        write_projection(out_dir)  # the latent map of the test set; names files.projection in the card
    except ProjectionDataMissing as error:
        log.warning("%s; exported without a projection (add it later: python -m training project %s)", error, out_dir)
    return read_card(out_dir)
