"""The Open Inference Protocol over gRPC (GRPCInferenceService), on VAE_GRPC_PORT, in the same
event loop and on the same batchers as the HTTP API. Errors map to gRPC status codes in
service/handlers.py (429 -> RESOURCE_EXHAUSTED, 504 -> DEADLINE_EXCEEDED, ...)."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import numpy as np

from service import errors
from service.auth import KeyRing, presented_key
from service.handlers import grpc_code_of
from service.oip import tensors
from service.oip.generated import grpc_predict_v2_pb2 as pb
from service.oip.generated import grpc_predict_v2_pb2_grpc as pb_grpc
from service.oip.rest import SERVER_NAME, extensions
from service.registry import Registry
from service.request_ids import new_request_id
from service.state import ServiceState

logger = logging.getLogger("service.oip.grpc")


async def _abort(context: grpc.aio.ServicerContext, exc: errors.ServiceError) -> None:
    await context.abort(grpc_code_of(exc), exc.message)


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, service: ServiceState) -> None:
        self.service = service

    def _registry(self) -> Registry:
        if self.service.registry is None or self.service.engine is None:
            raise errors.NotReady("models are still loading; retry shortly")
        return self.service.registry

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.service.ready and not self.service.shutting_down)

    async def ModelReady(self, request: Any, context: Any) -> Any:
        try:
            tensors.find(self._registry(), request.name, request.version or None)
        except errors.ServiceError as exc:
            await _abort(context, exc)
        return pb.ModelReadyResponse(ready=self.service.ready)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=self.service.version, extensions=extensions(self.service)
        )

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        try:
            metadata = tensors.find(self._registry(), request.name, request.version or None).metadata()
        except errors.ServiceError as exc:
            await _abort(context, exc)
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in metadata["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in metadata["outputs"]],
        )

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        try:
            return await self._infer(request, context)
        except errors.ServiceError as exc:
            await _abort(context, exc)

    async def _infer(self, request: Any, context: Any) -> Any:
        oip = tensors.find(self._registry(), request.model_name, request.model_version or None)
        if len(request.inputs) != 1:
            raise errors.InvalidRequest(f"{oip.name} takes one input, {next(iter(oip.inputs()))!r}")
        tensor = request.inputs[0]
        if request.raw_input_contents:
            values: Any = request.raw_input_contents[0]
        elif tensor.datatype == "FP32":
            values = np.asarray(tensor.contents.fp32_contents, dtype=np.float32)
        elif tensor.datatype == "FP64":
            values = np.asarray(tensor.contents.fp64_contents, dtype=np.float64)
        else:
            raise errors.InvalidRequest(
                f"input {tensor.name!r}: {tensor.datatype} needs raw_input_contents; send {tensors.ACCEPTED_TEXT}"
            )
        array = tensors.to_array(oip, tensor.name, tensor.datatype, list(tensor.shape), values)
        names = tensors.requested(oip, [output.name for output in request.outputs] or None)
        engine = self.service.engine
        assert engine is not None
        results = await tensors.infer(engine, oip, array)
        response = pb.ModelInferResponse(
            model_name=oip.name, model_version=oip.version, id=request.id or new_request_id().decode()
        )
        for name in names:
            array_out = np.ascontiguousarray(results[name], dtype="<f4")
            response.outputs.add(name=name, datatype="FP32", shape=list(array_out.shape))
            response.raw_output_contents.append(array_out.tobytes())
        return response

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        repository = await self._repository(context)
        return pb.RepositoryIndexResponse(
            models=[pb.RepositoryIndexResponse.ModelIndex(**entry) for entry in repository.index()]
        )

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        repository = await self._repository(context)
        try:
            await repository.load(request.model_name)
        except errors.ServiceError as exc:
            await _abort(context, exc)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        repository = await self._repository(context)
        try:
            await repository.unload(request.model_name)
        except errors.ServiceError as exc:
            await _abort(context, exc)
        return pb.RepositoryModelUnloadResponse()

    async def _repository(self, context: Any) -> Any:
        if not self.service.settings.model_control or self.service.repository is None:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED, "the model repository extension is off; set VAE_MODEL_CONTROL=true"
            )
        return self.service.repository


OPEN_METHODS = frozenset({"ServerLive", "ServerReady"})


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """VAE_API_KEYS for gRPC: `authorization: Bearer <key>` or `x-api-key` metadata, the same scopes."""

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        method = details.method.rsplit("/", 1)[-1]
        if method in OPEN_METHODS and not self.keyring.protect_ops:
            return await continuation(details)
        scope = "admin" if method.startswith("Repository") else "infer"
        metadata = {key: value for key, value in (details.invocation_metadata or ()) if isinstance(value, str)}
        try:
            self.keyring.check(presented_key(metadata), scope)
        except errors.ServiceError as exc:
            code, message = grpc_code_of(exc), exc.message

            async def deny(request: Any, context: Any) -> Any:
                await context.abort(code, message)

            return grpc.unary_unary_rpc_method_handler(deny)
        return await continuation(details)


async def start_grpc(service: ServiceState, host: str, port: int) -> grpc.aio.Server:
    """Start the gRPC server on host:port (0 picks a free port, logged)."""
    limit = max(service.settings.max_upload_bytes, service.settings.max_json_bytes)
    interceptors = [ApiKeyInterceptor(service.keyring)] if service.keyring is not None else []
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", -1)],
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(service), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    logger.info("OIP gRPC on %s:%d", host, bound)
    return server
