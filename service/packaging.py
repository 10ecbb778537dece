"""`python -m service package`: two ONNX graphs exported from any framework -> a model folder the
service serves (encoder.onnx, decoder.onnx, model.json). Torch-free.

It reads the tensor names and shapes from the graphs, then checks what serving relies on: a
dynamic batch axis (batches of 1, 3 and 17 run), finite outputs, decoder outputs within [0, 1]
(or logits, when told), no random ops (two identical runs give identical outputs), and that the
encoder's latent is the decoder's input and the decoder's image the encoder's input. Every
failed check is one line naming the graph, the check and what was found (PackageError).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.config import Settings
from service.registry import ModelLoadError, load_model

BATCHES = (1, 3, 17)
RANDOM_OPS = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"}
)


class PackageError(Exception):
    """Checks that failed; one line each in `problems`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- just enough protobuf to read an ONNX file's opsets and op types -----------------------


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) for each field of one protobuf message; bytes for length-delimited."""
    out: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            out.append((number, value))
        elif wire == 2:
            size, at = _varint(data, at)
            out.append((number, data[at : at + size]))
            at += size
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def onnx_summary(path: Path) -> tuple[dict[str, int], list[str]]:
    """({domain or "ai.onnx": opset version}, the op types of the main graph's nodes)."""
    opsets: dict[str, int] = {}
    ops: list[str] = []
    for number, value in _fields(path.read_bytes()):
        if number == 8 and isinstance(value, bytes):  # ModelProto.opset_import
            entry = dict(_fields(value))
            domain = entry.get(1, b"")
            opsets[(domain.decode() if isinstance(domain, bytes) else "") or "ai.onnx"] = int(entry.get(2, 0))
        elif number == 7 and isinstance(value, bytes):  # ModelProto.graph
            for graph_field, node in _fields(value):
                if graph_field == 1 and isinstance(node, bytes):  # GraphProto.node
                    op_type = dict(_fields(node)).get(4, b"")
                    if isinstance(op_type, bytes):
                        ops.append(op_type.decode())
    return opsets, ops


# --- inspecting the graphs -------------------------------------------------------------------


@dataclass
class Graph:
    role: str  # "encoder" or "decoder"
    path: Path
    session: ort.InferenceSession
    problems: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.role} ({self.path.name})"

    def fail(self, check: str, found: str) -> None:
        self.problems.append(f"{self.label}: {check}: {found}")

    def run(self, feed: np.ndarray) -> list[np.ndarray] | None:
        name = self.session.get_inputs()[0].name
        try:
            return self.session.run(None, {name: feed})
        except Exception as exc:  # onnxruntime's own error types
            self.fail(f"runs a batch of {len(feed)}", str(exc).splitlines()[0][:300])
            return None


def _open(role: str, path: Path) -> Graph:
    if not path.is_file():
        raise PackageError([f"{role} ({path}): file: not found"])
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise PackageError([f"{role} ({path.name}): loads in onnxruntime: {str(exc).splitlines()[0][:300]}"]) from None
    return Graph(role, path, session)


def _row_shape(graph: Graph, shape: list[Any], what: str) -> list[int] | None:
    if not shape or isinstance(shape[0], int) and shape[0] != -1:
        graph.fail(
            "dynamic batch axis",
            f"{what} has shape {shape}: the first axis must be symbolic (export with a dynamic batch)",
        )
        return None
    row = shape[1:]
    if not all(isinstance(dim, int) and dim > 0 for dim in row):
        graph.fail("static row shape", f"{what} has shape {shape}: every axis but the batch must be a fixed size")
        return None
    return [int(dim) for dim in row]


def _check_deterministic(graph: Graph, feed: np.ndarray, first: list[np.ndarray]) -> None:
    again = graph.run(feed)
    _, ops = onnx_summary(graph.path)
    random = sorted(set(ops) & RANDOM_OPS)
    if random:
        graph.fail(
            "no random ops", f"the graph has {', '.join(random)}; draw noise outside the graph (the service seeds it)"
        )
    elif again is not None and any(not np.array_equal(a, b) for a, b in zip(first, again, strict=True)):
        graph.fail("no random ops", "two runs of the same input gave different outputs")


def _check_batches(graph: Graph, make: Any, rows_out: list[list[int]]) -> list[np.ndarray] | None:
    """Runs batches of 1, 3 and 17; each output must have that batch and the row shape given."""
    result = None
    for batch in BATCHES:
        outputs = graph.run(make(batch))
        if outputs is None:
            return None
        for index, (output, row) in enumerate(zip(outputs, rows_out, strict=False)):
            if list(output.shape) != [batch, *row]:
                graph.fail("dynamic batch axis", f"output {index} of a batch of {batch} has shape {list(output.shape)}")
                return None
            if not np.isfinite(output).all():
                graph.fail("finite outputs", f"output {index} of a batch of {batch} holds NaN or inf")
                return None
        result = outputs
    return result


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class PackageOptions:
    name: str
    preprocessing: str = "fit"
    likelihood: str = "bernoulli"
    split_encoder_output: bool = False
    decoder_output: str = "auto"  # auto: probabilities, refused when outputs leave [0, 1]
    labels: list[str] | None = None
    background: tuple[int, int, int] = (255, 255, 255)
    resize: str = "pad"
    dataset: str = "custom"
    version: str = "1.0.0"
    accepts_flat_latents: bool = True  # /decode may reshape [N, D] vectors into a spatial latent


