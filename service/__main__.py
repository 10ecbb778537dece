"""`python -m service`: the service's command line.

    python -m service [serve] [--host H] [--port P] [--model-dir DIR] [--workers N]   verify the models, then serve
    python -m service check [--model-dir DIR]                           verify every model; exit 0 or 2
    python -m service package --encoder E --decoder D --name N --out DIR  your own ONNX graphs -> a model

Options override the VAE_* environment (docs/configuration.md). On SIGTERM uvicorn stops
accepting connections and waits for in-flight requests (up to VAE_SHUTDOWN_TIMEOUT_S); the
lifespan then drains the batch queues before the process exits. With `--workers N` uvicorn's
supervisor hands SIGTERM on to each worker process, which drains the same way.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from service.app import create_app
from service.auth import SCOPES, KeyFileError, key_line
from service.config import Settings
from service.connections import WorkerProtocol, guarded_protocol
from service.packaging import PackageError, PackageOptions
from service.packaging import package as package_model
from service.registry import CUDA, ModelLoadError, Registry, load_registry
from service.request_ids import RequestIdFilter
from service.state import ServiceState

EXIT_INVALID = 2  # bad configuration or a model that cannot be served
Preprocessing = Literal["fit", "mnist-digit", "fashion-product"]
Likelihood = Literal["bernoulli", "gaussian"]
DecoderOutput = Literal["auto", "probabilities", "logits"]
Resize = Literal["pad", "crop"]

cli = typer.Typer(
    add_completion=False, help=__doc__.split("\n\n")[0], context_settings={"help_option_names": ["-h", "--help"]}
)


class DrainingServer(uvicorn.Server):
    """Marks the service as shutting down (GET /ready: 503) the moment a signal arrives."""

    def __init__(self, config: uvicorn.Config, service: ServiceState) -> None:
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.service.shutting_down = True
        super().handle_exit(sig, frame)


def load_settings(**overrides: Any) -> Settings:
    """The environment's settings with the given command-line values on top; exit 2 if invalid."""
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        problems = "; ".join(f"VAE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        typer.echo(f"vae-service: invalid configuration: {problems}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())


HostOption = Annotated[str | None, typer.Option(help="Bind address (env VAE_HOST, default 127.0.0.1)")]
PortOption = Annotated[int | None, typer.Option(help="Bind port (env VAE_PORT, default 8000)")]
ModelDirOption = Annotated[
    Path | None, typer.Option(help="Folder of model folders (env VAE_MODEL_DIR, default <repo>/models)")
]
WorkersOption = Annotated[
    int | None,
    typer.Option(help="Server processes, each with its own models and batchers (env VAE_WORKERS, default 1)"),
]


@cli.command(help="Verify every model, then serve them with uvicorn. The default command.")
def serve(
    host: HostOption = None, port: PortOption = None, model_dir: ModelDirOption = None, workers: WorkersOption = None
) -> None:
    settings = load_settings(host=host, port=port, model_dir=model_dir, workers=workers)
    configure_logging(settings)
    try:
        registry = load_registry(settings)
    except ModelLoadError as exc:
        typer.echo(f"vae-service: refusing to start: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    try:
        app = create_app(settings, registry=registry)
    except KeyFileError as exc:
        typer.echo(f"vae-service: refusing to start: {exc} (VAE_API_KEYS)", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    if settings.workers > 1:
        warning = gpu_sharing_warning(settings.workers, registry)
        if warning:
            logging.getLogger("service").warning(warning)
        del app, registry  # they proved that the models and keys can be served; each worker loads its own
        serve_workers(settings)
        return
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_s),
        timeout_keep_alive=math.ceil(settings.keep_alive_timeout_s),
        http=guarded_protocol(settings, app.state.service.metrics),
        lifespan="on",
    )
    server = DrainingServer(config, app.state.service)
    server.run()
    if not server.started:
        raise typer.Exit(3)


def gpu_sharing_warning(workers: int, registry: Registry) -> str | None:
    """What to log when several processes would share one GPU (bench/README.md, "On an H200":
    one-latent requests were slower with more than one process, large batches faster)."""
    on_gpu = sorted(name for name, model in registry.models.items() if model.provider == CUDA)
    if workers < 2 or not on_gpu:
        return None
    return (
        f"{workers} worker processes share the GPU for {', '.join(on_gpu)}: each holds its own CUDA context "
        "and they take turns on the device, which helps large batches and slows small requests "
        "(docs/configuration.md, --workers)"
    )


def serve_workers(settings: Settings) -> None:
    """`--workers N`: uvicorn's supervisor binds the socket once and spawns N processes on it; each
    imports `worker_app` by name and builds its own app, models, batchers and metrics."""
    # The workers read Settings from the environment, so the command line's values go there too.
    os.environ.update(VAE_HOST=settings.host, VAE_PORT=str(settings.port), VAE_MODEL_DIR=str(settings.model_dir))
    config = uvicorn.Config(
        "service.__main__:worker_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_s),
        timeout_keep_alive=math.ceil(settings.keep_alive_timeout_s),
        http="service.connections:WorkerProtocol",
        lifespan="on",
    )
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        raise typer.Exit(3)


def worker_app() -> FastAPI:
    """One `--workers` process's app, which uvicorn builds there: settings from the environment,
    the connection guards bound to them, and /ready turning 503 on SIGTERM as DrainingServer does."""
    settings = Settings()
    configure_logging(settings)
    app = create_app(settings)
    service: ServiceState = app.state.service
    WorkerProtocol.settings, WorkerProtocol.metrics = settings, service.metrics
    # uvicorn calls this inside Server.capture_signals(), so the handlers found here are its own.
    for sig in (signal.SIGINT, signal.SIGTERM):
        server_exit = signal.getsignal(sig)
        if callable(server_exit):
            signal.signal(sig, _draining(service, server_exit))
    return app


