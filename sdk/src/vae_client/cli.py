"""The `vae` command line (needs the `cli` extra: pip install 'vae-client[cli]').

    vae sample -n 16 -o grid.png
    vae encode digit.png
    vae reconstruct digit.png -o out.png
    vae score digit.png other.png
    vae models

The server is `--url`, else $VAE_URL, else http://localhost:8000. Errors from the service
print as `error: <status> <code>: <message>` on stderr and exit with status 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np

try:
    import typer
except ImportError:  # the console script is installed even without the `cli` extra
    raise SystemExit("vae: the command line needs typer: pip install 'vae-client[cli]'") from None

from ._images import encode_png, grid, load_npy
from ._transport import DEFAULT_RETRIES, DEFAULT_TIMEOUT, DEFAULT_URL, URL_ENV_VAR
from .client import Client
from .errors import VAEError
from .models import EncodeResult, ImageResult, ScoreResult

app = typer.Typer(
    name="vae",
    help="Sample, encode, decode, reconstruct and score images with the VAE service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ModelOption = Annotated[str | None, typer.Option("--model", "-m", help="Model name (default: the server's default).")]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Random seed, for repeatable results.")]
ImagesArgument = Annotated[
    list[Path],
    typer.Argument(help="Image files (PNG, JPEG, BMP, GIF, WebP).", exists=True, dir_okay=False, readable=True),
]
RawOption = Annotated[
    bool,
    typer.Option(
        "--raw", help="Skip dataset-style normalisation: only convert to the model's channels and resize to its size."
    ),
]
SampleOption = Annotated[bool, typer.Option("--sample", help="Draw z from the posterior instead of using its mean.")]
ImageOutputOption = Annotated[Path, typer.Option("-o", "--output", help="Output .png (grid) or .npy (array).")]


@dataclass(frozen=True)
class Connection:
    url: str
    timeout: float
    retries: int

    def client(self) -> Client:
        return Client(self.url, timeout=self.timeout, retries=self.retries)


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option("--url", envvar=URL_ENV_VAR, help="Base URL of the service.", show_envvar=True)
    ] = DEFAULT_URL,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for each request.")] = DEFAULT_TIMEOUT,
    retries: Annotated[
        int, typer.Option("--retries", help="Retries on 429/503 (honouring Retry-After).", min=0)
    ] = DEFAULT_RETRIES,
) -> None:
    """Talk to the VAE service."""
    ctx.obj = Connection(url, timeout, retries)


@contextmanager
def _connect(ctx: typer.Context) -> Iterator[Client]:
    """A client for the chosen server; service and input errors become one stderr line."""
    try:
        with ctx.obj.client() as client:
            yield client
    except VAEError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except (OSError, ValueError, TypeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _save(result: ImageResult, output: Path) -> str:
    """`.npy` keeps the float32 [N, C, H, W] array; anything else is a PNG grid (RGB for colour models)."""
    if output.suffix.lower() == ".npy":
        result.save_npy(output)
        return "array"
    result.save_grid(output)
    return "PNG grid"


def _report(noun: str, result: ImageResult, output: Path) -> None:
    kind = _save(result, output)
    model = f" (model {result.model})" if result.model else ""
    plural = "" if len(result) == 1 else "s"
    typer.echo(f"wrote {len(result)} {noun}{plural}{model} to {output} as {kind}")


@app.command()
def sample(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("-n", "--count", help="How many images.", min=1)] = 16,
    output: ImageOutputOption = Path("samples.png"),
    seed: SeedOption = None,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help="Prior scale T: z ~ N(0, T^2 I).")] = 1.0,
    prior: Annotated[
        str | None,
        typer.Option("--prior", help="standard (N(0, I)) or mixture (stored with the model); default: the card's."),
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="A class name or index: draw from that class's stored prior.")
    ] = None,
    model: ModelOption = None,
) -> None:
    """Draw images from the prior and save them."""
    with _connect(ctx) as client:
        result = client.sample(n, seed=seed, temperature=temperature, model=model, prior=prior, label=label)
        _report("sample", result, output)


def _encoding_lines(result: EncodeResult) -> Iterator[str]:
    for index, filename in enumerate(result.filenames):
        line = {"filename": filename, "mu": result.mu[index].tolist(), "logvar": result.logvar[index].tolist()}
        if result.z is not None:
            line["z"] = result.z[index].tolist()
        yield json.dumps(line)


@app.command()
def encode(
    ctx: typer.Context,
    images: ImagesArgument,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Also save the latents [N, *latent_shape] (z or mu) as .npy.")
    ] = None,
    sample: SampleOption = False,
    seed: SeedOption = None,
    raw: RawOption = False,
    model: ModelOption = None,
) -> None:
    """Print each image's latent mean and log-variance, one JSON line per image."""
    with _connect(ctx) as client:
        result = client.encode(images, model=model, normalize=not raw, sample=sample, seed=seed)
        for line in _encoding_lines(result):
            typer.echo(line)
        if output is not None:
            np.save(output, result.latents, allow_pickle=False)
            typer.echo(f"wrote latents {result.latents.shape} to {output}", err=True)


