"""Command line for the offline half: prepare-data, train, train-classifier, evaluate, export."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Optional, get_type_hints

import typer

from training.config import DatasetName, TrainConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.callback()
def _log_to_stderr() -> None:
    # Under torchrun only process 0 reports progress; the others still report problems.
    level = logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def with_config_options(command):
    """Give `command` one --option per TrainConfig field (type, default and help from the field).

    The command declares a `config: TrainConfig` parameter and receives the built config there;
    a value the config rejects is reported as a bad option.
    """
    hints = get_type_hints(TrainConfig)
    config_params = [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=f.default,
            annotation=Annotated[hints[f.name], typer.Option(help=f.metadata["help"], show_default=True)],
        )
        for f in fields(TrainConfig)
        if "help" in f.metadata
    ]
    own = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in inspect.signature(command, eval_str=True).parameters.values()
    ]

    @functools.wraps(command)
    def wrapper(**options):
        values = {p.name: options.pop(p.name) for p in config_params}
        try:
            config = TrainConfig(**values)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
        return command(config=config, **options)

    parameters = [p for p in own if p.name != "config"]
    wrapper.__signature__ = inspect.Signature(parameters[:1] + config_params + parameters[1:])
    wrapper.__annotations__ = {p.name: p.annotation for p in wrapper.__signature__.parameters.values()}
    return wrapper


@app.command("prepare-data")
def prepare_data(
    dataset: Annotated[list[str], typer.Argument(help="mnist, fashion-mnist")] = ("mnist", "fashion-mnist"),
) -> None:
    """Read the installed sources, verify counts and checksums, cache as .npz."""
    from training.data import load_dataset

    for name in dataset:
        data = load_dataset(name)
        typer.echo(f"{name}: train {data.train.images.shape}, test {data.test.images.shape}: verified")


@app.command()
@with_config_options
def train(
    out: Annotated[Path, typer.Option(help="run folder (checkpoint, config, metrics)")],
    config: TrainConfig,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads per process (default: all cores)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from out/checkpoint.pt")] = False,
) -> None:
    """Train a VAE; a checkpoint every epoch, metrics in out/metrics.jsonl. Runs under torchrun too."""
    from training.train import train as run_training

    run_training(config, out, resume=resume, threads=threads)


@app.command("train-classifier")
def train_classifier_command(
    out: Annotated[Path, typer.Option(help="folder for classifier.pt and classifier.json")],
    dataset: Annotated[DatasetName, typer.Option(help="built-in dataset")] = "mnist",
    run: Annotated[Optional[Path], typer.Option(help="train on the data of this VAE run instead")] = None,
    epochs: Annotated[int, typer.Option()] = 4,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[Optional[int], typer.Option()] = None,
    limit_train: Annotated[Optional[int], typer.Option()] = None,
) -> None:
    """Train the small CNN whose features score sample quality (FD, class coverage)."""
    from training import runs
    from training.classifier import train_classifier
    from training.data import load_data, load_dataset

    data = load_data(runs.read_config(run)) if run else load_dataset(dataset)
    report = train_classifier(data, out, epochs=epochs, seed=seed, threads=threads, limit_train=limit_train)
    typer.echo(json.dumps(report, indent=2))


@app.command()
def evaluate(
    run: Annotated[Path, typer.Option(help="run folder from `train`")],
    classifier: Annotated[
        Optional[Path], typer.Option(help="folder from `train-classifier` (without: no FD or coverage)")
    ] = None,
    nll_k: Annotated[int, typer.Option(help="importance samples per image")] = 1000,
    nll_images: Annotated[Optional[int], typer.Option(help="first N test images (default: all)")] = None,
    n_samples: Annotated[int, typer.Option(help="samples for the Fréchet distance")] = 10_000,
    threads: Annotated[Optional[int], typer.Option()] = None,
) -> None:
    """Test ELBO, importance-sampled NLL, bits/dim, reconstruction, active units, FD and coverage -> run/eval.json."""
    from training.evaluate import evaluate_run

    report = evaluate_run(run, classifier, nll_k=nll_k, nll_images=nll_images, n_samples=n_samples, threads=threads)
    typer.echo(json.dumps(report, indent=2))


@app.command("fit-prior")
def fit_prior_command(
    model: Annotated[Path, typer.Argument(help="model folder (models/NAME) or run folder")],
    classifier: Annotated[
        Optional[Path], typer.Option(help="folder from `train-classifier` (without: no FD or class fidelity)")
    ] = None,
    components: Annotated[list[int], typer.Option(help="mixture sizes K to choose from")] = (10, 25, 50, 100),
    fit_images: Annotated[
        int, typer.Option(help="training images the mixture is fitted on; 5,000 others choose K")
    ] = 30_000,
    samples_per_image: Annotated[int, typer.Option(help="posterior samples per fitted image")] = 1,
    class_components: Annotated[int, typer.Option(help="mixture components per class")] = 4,
    guide: Annotated[
        Optional[Path],
        typer.Option(
            help="a second classifier (train-classifier with another --seed): class priors are fitted only on "
            "images whose reconstruction it recognises"
        ),
    ] = None,
    guide_confidence: Annotated[
        float, typer.Option(help="least probability the guide gives a reconstruction's own label", min=0, max=1)
    ] = 0.5,
    n_samples: Annotated[int, typer.Option(help="samples per prior for the Fréchet distance")] = 10_000,
    nll_images: Annotated[int, typer.Option(help="test images for the NLL under each prior")] = 1_000,
    nll_k: Annotated[int, typer.Option(help="importance samples per image")] = 200,
    threads: Annotated[Optional[int], typer.Option()] = None,
) -> None:
    """Fit a mixture prior (K by held-out likelihood) and per-class priors -> prior.npz + the card's `prior`."""
    from training.priors import fit_prior

    report = fit_prior(
        model,
        classifier,
        components=tuple(components),
        fit_images=fit_images,
        samples_per_image=samples_per_image,
        class_components=class_components,
        guide_dir=guide,
        guide_confidence=guide_confidence,
        n_samples=n_samples,
        nll_images=nll_images,
        nll_k=nll_k,
        threads=threads,
    )
    typer.echo(json.dumps(report, indent=2))


