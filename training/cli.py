"""Command line for the offline half: prepare-data, train, train-classifier, evaluate, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from training.config import TrainConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.command("prepare-data")
def prepare_data(dataset: Annotated[list[str], typer.Argument()] = ["mnist", "fashion-mnist"]) -> None:
    """Read the installed sources, verify counts and checksums, cache as .npz."""
    from training.data import load_dataset

    for name in dataset:
        data = load_dataset(name)
        typer.echo(f"{name}: train {data.train.images.shape}, test {data.test.images.shape}: verified")


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="run folder (checkpoint, config, metrics)")],
    dataset: Annotated[str, typer.Option()] = "mnist",
    likelihood: Annotated[str, typer.Option(help="bernoulli or gaussian")] = "bernoulli",
    latent_dim: Annotated[int, typer.Option()] = 32,
    channels: Annotated[int, typer.Option()] = 32,
    hidden: Annotated[int, typer.Option()] = 512,
    epochs: Annotated[int, typer.Option()] = 100,
    batch_size: Annotated[int, typer.Option()] = 128,
    lr: Annotated[float, typer.Option()] = 1e-3,
    lr_final: Annotated[float, typer.Option()] = 1e-4,
    beta: Annotated[float, typer.Option()] = 1.0,
    kl_warmup_epochs: Annotated[int, typer.Option()] = 0,
    seed: Annotated[int, typer.Option()] = 0,
    limit_train: Annotated[Optional[int], typer.Option()] = None,
    limit_test: Annotated[Optional[int], typer.Option()] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all cores)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from out/checkpoint.pt")] = False,
) -> None:
    """Train a VAE; a checkpoint every epoch, metrics in out/metrics.jsonl."""
    from training.train import train as run_training

    if likelihood not in ("bernoulli", "gaussian"):
        raise typer.BadParameter("likelihood must be bernoulli or gaussian")
    config = TrainConfig(
        dataset=dataset, likelihood=likelihood, latent_dim=latent_dim, channels=channels,
        hidden=hidden, epochs=epochs, batch_size=batch_size, lr=lr, lr_final=lr_final,
        beta=beta, kl_warmup_epochs=kl_warmup_epochs, seed=seed,
        limit_train=limit_train, limit_test=limit_test,
    )
    run_training(config, out, resume=resume, threads=threads)


@app.command("train-classifier")
def train_classifier_command(
    out: Annotated[Path, typer.Option(help="folder for classifier.pt and classifier.json")],
    dataset: Annotated[str, typer.Option()] = "mnist",
    epochs: Annotated[int, typer.Option()] = 4,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[Optional[int], typer.Option()] = None,
    limit_train: Annotated[Optional[int], typer.Option()] = None,
) -> None:
    """Train the small CNN whose features score sample quality (FD, class coverage)."""
    from training.classifier import train_classifier
    from training.data import load_dataset

    report = train_classifier(load_dataset(dataset), out, epochs=epochs, seed=seed, threads=threads, limit_train=limit_train)
    typer.echo(json.dumps(report, indent=2))


@app.command()
def evaluate(
    run: Annotated[Path, typer.Option(help="run folder from `train`")],
    classifier: Annotated[Path, typer.Option(help="folder from `train-classifier`")],
    nll_k: Annotated[int, typer.Option(help="importance samples per image")] = 1000,
    nll_images: Annotated[Optional[int], typer.Option(help="first N test images (default: all)")] = None,
    n_samples: Annotated[int, typer.Option(help="samples for the Fréchet distance")] = 10_000,
    threads: Annotated[Optional[int], typer.Option()] = None,
) -> None:
    """Test ELBO, importance-sampled NLL, reconstruction, active units, FD and coverage -> run/eval.json."""
    from training.evaluate import evaluate_run

    report = evaluate_run(run, classifier, nll_k=nll_k, nll_images=nll_images, n_samples=n_samples, threads=threads)
    typer.echo(json.dumps(report, indent=2))


@app.command()
def export(
    run: Annotated[Path, typer.Option(help="run folder from `train` (with eval.json from `evaluate`)")],
    out: Annotated[Path, typer.Option(help="model folder, e.g. models/mnist")],
    name: Annotated[Optional[str], typer.Option(help="model name (default: the folder name)")] = None,
    version: Annotated[str, typer.Option()] = "1.0.0",
    compare_with: Annotated[list[Path], typer.Option(help="runs of the other likelihood, for the card's selection note")] = [],
    note: Annotated[Optional[str], typer.Option(help="free text for the card's training section")] = None,
) -> None:
    """Write encoder.onnx, decoder.onnx (checked against torch) and model.json."""
    from training.export import export_run

    card = export_run(run, out, name=name or out.name, version=version, compare_with=compare_with, note=note)
    typer.echo(f"exported {card['name']} to {out}: parity {card['export']['parity_max_abs_diff']}")
