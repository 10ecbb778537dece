"""Model cards and ONNX sessions: verify every model under the model folder and open it.

A model is a folder with a `model.json` card (schema_version 1) naming an encoder and a
decoder ONNX file with their sha256. Anything wrong raises ModelLoadError naming the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from service.config import Settings
from service.errors import ModelNotFound

logger = logging.getLogger("service.registry")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
GraphName = Literal["encoder", "decoder"]
GRAPHS: tuple[GraphName, ...] = ("encoder", "decoder")
# Tensor names fixed by the export contract (docs/api.md, model card `graphs`).
GRAPH_INPUT = {"encoder": "image", "decoder": "z"}
GRAPH_OUTPUTS = {"encoder": ("mu", "logvar"), "decoder": ("image",)}


class ModelLoadError(RuntimeError):
    """A model folder that cannot be served; the message names the file."""


class FileRef(BaseModel):
    path: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class GraphSpec(BaseModel):
    inputs: dict[str, list[int | str]]
    outputs: dict[str, list[int | str]]


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
    likelihood: str
    preprocessing: Literal["mnist-digit", "fashion-product"]
    files: dict[Literal["encoder", "decoder"], FileRef]
    graphs: dict[Literal["encoder", "decoder"], GraphSpec]


@dataclass
class LoadedModel:
    name: str
    card: ModelCard
    card_json: dict[str, Any]
    directory: Path
    sessions: dict[str, ort.InferenceSession]
    provider: str
    inputs: dict[str, dict[str, list[int | str]]] = field(default_factory=dict)
    outputs: dict[str, dict[str, list[int | str]]] = field(default_factory=dict)

    @property
    def latent_dim(self) -> int:
        return self.card.latent_dim

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.card.latent_shape or (self.card.latent_dim,))

    @property
    def accepts_flat_latents(self) -> bool:
        """Whether /decode may reshape flat [N, D] vectors into a spatial latent."""
        return bool(getattr(self.card, "accepts_flat_latents", True))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.card.image_shape


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


def open_session(path: Path, settings: Settings) -> tuple[ort.InferenceSession, str]:
    providers = provider_list(settings.provider)
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


def _check_graph(session: ort.InferenceSession, graph: str, card: ModelCard, path: Path) -> None:
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    if input_names != [GRAPH_INPUT[graph]] or set(output_names) != set(GRAPH_OUTPUTS[graph]):
        raise ModelLoadError(
            f"{path}: {graph} graph has inputs {input_names} and outputs {output_names}; expected "
            f"inputs [{GRAPH_INPUT[graph]!r}] and outputs {list(GRAPH_OUTPUTS[graph])}"
        )
    c, h, w = card.image_shape
    expected = [c, h, w] if graph == "encoder" else list(card.latent_shape or (card.latent_dim,))
    shape = session.get_inputs()[0].shape
    if list(shape[1:]) != expected:
        raise ModelLoadError(f"{path}: {graph} input shape {shape} does not match the card ([N, {expected}])")


def load_model(directory: Path, settings: Settings) -> LoadedModel:
    card, raw = read_card(directory / "model.json")
    sessions: dict[str, ort.InferenceSession] = {}
    providers: set[str] = set()
    for graph in GRAPHS:
        ref = card.files[graph]
        path = (directory / ref.path).resolve()
        if not path.is_file():
            raise ModelLoadError(f"{path}: {graph} ONNX file named by {directory / 'model.json'} is missing")
        actual = sha256_of(path)
        if actual != ref.sha256:
            raise ModelLoadError(
                f"{path}: sha256 mismatch (file {actual}, model card {ref.sha256}); the file is corrupt or "
                f"does not belong to this card"
            )
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
        inputs=shapes["inputs"],
        outputs=shapes["outputs"],
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
