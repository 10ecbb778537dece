"""Model cards and ONNX sessions (the inference stage's store): verify every model under the
model folder and open it.

A model is a folder with a `model.json` card (schema_version 1, docs/model-card.md) naming an
encoder and a decoder ONNX file with their sha256. Any image VAE fits: grayscale or RGB, any
size from 8 to 512 pixels a side, a flat or spatial latent, its own tensor names. Anything wrong
raises ModelLoadError naming the file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator, model_validator

from service.config import Settings
from service.errors import ModelNotFound
from service.preprocessing import InputSpec
from service.priors import StoredPrior, load_prior
from service.scoring import ScoreTable, load_table

logger = logging.getLogger("service.registry")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
GraphName = Literal["encoder", "decoder"]
GRAPHS: tuple[GraphName, ...] = ("encoder", "decoder")
# Tensor names fixed by the export contract (docs/api.md, model card `graphs`).
GRAPH_INPUT = {"encoder": "image", "decoder": "z"}
GRAPH_OUTPUTS = {"encoder": ("mu", "logvar"), "decoder": ("image",)}
# Files a card may add beside its graphs, each verified by sha256 at start (docs/model-card.md).
ExtraFile = Literal["prior", "scores", "projection"]
EXTRA_FILES: tuple[ExtraFile, ...] = ("prior", "scores", "projection")


class ModelLoadError(RuntimeError):
    """A model folder that cannot be served; the message names the file."""


class FileRef(BaseModel):
    path: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class GraphSpec(BaseModel):
    inputs: dict[str, list[int | str]]
    outputs: dict[str, list[int | str]]


class TensorNames(BaseModel):
    """The graphs' tensor names, when they differ from the export contract's."""

    model_config = ConfigDict(extra="forbid")

    encoder_input: str = "image"
    mu: str = "mu"
    logvar: str = "logvar"
    # One encoder output holding mu and logvar concatenated along axis 1 (mu first), instead of two.
    encoder_output: str | None = None
    decoder_input: str = "z"
    decoder_output: str = "image"


class FitOptions(BaseModel):
    """The `fit` preprocessing rule's choices (docs/preprocessing.md)."""

    model_config = ConfigDict(extra="forbid")

    background: tuple[int, int, int] = Field((255, 255, 255), description="RGB 0-255 under transparent pixels")
    resize: Literal["pad", "crop"] = Field("pad", description="keep the aspect ratio and pad, or centre-crop")

    @field_validator("background")
    @classmethod
    def _channel_values(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if not all(0 <= channel <= 255 for channel in value):
            raise ValueError(f"background {list(value)}: each channel must be 0..255")
        return value


class PriorCard(BaseModel):
    """The card's `prior` section (training/priors.py writes the rest: how it was fitted and measured)."""

    model_config = ConfigDict(extra="allow")

    default: Literal["standard", "mixture"] = Field(
        "standard", description="What /sample draws from when `prior` is not given"
    )


Preprocessing = Literal["mnist-digit", "fashion-product", "fit"]
GRAYSCALE_RULES = ("mnist-digit", "fashion-product")
MIN_SIDE, MAX_SIDE = 8, 512


class ModelCard(BaseModel):
    """The contract with training (models/<name>/model.json). Unknown fields are kept."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    schema_version: Literal[1]
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: str
    dataset: str
    image_shape: tuple[PositiveInt, PositiveInt, PositiveInt]
    latent_dim: PositiveInt
    latent_shape: tuple[PositiveInt, ...] | None = Field(
        None, min_length=1, max_length=3, description="[D] or [C, h, w]; default [latent_dim]"
    )
    accepts_flat_latents: bool = Field(False, description="/decode may reshape [N, D] vectors to a spatial latent")
    likelihood: str
    preprocessing: Preprocessing
    preprocessing_options: FitOptions = FitOptions()
    decoder_output: Literal["probabilities", "logits"] = "probabilities"
    tensors: TensorNames = TensorNames()
    labels: list[str] | None = None
    prior: PriorCard = PriorCard()
    files: dict[Literal["encoder", "decoder", "prior", "scores", "projection"], FileRef]
    graphs: dict[Literal["encoder", "decoder"], GraphSpec]

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        channels, height, width = self.image_shape
        missing = [graph for graph in GRAPHS if graph not in self.files]
        if missing:
            raise ValueError(f"files: the card must name the {' and '.join(missing)} ONNX file")
        if channels not in (1, 3):
            raise ValueError(f"image_shape {list(self.image_shape)}: channels must be 1 (grayscale) or 3 (RGB)")
        if not (MIN_SIDE <= height <= MAX_SIDE and MIN_SIDE <= width <= MAX_SIDE):
            raise ValueError(f"image_shape {list(self.image_shape)}: height and width must be {MIN_SIDE}..{MAX_SIDE}")
        if self.preprocessing in GRAYSCALE_RULES and channels != 1:
            raise ValueError(f"preprocessing {self.preprocessing!r} is for grayscale models; use 'fit' for RGB")
        if self.latent_shape is not None and math.prod(self.latent_shape) != self.latent_dim:
            raise ValueError(
                f"latent_shape {list(self.latent_shape)} does not hold latent_dim {self.latent_dim} values"
            )
        if self.prior.default == "mixture" and "prior" not in self.files:
            raise ValueError("prior.default is 'mixture' but files.prior names no prior file")
        if self.latent_shape is not None and len(self.latent_shape) == 2:
            raise ValueError(f"latent_shape {list(self.latent_shape)}: a latent is [D] or [C, h, w]")
        return self


class ModelLimits(BaseModel):
    """Rows per batch and per queue for each graph, capped in rows and in bytes (VAE_MAX_BATCH_*,
    VAE_MAX_QUEUE_*), and what one request may ask for as a result."""

    batch_rows: dict[str, int]
    queue_rows: dict[str, int]
    max_sample_n: int = Field(description="Most images per /sample and latent rows per /decode")
    max_upload_images: int = Field(description="Most images per /encode or /reconstruct")

    @classmethod
    def of(cls, card: ModelCard, settings: Settings) -> ModelLimits:
        pixels = math.prod(card.image_shape)
        # float32 in and out per row; the decoder also keeps 8-bit pixels.
        row_bytes = {"encoder": 4 * (pixels + 2 * card.latent_dim), "decoder": 4 * card.latent_dim + 5 * pixels}
        batch_rows = {
            g: max(1, min(settings.max_batch_size, settings.max_batch_bytes // b)) for g, b in row_bytes.items()
        }
        queue_rows = {
            g: max(1, min(settings.max_queue_rows, settings.max_queue_bytes // b)) for g, b in row_bytes.items()
        }
        return cls(
            batch_rows=batch_rows,
            queue_rows=queue_rows,
            max_sample_n=min(settings.max_sample_n, queue_rows["decoder"]),
            max_upload_images=min(settings.max_upload_images, queue_rows["encoder"], queue_rows["decoder"]),
        )


@dataclass
class LoadedModel:
    name: str
    card: ModelCard
    card_json: dict[str, Any]
    directory: Path
    sessions: dict[str, ort.InferenceSession]
    provider: str
    limits: ModelLimits
    inputs: dict[str, dict[str, list[int | str]]] = field(default_factory=dict)
    outputs: dict[str, dict[str, list[int | str]]] = field(default_factory=dict)
    batchers: dict[str, Any] = field(default_factory=dict)  # graph -> its GraphBatcher, set by the Engine
    extra_files: dict[str, Path] = field(default_factory=dict)  # verified files beside the graphs, by kind
    prior: StoredPrior | None = None  # the stored mixture (and class mixtures), when the card names one
    score_table: ScoreTable | None = None  # the test set's scores, for /score's percentiles
    # A 200's encoded headers by media type, kept by service/outputs.py: built once per model.
    response_headers: dict[str, tuple[tuple[bytes, bytes], ...]] = field(default_factory=dict, repr=False)

    @property
    def latent_dim(self) -> int:
        return self.card.latent_dim

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.card.latent_shape or (self.card.latent_dim,))

    @property
    def accepts_flat_latents(self) -> bool:
        """Whether /decode may reshape flat [N, D] vectors into a spatial latent."""
        return self.card.accepts_flat_latents

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.card.image_shape

    @functools.cached_property
    def decoder_sigma(self) -> np.ndarray | None:
        """A Gaussian decoder's per-channel sigma (the card's metrics), for /score's likelihood."""
        sigma = self.card_json.get("metrics", {}).get("decoder_sigma_per_channel")
        if sigma is None or len(sigma) != self.image_shape[0]:
            return None
        return np.asarray(sigma, dtype=np.float64)

    @property
    def scorable(self) -> bool:
        return self.card.likelihood == "bernoulli" or (
            self.card.likelihood == "gaussian" and self.decoder_sigma is not None
        )

    @functools.cached_property
    def input_spec(self) -> InputSpec:
        options = self.card.preprocessing_options
        return InputSpec(self.card.preprocessing, self.card.image_shape, options.background, options.resize)