def _draining(service: ServiceState, server_exit: Any) -> Any:
    def handle_exit(sig: int, frame: Any) -> None:
        service.shutting_down = True
        server_exit(sig, frame)

    return handle_exit


@cli.command(help="Verify every model (card, sha256, graphs) as serve does; exit 0 if all can be served, else 2.")
def check(model_dir: ModelDirOption = None) -> None:
    """For CI and init containers: one line per model, nothing started."""
    settings = load_settings(model_dir=model_dir)
    try:
        registry = load_registry(settings)
    except ModelLoadError as exc:
        typer.echo(f"vae-service: check failed: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    for name, model in sorted(registry.models.items()):
        shape = "x".join(map(str, model.image_shape))
        latent = "x".join(map(str, model.latent_shape))
        typer.echo(f"ok  {name} {model.card.version}: image {shape}, latent {latent}, {model.provider}")
    typer.echo(f"{len(registry.models)} models can be served from {settings.model_dir} (default {registry.default})")


@cli.command(
    help="Check two ONNX graphs from any framework and write a model folder with its card; exit 2 naming each failed check."
)
def package(
    encoder: Annotated[Path, typer.Option(help="The encoder graph: image [N, C, H, W] -> mu, logvar")],
    decoder: Annotated[Path, typer.Option(help="The decoder graph: z [N, *latent] -> image [N, C, H, W]")],
    name: Annotated[str, typer.Option(help="Model name, used as ?model=NAME")],
    out: Annotated[Path, typer.Option(help="Model folder to write, e.g. models/NAME")],
    preprocessing: Annotated[
        Preprocessing, typer.Option(help="How uploads become model input (docs/preprocessing.md)")
    ] = "fit",
    likelihood: Annotated[Likelihood, typer.Option(help="The decoder's pixel likelihood")] = "bernoulli",
    split_encoder_output: Annotated[
        bool, typer.Option(help="The encoder has one output: mu and logvar along axis 1")
    ] = False,
    decoder_output: Annotated[
        DecoderOutput,
        typer.Option(help="auto: probabilities, refused outside [0, 1]; logits: the service applies a sigmoid"),
    ] = "auto",
    labels: Annotated[str | None, typer.Option(help="Class names, comma-separated")] = None,
    background: Annotated[
        str, typer.Option(help="fit: R,G,B (0-255) under transparency and as padding")
    ] = "255,255,255",
    resize: Annotated[Resize, typer.Option(help="fit: keep the aspect ratio and pad, or centre-crop")] = "pad",
    dataset: Annotated[str, typer.Option(help="What it was trained on, for the card")] = "custom",
    flat_latents: Annotated[
        bool, typer.Option(help="/decode may also take a spatial latent as flat [N, D] vectors")
    ] = True,
) -> None:
    try:
        colour = tuple(int(part) for part in background.split(","))
        if len(colour) != 3:
            raise ValueError
    except ValueError:
        typer.echo(f"vae-service package: --background {background!r}: expected R,G,B such as 255,255,255", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    options = PackageOptions(
        name=name,
        preprocessing=preprocessing,
        likelihood=likelihood,
        split_encoder_output=split_encoder_output,
        decoder_output=decoder_output,
        labels=[label.strip() for label in labels.split(",")] if labels else None,
        background=colour,
        resize=resize,
        dataset=dataset,
        accepts_flat_latents=flat_latents,
    )
    try:
        card = package_model(encoder, decoder, out, options)
    except PackageError as exc:
        for problem in exc.problems:
            typer.echo(f"package: {problem}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    typer.echo(
        f"packaged {name}: image {card['image_shape']}, latent {card['latent_shape']}, decoder {card['decoder_output']}"
        f" -> {out / 'model.json'}; serve it with VAE_MODEL_DIR={out.parent}"
    )


@cli.command(
    "hash-key", help="Make a new API key (or hash the one on stdin) and print its line for the VAE_API_KEYS file."
)
def hash_key(
    scopes: Annotated[str, typer.Option(help="Comma-separated: infer, admin")] = "infer",
    name: Annotated[str, typer.Option(help="A label for the key, kept in the file")] = "",
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the key from stdin instead of making one")] = False,
) -> None:
    chosen = [scope.strip() for scope in scopes.split(",") if scope.strip()]
    if not chosen or not set(chosen) <= set(SCOPES):
        typer.echo(f"vae-service hash-key: --scopes {scopes!r}; allowed: {', '.join(SCOPES)}", err=True)
        raise typer.Exit(EXIT_INVALID)
    key = sys.stdin.readline().strip() if stdin else secrets.token_urlsafe(32)
    if not stdin:
        typer.echo(f"key (give it to the client; it is not stored): {key}", err=True)
    typer.echo(key_line(key, chosen, name))


def main(argv: list[str] | None = None) -> None:
    """`serve` unless another command is named, so `python -m service` still just serves."""
    args = list(sys.argv[1:] if argv is None else argv)
    commands = {command.name or getattr(command.callback, "__name__", "") for command in cli.registered_commands}
    if not args or (args[0] not in commands and args[0] not in ("-h", "--help")):
        args.insert(0, "serve")
    cli(args, prog_name="python -m service")  # exits with the command's status


if __name__ == "__main__":
    main()
