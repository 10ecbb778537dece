"""OIP models and tensors, protocol-neutral: names and metadata of each VAE's two OIP models,
request tensors -> validated arrays, arrays -> response tensors. REST and gRPC share this."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from service.errors import InvalidRequest, ModelNotFound
from service.inference import Engine
from service.inputs import FLOAT32_MAX
from service.registry import LoadedModel, Registry

GraphName = Literal["encoder", "decoder"]
SUFFIXES: dict[str, GraphName] = {"-encoder": "encoder", "-decoder": "decoder"}
PLATFORM = "onnxruntime_onnx"
# Datatypes a request may use; FP16 (and FP64) arrive converted to the graphs' FP32.
ACCEPTED = {"FP32": np.float32, "FP16": np.float16, "FP64": np.float64}
ACCEPTED_TEXT = "FP32 (FP16 and FP64 are converted)"


@dataclass(frozen=True)
class OipModel:
    """One graph of one VAE, as the protocol sees it."""

    model: LoadedModel
    graph: GraphName

    @property
    def name(self) -> str:
        return f"{self.model.name}-{self.graph}"

    @property
    def version(self) -> str:
        return self.model.card.version

    def inputs(self) -> dict[str, list[int]]:
        if self.graph == "encoder":
            return {"image": list(self.model.image_shape)}
        return {"z": list(self.model.latent_shape)}

    def outputs(self) -> dict[str, list[int]]:
        if self.graph == "encoder":
            latent = list(self.model.latent_shape)
            return {"mu": latent, "logvar": latent}
        return {"image": list(self.model.image_shape)}

    @property
    def max_rows(self) -> int:
        limits = self.model.limits
        return limits.max_upload_images if self.graph == "encoder" else limits.max_sample_n

    def metadata(self) -> dict[str, Any]:
        def tensors(shapes: dict[str, list[int]]) -> list[dict[str, Any]]:
            return [{"name": name, "datatype": "FP32", "shape": [-1, *shape]} for name, shape in shapes.items()]

        return {
            "name": self.name,
            "versions": [self.version],
            "platform": PLATFORM,
            "inputs": tensors(self.inputs()),
            "outputs": tensors(self.outputs()),
        }


def oip_names(registry: Registry) -> list[str]:
    return [f"{name}{suffix}" for name in sorted(registry.models) for suffix in SUFFIXES]


def find(registry: Registry, name: str, version: str | None = None) -> OipModel:
    """The OIP model `name` (`<model>-encoder` or `<model>-decoder`), at `version` if given."""
    for suffix, graph in SUFFIXES.items():
        if name.endswith(suffix) and (model := registry.models.get(name[: -len(suffix)])) is not None:
            found = OipModel(model, graph)
            if version and version != found.version:
                raise ModelNotFound(f"{name} version {version}", [f"{name} version {found.version}"])
            return found
    raise ModelNotFound(name, oip_names(registry))


def to_array(oip: OipModel, name: str, datatype: str, shape: list[int], values: Any) -> np.ndarray:
    """One request tensor -> float32 [N, *row], checked against the model's input."""
    inputs = oip.inputs()
    if name not in inputs:
        raise InvalidRequest(f"{oip.name} has no input {name!r}; its input is {next(iter(inputs))!r}")
    row = inputs[name]
    expected = f"[N, {', '.join(map(str, row))}]"
    if datatype not in ACCEPTED:
        raise InvalidRequest(f"input {name!r}: datatype {datatype} is not accepted; send {ACCEPTED_TEXT}")
    if len(shape) != len(row) + 1 or list(shape[1:]) != row:
        raise InvalidRequest(f"input {name!r}: shape {list(shape)} does not match {oip.name}'s {expected}")
    if not 1 <= shape[0] <= oip.max_rows:
        raise InvalidRequest(f"input {name!r}: {shape[0]} rows; allowed 1..{oip.max_rows}")
    dtype = ACCEPTED[datatype]
    if isinstance(values, (bytes, bytearray, memoryview)):
        array = np.frombuffer(values, dtype=np.dtype(dtype).newbyteorder("<"))
    else:
        try:
            array = np.asarray(values, dtype=dtype)
        except (TypeError, ValueError):
            raise InvalidRequest(f"input {name!r}: data must be {datatype} numbers") from None
    if array.size != math.prod(shape):
        raise InvalidRequest(
            f"input {name!r}: {array.size} values for shape {list(shape)} ({math.prod(shape)} expected)"
        )
    array = array.reshape(shape)
    if not np.isfinite(array).all() or np.abs(array).max() > FLOAT32_MAX:
        raise InvalidRequest(f"input {name!r}: NaN, inf or values beyond FP32; send finite {expected}")
    return np.ascontiguousarray(array, dtype=np.float32)


def requested(oip: OipModel, names: list[str] | None) -> list[str]:
    """The outputs to return: those asked for, in order, else all of them."""
    outputs = list(oip.outputs())
    if not names:
        return outputs
    unknown = [name for name in names if name not in outputs]
    if unknown:
        raise InvalidRequest(f"{oip.name} has no output {unknown[0]!r}; its outputs are {outputs}")
    return names


async def infer(engine: Engine, oip: OipModel, array: np.ndarray) -> dict[str, np.ndarray]:
    """Through the same batchers as /encode and /decode, so OIP and REST traffic batch together."""
    if oip.graph == "encoder":
        encoded = await engine.encode(oip.model, array)
        return {"mu": encoded.mu, "logvar": encoded.logvar}
    decoded = await engine.decode(oip.model, array, pixels=False)
    return {"image": decoded.images}