@dataclass
class Registry:
    models: dict[str, LoadedModel]
    default: str

    def get(self, name: str | None) -> LoadedModel | None:
        return self.models.get(name or self.default)

    def find(self, name: str | None) -> LoadedModel:
        """The named model (the default for None), else ModelNotFound listing the loaded ones."""
        found = self.models.get(name or self.default)
        if found is None:
            raise ModelNotFound(name, sorted(self.models))
        return found


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_card(card_path: Path) -> tuple[ModelCard, dict[str, Any]]:
    try:
        raw = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{card_path}: model card is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{card_path}: model card is not readable JSON ({exc})") from None
    try:
        card = ModelCard.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ModelLoadError(f"{card_path}: invalid model card: {problems}") from None
    return card, raw


def session_options(settings: Settings) -> ort.SessionOptions:
    options = ort.SessionOptions()
    # One intra-op thread keeps each row's result independent of the batch it rides in (checked
    # bit for bit); more threads split GEMMs by batch size and can change the last bit.
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # On 2 cores a spinning thread pool steals the event loop's core.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def provider_list(requested: str) -> list[str]:
    if requested == "cpu":
        return [CPU]
    if requested == "cuda":
        return [CUDA, CPU]
    return [CUDA, CPU] if CUDA in ort.get_available_providers() else [CPU]


