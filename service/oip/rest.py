"""The Open Inference Protocol over REST: health, metadata, infer (JSON and the binary tensor data
extension) and, when VAE_MODEL_CONTROL is on, the model repository extension. Errors use the
protocol's body, {"error": "<message>"}, with the statuses of service/handlers.py."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse, Response

from service import errors
from service.deps import EngineDep, ServiceDep, reject_unknown_query
from service.handlers import describe_validation, oip_response_for
from service.inputs import read_body
from service.oip import tensors
from service.oip.repository import ModelRepository
from service.routing import LeanRoute
from service.state import ServiceState

logger = logging.getLogger("service.oip")

SERVER_NAME = "vae-service"
BINARY_HEADER = "inference-header-content-length"


def oip_error(status: int, message: str) -> JSONResponse:
    """The protocol's error body; a request the service refuses is a 400 there, as in Triton."""
    return JSONResponse({"error": message}, status_code=400 if status == 422 else status)


class OipRoute(LeanRoute):
    """A LeanRoute whose errors take the protocol's shape."""

    def build_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().build_handler()

        async def handle_oip(request: Request) -> Response:
            try:
                return await handle(request)
            except errors.ServiceError as exc:
                return oip_response_for(exc)
            except RequestValidationError as exc:
                return oip_error(422, describe_validation(exc))

        return handle_oip


router = APIRouter(
    prefix="/v2", tags=["open inference protocol"], route_class=OipRoute, dependencies=[Depends(reject_unknown_query)]
)


def extensions(service: ServiceState) -> list[str]:
    return ["binary_tensor_data", *(["model_repository"] if service.settings.model_control else [])]


@router.get("", summary="Server metadata")
async def server_metadata(service: ServiceDep) -> Response:
    return JSONResponse({"name": SERVER_NAME, "version": service.version, "extensions": extensions(service)})


@router.get("/health/live", summary="Server liveness")
async def server_live() -> Response:
    return JSONResponse({"live": True})


@router.get("/health/ready", summary="Server readiness: every model loaded and warmed up")
async def server_ready(request: Request) -> Response:
    service: ServiceState = request.app.service
    ready = service.ready and not service.shutting_down
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


def _find(service: ServiceState, name: str, version: str | None = None) -> tensors.OipModel:
    assert service.registry is not None
    return tensors.find(service.registry, name, version)


@router.get("/models/{name}", summary="Model metadata")
async def model_metadata(name: str, service: ServiceDep) -> Response:
    return JSONResponse(_find(service, name).metadata())


@router.get("/models/{name}/versions/{version}", summary="Model metadata, one version")
async def model_version_metadata(name: str, version: str, service: ServiceDep) -> Response:
    return JSONResponse(_find(service, name, version).metadata())


@router.get("/models/{name}/ready", summary="Model readiness")
async def model_ready(name: str, service: ServiceDep) -> Response:
    return JSONResponse({"name": _find(service, name).name, "ready": service.ready})


@router.get("/models/{name}/versions/{version}/ready", summary="Model readiness, one version")
async def model_version_ready(name: str, version: str, service: ServiceDep) -> Response:
    return JSONResponse({"name": _find(service, name, version).name, "ready": service.ready})