@app.command("score-table")
def score_table_command(
    model: Annotated[Path, typer.Argument(help="model folder (models/NAME)")],
    ood: Annotated[
        Optional[str], typer.Option(help="a built-in dataset the model should flag, for the AUROC figures")
    ] = None,
    images: Annotated[Optional[int], typer.Option(help="first N test images (default: all)")] = None,
    k: Annotated[int, typer.Option(help="importance samples per image, as /score's default")] = 64,
    threads: Annotated[Optional[int], typer.Option()] = None,
) -> None:
    """Score the test set as /score does -> scores.npz (percentiles, outlier flag) + the card's `scores`."""
    from training.scores import score_table

    report = score_table(model, ood=ood, images=images, k=k, threads=threads)
    typer.echo(json.dumps(report, indent=2))


@app.command()
def export(
    run: Annotated[Path, typer.Option(help="run folder from `train` (with eval.json from `evaluate`)")],
    out: Annotated[Path, typer.Option(help="model folder, e.g. models/mnist")],
    name: Annotated[Optional[str], typer.Option(help="model name (default: the folder name)")] = None,
    version: Annotated[str, typer.Option()] = "1.0.0",
    compare_with: Annotated[
        list[Path], typer.Option(help="runs of the other likelihood, for the card's selection note")
    ] = (),
    note: Annotated[Optional[str], typer.Option(help="free text for the card's training section")] = None,
) -> None:
    """Write encoder.onnx, decoder.onnx (checked against torch) and model.json."""
    from training.export import export_run

    card = export_run(run, out, name=name or out.name, version=version, compare_with=compare_with, note=note)
    typer.echo(f"exported {card['name']} to {out}: parity {card['export']['parity_max_abs_diff']}")


@app.command()
def project(
    model: Annotated[Path, typer.Argument(help="model folder with model.json and encoder.onnx, e.g. models/mnist")],
    points: Annotated[
        int, typer.Option(help="test images drawn on the map (all, when the test set is smaller)")
    ] = 2000,
    seed: Annotated[int, typer.Option(help="seeds which test images are drawn")] = 0,
    threads: Annotated[Optional[int], typer.Option(help="onnxruntime threads (default: all cores)")] = None,
) -> None:
    """The latent map: PCA of the test set's encoder means -> projection.json + the card's files.projection."""
    from training.projection import ProjectionDataMissing, write_projection

    try:
        projection = write_projection(model, points=points, seed=seed, threads=threads)
    except ProjectionDataMissing as error:
        raise SystemExit(str(error)) from None
    ratio = projection["explained_variance_ratio"]
    typer.echo(
        f"{model / 'projection.json'}: {len(projection['points'])} of {projection['test_images']} test images; "
        f"pc1 {ratio[0]:.1%} and pc2 {ratio[1]:.1%} of the means' variance"
    )