@functools.cache
def preload_cuda_libraries() -> None:
    """Load CUDA and cuDNN from the nvidia-* pip wheels beside onnxruntime-gpu: its CUDA provider
    names them by bare soname, and a plain pip install puts their folders on no loader path (the
    GPU image adds them to ldconfig)."""
    if CUDA in ort.get_available_providers() and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()


def open_session(path: Path, settings: Settings) -> tuple[ort.InferenceSession, str]:
    providers = provider_list(settings.provider)
    if CUDA in providers:
        preload_cuda_libraries()
    try:
        session = ort.InferenceSession(str(path), sess_options=session_options(settings), providers=providers)
    except Exception as exc:  # onnxruntime raises its own types for bad graphs
        raise ModelLoadError(f"{path}: onnxruntime cannot load the graph ({exc})") from None
    active = session.get_providers()[0]  # CUDA can fail to load and silently fall back
    if settings.provider == "cuda" and active != CUDA:
        raise ModelLoadError(
            f"{path}: VAE_PROVIDER=cuda but onnxruntime activated {session.get_providers()} "
            f"(available: {ort.get_available_providers()}); refusing to start"
        )
    if settings.provider == "auto" and active != CUDA:
        logger.info("%s: provider auto: CUDA not active, using %s", path, active)
    return session, active


def _dims(shape: list[int | str | None]) -> list[int | str | None]:
    return ["N" if index == 0 and not isinstance(dim, int) else dim for index, dim in enumerate(shape)]


def _fits(shape: list[int | str | None], expected: list[int]) -> bool:
    """A graph's declared [N, ...] shape against the card's per-row shape; symbolic dims fit anything."""
    return len(shape) == len(expected) + 1 and all(
        not isinstance(dim, int) or dim == want for dim, want in zip(shape[1:], expected, strict=True)
    )


def graph_tensor_names(card: ModelCard, graph: str) -> tuple[str, list[str]]:
    """(input name, output names) the card says the graph has."""
    names = card.tensors
    if graph == "encoder":
        outputs = [names.encoder_output] if names.encoder_output else [names.mu, names.logvar]
        return names.encoder_input, outputs
    return names.decoder_input, [names.decoder_output]