def _header_and_binary(request: Request, body: bytes) -> tuple[dict[str, Any], bytes]:
    declared = request.headers.get(BINARY_HEADER)
    size = len(body)
    if declared is not None:
        if not declared.isdigit() or int(declared) > len(body):
            raise errors.InvalidRequest(f"Inference-Header-Content-Length {declared!r} must be 0..{len(body)}")
        size = int(declared)
    try:
        header = orjson.loads(body[:size])
    except orjson.JSONDecodeError:
        raise errors.InvalidRequest("the inference request is not valid JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list) or not header["inputs"]:
        raise errors.InvalidRequest(
            'an inference request is a JSON object with "inputs": [{name, shape, datatype, data}]'
        )
    return header, body[size:]


def _input_array(oip: tensors.OipModel, header: dict[str, Any], binary: bytes) -> np.ndarray:
    if len(header["inputs"]) != 1:
        raise errors.InvalidRequest(f"{oip.name} takes one input, {next(iter(oip.inputs()))!r}")
    tensor = header["inputs"][0]
    if not isinstance(tensor, dict):
        raise errors.InvalidRequest("each input is an object {name, shape, datatype, data}")
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise errors.InvalidRequest("each input needs a string name and datatype")
    if not isinstance(shape, list) or not all(type(dim) is int and dim >= 0 for dim in shape):
        raise errors.InvalidRequest(f"input {name!r}: shape must be a list of non-negative integers")
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if type(size) is not int or not 0 <= size <= len(binary):
            raise errors.InvalidRequest(
                f"input {name!r}: binary_data_size {size!r} does not fit the {len(binary)} binary bytes"
            )
        values: Any = binary[:size]
    elif "data" in tensor:
        values = tensor["data"]
    else:
        raise errors.InvalidRequest(f"input {name!r}: give data, or binary_data_size with the binary extension")
    return tensors.to_array(oip, name, datatype, shape, values)


def _output_choice(header: dict[str, Any]) -> tuple[list[str] | None, dict[str, bool], bool]:
    outputs = header.get("outputs")
    if outputs is not None and not (isinstance(outputs, list) and all(isinstance(o, dict) for o in outputs)):
        raise errors.InvalidRequest("outputs must be a list of {name, parameters}")
    binary_all = bool((header.get("parameters") or {}).get("binary_data_output", False))
    names = [str(o.get("name")) for o in outputs] if outputs else None
    binary = {
        str(o.get("name")): bool((o.get("parameters") or {}).get("binary_data", binary_all)) for o in outputs or []
    }
    return names, binary, binary_all


def _infer_response(
    oip: tensors.OipModel,
    request_id: str,
    results: dict[str, np.ndarray],
    names: list[str],
    binary: dict[str, bool],
    binary_all: bool,
) -> Response:
    outputs, blobs = [], []
    for name in names:
        array = results[name]
        entry: dict[str, Any] = {"name": name, "datatype": "FP32", "shape": list(array.shape)}
        if binary.get(name, binary_all):
            data = np.ascontiguousarray(array, dtype="<f4").tobytes()
            entry["parameters"] = {"binary_data_size": len(data)}
            blobs.append(data)
        else:
            entry["data"] = array.ravel().tolist()
        outputs.append(entry)
    header = orjson.dumps({"model_name": oip.name, "model_version": oip.version, "id": request_id, "outputs": outputs})
    if not blobs:
        return Response(header, media_type="application/json")
    return Response(
        b"".join([header, *blobs]),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(header))},
    )


async def _infer(request: Request, service: ServiceState, engine: Any, name: str, version: str | None) -> Response:
    oip = _find(service, name, version)
    settings = service.settings
    body = await read_body(request, max(settings.max_upload_bytes, settings.max_json_bytes), "VAE_MAX_UPLOAD_BYTES")
    header, binary = _header_and_binary(request, body)
    array = _input_array(oip, header, binary)
    names, binary_outputs, binary_all = _output_choice(header)
    chosen = tensors.requested(oip, names)
    results = await tensors.infer(engine, oip, array)
    request_id = header.get("id")
    if not isinstance(request_id, str) or not request_id:
        request_id = request.scope.get("state", {}).get("request_id", "")
    return _infer_response(oip, request_id, results, chosen, binary_outputs, binary_all)


@router.post("/models/{name}/infer", summary="Inference (JSON, or the binary tensor data extension)")
async def model_infer(name: str, request: Request, service: ServiceDep, engine: EngineDep) -> Response:
    return await _infer(request, service, engine, name, None)


@router.post("/models/{name}/versions/{version}/infer", summary="Inference on one version")
async def model_version_infer(
    name: str, version: str, request: Request, service: ServiceDep, engine: EngineDep
) -> Response:
    return await _infer(request, service, engine, name, version)


# --- the model repository extension (VAE_MODEL_CONTROL) ----------------------------------------


async def get_repository(service: ServiceDep) -> ModelRepository:
    if not service.settings.model_control:
        raise errors.RouteNotFound(
            "the model repository extension is off; set VAE_MODEL_CONTROL=true to load and unload models"
        )
    assert service.repository is not None
    return service.repository


RepositoryDep = Annotated[ModelRepository, Depends(get_repository)]


@router.post("/repository/index", summary="Every model folder and its state")
async def repository_index(repository: RepositoryDep) -> Response:
    return JSONResponse(repository.index())


@router.post("/repository/models/{name}/load", summary="Load or reload a model folder without a restart")
async def repository_load(name: str, repository: RepositoryDep) -> Response:
    await repository.load(name)
    return JSONResponse({})


@router.post("/repository/models/{name}/unload", summary="Stop serving a model, after it drains")
async def repository_unload(name: str, repository: RepositoryDep) -> Response:
    await repository.unload(name)
    return JSONResponse({})