def package(encoder_path: Path, decoder_path: Path, out: Path, options: PackageOptions) -> dict[str, Any]:
    """Check both graphs, write out/ with copies of them and model.json; returns the card."""
    encoder, decoder = _open("encoder", encoder_path), _open("decoder", decoder_path)
    for graph in (encoder, decoder):
        if len(graph.session.get_inputs()) != 1:
            names = [i.name for i in graph.session.get_inputs()]
            graph.fail("one input", f"inputs {names}")
    problems = encoder.problems + decoder.problems
    if problems:
        raise PackageError(problems)
    image_in = _row_shape(
        encoder, encoder.session.get_inputs()[0].shape, "input " + repr(encoder.session.get_inputs()[0].name)
    )
    latent_in = _row_shape(
        decoder, decoder.session.get_inputs()[0].shape, "input " + repr(decoder.session.get_inputs()[0].name)
    )
    encoder_outputs = [o.name for o in encoder.session.get_outputs()]
    decoder_outputs = [o.name for o in decoder.session.get_outputs()]
    wanted = 1 if options.split_encoder_output else 2
    if len(encoder_outputs) != wanted:
        hint = " (one output holding mu and logvar: pass --split-encoder-output)" if len(encoder_outputs) == 1 else ""
        encoder.fail("outputs", f"{len(encoder_outputs)} outputs {encoder_outputs}; expected mu and logvar{hint}")
    if len(decoder_outputs) != 1:
        decoder.fail("outputs", f"{len(decoder_outputs)} outputs {decoder_outputs}; expected one image")
    problems = encoder.problems + decoder.problems
    if problems or image_in is None or latent_in is None:
        raise PackageError(problems)

    latent_shape = latent_in
    joint = [2 * latent_shape[0], *latent_shape[1:]]
    rng = np.random.default_rng(0)
    encoded = _check_batches(
        encoder,
        lambda n: rng.random((n, *image_in), dtype=np.float32),
        [joint] if options.split_encoder_output else [latent_shape, latent_shape],
    )
    decoded = _check_batches(decoder, lambda n: rng.standard_normal((n, *latent_shape), dtype=np.float32), [image_in])
    for graph, ran, feed in (
        (encoder, encoded, np.full((3, *image_in), 0.5, np.float32)),
        (decoder, decoded, np.random.default_rng(1).standard_normal((3, *latent_shape), dtype=np.float32)),
    ):
        first = graph.run(feed) if ran is not None else None
        if first is not None:
            _check_deterministic(graph, feed, first)
    decoder_output = options.decoder_output
    if decoded is not None:
        low, high = float(decoded[0].min()), float(decoded[0].max())
        inside = low >= 0.0 and high <= 1.0
        if decoder_output == "auto":
            if not inside:
                decoder.fail(
                    "outputs within [0, 1]",
                    f"found {low:.3g}..{high:.3g}; if the graph outputs logits, pass --decoder-output logits",
                )
            decoder_output = "probabilities"
        elif decoder_output == "probabilities" and not inside:
            decoder.fail("outputs within [0, 1]", f"found {low:.3g}..{high:.3g} with --decoder-output probabilities")
    problems = encoder.problems + decoder.problems
    if problems:
        raise PackageError(problems)

    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, str]] = {}
    opsets: dict[str, dict[str, int]] = {}
    for graph in (encoder, decoder):
        target = out / f"{graph.role}.onnx"
        if graph.path.resolve() != target.resolve():
            shutil.copyfile(graph.path, target)
        files[graph.role] = {"path": target.name, "sha256": _sha256(target)}
        opsets[graph.role] = onnx_summary(target)[0]
    tensors = {
        "encoder_input": encoder.session.get_inputs()[0].name,
        "decoder_input": decoder.session.get_inputs()[0].name,
        "decoder_output": decoder_outputs[0],
    }
    if options.split_encoder_output:
        tensors["encoder_output"] = encoder_outputs[0]
    else:
        tensors["mu"], tensors["logvar"] = encoder_outputs
    card: dict[str, Any] = {
        "schema_version": 1,
        "name": options.name,
        "version": options.version,
        "dataset": options.dataset,
        "image_shape": image_in,
        "latent_dim": math.prod(latent_shape),
        "latent_shape": latent_shape,
        "accepts_flat_latents": options.accepts_flat_latents,
        "likelihood": options.likelihood,
        "preprocessing": options.preprocessing,
        "preprocessing_options": {"background": list(options.background), "resize": options.resize},
        "decoder_output": decoder_output,
        "tensors": tensors,
        "files": files,
        "graphs": {
            "encoder": {
                "inputs": {tensors["encoder_input"]: ["N", *image_in]},
                "outputs": {
                    name: ["N", *(joint if options.split_encoder_output else latent_shape)] for name in encoder_outputs
                },
            },
            "decoder": {
                "inputs": {tensors["decoder_input"]: ["N", *latent_shape]},
                "outputs": {tensors["decoder_output"]: ["N", *image_in]},
            },
        },
        "export": {
            "packaged_by": "python -m service package",
            "packaged_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "opset": opsets,
            "checked_batches": list(BATCHES),
        },
    }
    if options.labels:
        card["labels"] = options.labels
    (out / "model.json").write_text(json.dumps(card, indent=2) + "\n")
    try:  # the service's own loader is the last check: what it refuses, we do not ship
        load_model(out, Settings(model_dir=out.parent, provider="cpu"))
    except ModelLoadError as exc:
        raise PackageError([f"model.json: the service refuses it: {exc}"]) from None
    return card