@app.command()
def decode(
    ctx: typer.Context,
    latents: Annotated[
        Path,
        typer.Argument(
            help=".npy file of latents [N, *latent_shape] or one latent (e.g. [N, D], [D], [N, C, h, w]).",
            exists=True,
            dir_okay=False,
        ),
    ],
    output: ImageOutputOption = Path("decoded.png"),
    model: ModelOption = None,
) -> None:
    """Decode latents from a .npy file into images."""
    with _connect(ctx) as client:
        result = client.decode(load_npy(latents.read_bytes()), model=model)
        _report("image", result, output)


@app.command()
def reconstruct(
    ctx: typer.Context,
    images: ImagesArgument,
    output: ImageOutputOption = Path("reconstruction.png"),
    sample: SampleOption = False,
    seed: SeedOption = None,
    raw: RawOption = False,
    model: ModelOption = None,
) -> None:
    """Encode and decode images, and save the reconstructions."""
    with _connect(ctx) as client:
        result = client.reconstruct(images, model=model, normalize=not raw, sample=sample, seed=seed)
        _report("reconstruction", result, output)


def _print_table(rows: list[tuple[str, ...]]) -> None:
    """Left-aligned columns two spaces apart; the first row is the header."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _figure(value: float | bool | None, spec: str = ".2f") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format(value, spec)


def _score_rows(result: ScoreResult, names: list[str]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("FILE", "NEG_ELBO", "NLL", "BITS/DIM", "PERCENTILE", "OUTLIER")]
    for name, row in zip(names, result.results, strict=True):
        rows.append(
            (
                name,
                _figure(row.neg_elbo),
                _figure(row.nll),
                _figure(row.bits_per_dim, ".4f"),
                _figure(row.percentile, ".1f"),
                _figure(row.outlier),
            )
        )
    return rows


@app.command()
def score(
    ctx: typer.Context,
    images: ImagesArgument,
    k: Annotated[int, typer.Option("--k", "-k", help="Importance samples per image.", min=1)] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the importance samples: same seed, same scores.")] = 0,
    raw: RawOption = False,
    model: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the service's JSON answer.")] = False,
) -> None:
    """Score how likely each image is under the model: one line per image (nats; NLL from k samples)."""
    with _connect(ctx) as client:
        result = client.score(images, k=k, seed=seed, normalize=not raw, model=model)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    rows = _score_rows(result, [str(path) for path in images])
    _print_table(rows)
    reference = (
        f"outlier: outlier score above {result.outlier_percentile:g}, from {result.table.images} test images"
        if result.table is not None and result.outlier_percentile is not None
        else "no test-set table: no percentile or outlier flag"
    )
    typer.echo(f"(model {result.model}, k {result.k}, seed {result.seed}, prior {result.prior}; {reference})")


def _endpoint(text: str) -> Any:
    """`seed:7` is a seed; anything else a path to an image."""
    if text.startswith("seed:") and text[5:].isdigit():
        return int(text[5:])
    return Path(text)


@app.command()
def interpolate(
    ctx: typer.Context,
    start: Annotated[str, typer.Argument(help="An image file, or seed:N")],
    end: Annotated[str, typer.Argument(help="An image file, or seed:N (the same kind as START)")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help=".gif or .webp (animation), .png (a row) or .npy")
    ] = Path("walk.gif"),
    steps: Annotated[int, typer.Option("--steps", help="Frames, both ends included.", min=2)] = 8,
    method: Annotated[str, typer.Option("--method", help="linear or slerp.")] = "linear",
    model: ModelOption = None,
) -> None:
    """Walk from one image (or seed) to another through latent space."""
    with _connect(ctx) as client:
        result = client.interpolate(_endpoint(start), _endpoint(end), steps=steps, method=method, model=model)
        if output.suffix.lower() in (".gif", ".webp"):
            result.save_animation(output)
            kind = "animation"
        elif output.suffix.lower() == ".npy":
            result.save_npy(output)
            kind = "array"
        else:
            output.write_bytes(encode_png(grid(result.images, cols=len(result))))
            kind = "PNG row"
        typer.echo(f"wrote {len(result)} frames ({method}) to {output} as {kind}")


@app.command()
def traverse(
    ctx: typer.Context,
    start: Annotated[Path | None, typer.Argument(help="An image to start from (default: the origin)")] = None,
    output: ImageOutputOption = Path("traversal.png"),
    dims: Annotated[str | None, typer.Option("--dims", help="Dimensions to sweep, e.g. 0,5,7.")] = None,
    count: Annotated[int, typer.Option("--count", help="Else the COUNT most active dimensions.", min=1)] = 8,
    steps: Annotated[int, typer.Option("--steps", help="Values per dimension.", min=2)] = 7,
    span: Annotated[float, typer.Option("--span", help="Sweep each dimension over [-SPAN, SPAN].")] = 3.0,
    seed: SeedOption = None,
    model: ModelOption = None,
) -> None:
    """Sweep latent dimensions one at a time: one grid row per dimension."""
    chosen = [int(part) for part in dims.split(",")] if dims else None
    with _connect(ctx) as client:
        result = client.traverse(start, dims=chosen, count=count, steps=steps, span=span, seed=seed, model=model)
        _save(result, output)
        typer.echo(f"wrote dimensions {result.dims} x {result.steps} steps to {output}")


def _dims(shape: tuple[int, ...] | None) -> str | None:
    """(3, 64, 64) -> "3x64x64"; (32,) -> "32"."""
    return None if shape is None else "x".join(map(str, shape))


@app.command()
def models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw model list as JSON.")] = False,
) -> None:
    """List the served models."""
    with _connect(ctx) as client:
        listing = client.models()
    if as_json:
        body = {"default": listing.default, "models": [info.to_json() for info in listing]}
        typer.echo(json.dumps(body, indent=2))
        return
    rows: list[tuple[str, ...]] = [("NAME", "DATASET", "IMAGE", "LATENT", "VERSION", "PROVIDER")]
    for info in listing:
        name = f"{info.name} *" if info.name == listing.default else info.name
        cells = (info.dataset, _dims(info.image_shape), _dims(info.latent_shape), info.version, info.provider)
        rows.append((name, *(str(cell) if cell is not None else "-" for cell in cells)))
    _print_table(rows)
    typer.echo("(* default)")


@app.command()
def health(ctx: typer.Context) -> None:
    """Check that the service process is alive."""
    with _connect(ctx) as client:
        typer.echo(client.health().status)


@app.command()
def ready(
    ctx: typer.Context,
    wait: Annotated[float, typer.Option("--wait", help="Keep asking for up to this many seconds.", min=0)] = 0.0,
) -> None:
    """Check that every model is loaded; exit status 1 if not."""
    with _connect(ctx) as client:
        readiness = client.wait_until_ready(timeout=wait) if wait > 0 else client.ready()
    if not readiness:
        typer.echo(f"not ready: {readiness.code}: {readiness.message}", err=True)
        raise typer.Exit(1)
    typer.echo(f"ready: {', '.join(readiness.models) or 'no models'}")