def _check_graph(session: ort.InferenceSession, graph: str, card: ModelCard, path: Path) -> None:
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    want_input, want_outputs = graph_tensor_names(card, graph)
    if input_names != [want_input] or not set(want_outputs) <= set(output_names):
        raise ModelLoadError(
            f"{path}: {graph} graph has inputs {input_names} and outputs {output_names}; the card expects "
            f"input {want_input!r} and outputs {want_outputs} (card field `tensors` maps other names)"
        )
    latent = list(card.latent_shape or (card.latent_dim,))
    image = list(card.image_shape)
    expected = image if graph == "encoder" else latent
    shape = session.get_inputs()[0].shape
    if not _fits(shape, expected):
        raise ModelLoadError(f"{path}: {graph} input shape {_dims(shape)} does not match the card ([N, {expected}])")
    outputs = {o.name: o.shape for o in session.get_outputs()}
    if graph == "encoder":
        joint = [2 * latent[0], *latent[1:]]
        checks = (
            {name: joint for name in want_outputs}
            if card.tensors.encoder_output
            else dict.fromkeys(want_outputs, latent)
        )
    else:
        checks = {want_outputs[0]: image}
    for name, want in checks.items():
        if not _fits(outputs[name], want):
            raise ModelLoadError(
                f"{path}: {graph} output {name!r} has shape {_dims(outputs[name])}; the card expects [N, {want}]"
            )


def verified_file(directory: Path, card: ModelCard, kind: str) -> Path:
    """The card's file of this kind, present and matching its sha256, else ModelLoadError naming it."""
    ref = card.files[kind]  # type: ignore[index]
    path = (directory / ref.path).resolve()
    if not path.is_file():
        raise ModelLoadError(f"{path}: {kind} file named by {directory / 'model.json'} is missing")
    actual = sha256_of(path)
    if actual != ref.sha256:
        raise ModelLoadError(
            f"{path}: sha256 mismatch (file {actual}, model card {ref.sha256}); the file is corrupt or "
            f"does not belong to this card"
        )
    return path


def load_model(directory: Path, settings: Settings) -> LoadedModel:
    card, raw = read_card(directory / "model.json")
    sessions: dict[str, ort.InferenceSession] = {}
    providers: set[str] = set()
    extra_files: dict[str, Path] = {
        kind: verified_file(directory, card, kind) for kind in EXTRA_FILES if kind in card.files
    }
    prior = score_table = None
    if "prior" in extra_files:
        try:
            prior = load_prior(extra_files["prior"], card.latent_dim, card.labels)
        except ValueError as exc:
            raise ModelLoadError(f"{extra_files['prior']}: invalid prior file: {exc}") from None
    if "scores" in extra_files:
        try:
            score_table = load_table(extra_files["scores"])
        except ValueError as exc:
            raise ModelLoadError(f"{extra_files['scores']}: invalid score table: {exc}") from None
    for graph in GRAPHS:
        path = verified_file(directory, card, graph)
        session, active = open_session(path, settings)
        _check_graph(session, graph, card, path)
        sessions[graph] = session
        providers.add(active)
    shapes: dict[str, dict[str, dict[str, list[int | str]]]] = {
        kind: {graph: {t.name: list(t.shape) for t in getattr(sessions[graph], f"get_{kind}")()} for graph in GRAPHS}
        for kind in ("inputs", "outputs")
    }
    # Symbolic batch axes are reported by their name in the graph; the API promises "N".
    for per_graph in shapes.values():
        for tensors in per_graph.values():
            for dims in tensors.values():
                if dims and not isinstance(dims[0], int):
                    dims[0] = "N"
    return LoadedModel(
        name=card.name,
        card=card,
        card_json=raw,
        directory=directory,
        sessions=sessions,
        provider=CUDA if providers == {CUDA} else CPU,
        limits=ModelLimits.of(card, settings),
        inputs=shapes["inputs"],
        outputs=shapes["outputs"],
        extra_files=extra_files,
        prior=prior,
        score_table=score_table,
    )


def load_registry(settings: Settings) -> Registry:
    model_dir = Path(settings.model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"{model_dir}: model directory does not exist (VAE_MODEL_DIR)")
    models: dict[str, LoadedModel] = {}
    for directory in sorted(p for p in model_dir.iterdir() if p.is_dir()):
        if not (directory / "model.json").exists():
            logger.warning("%s: no model.json, skipped", directory)
            continue
        model = load_model(directory, settings)
        if model.name in models:
            raise ModelLoadError(f"{directory / 'model.json'}: model name {model.name!r} is used twice")
        models[model.name] = model
        logger.info("loaded model %s %s from %s on %s", model.name, model.card.version, directory, model.provider)
    if not models:
        raise ModelLoadError(f"{model_dir}: no model folder (with a model.json) found")
    if settings.default_model not in models:
        raise ModelLoadError(
            f"default model {settings.default_model!r} (VAE_DEFAULT_MODEL) is not among the loaded models "
            f"{sorted(models)} in {model_dir}"
        )
    return Registry(models=models, default=settings.default_model)
