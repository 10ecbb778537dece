"""The one place that turns errors into HTTP: each ServiceError class has a status, and every
4xx/5xx leaves as {"error": {"code", "message", "details"?}} (docs/api.md)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from service import errors

logger = logging.getLogger("service.handlers")

STATUS: dict[type[errors.ServiceError], int] = {
    errors.InvalidRequest: 422,
    errors.InvalidImage: 422,
    errors.UnsupportedMediaType: 415,
    errors.PayloadTooLarge: 413,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.ModelNotFound: 404,
    errors.RouteNotFound: 404,
    errors.MethodNotAllowed: 405,
    errors.QueueFull: 429,
    errors.InferenceTimeout: 504,
    errors.NotReady: 503,
    errors.ShuttingDown: 503,
    errors.InternalError: 500,
}
# Framework-raised statuses that are not ServiceErrors (Starlette's 404/405, a 400 from a parser).
CODE_OF_STATUS = {status: cls.code for cls, status in STATUS.items() if cls is not errors.InvalidImage}
CODE_OF_STATUS.update({400: "invalid_request", 406: "invalid_request", 404: "not_found", 503: "not_ready"})


# The same classes for gRPC (the OIP gRPC API), by their HTTP status.
GRPC_CODE_OF_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    413: "RESOURCE_EXHAUSTED",
    415: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def grpc_code_of(error: errors.ServiceError) -> Any:
    import grpc  # only the gRPC server calls this

    return getattr(grpc.StatusCode, GRPC_CODE_OF_STATUS.get(status_of(error), "INTERNAL"))


def status_of(error: errors.ServiceError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | list[Any] | None = None


class ErrorResponse(BaseModel):
    """The shape of every error the service returns."""

    error: ErrorBody


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def response_for(error: errors.ServiceError) -> JSONResponse:
    headers = {"Retry-After": str(error.retry_after_s)} if isinstance(error, errors.QueueFull) else None
    return error_response(status_of(error), error.code, error.message, error.details, headers)


def oip_response_for(error: errors.ServiceError) -> JSONResponse:
    """The Open Inference Protocol's body, {"error": "<message>"}; a refused request is a 400 there."""
    status = status_of(error)
    return JSONResponse({"error": error.message}, status_code=400 if status == 422 else status)


def _describe(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    kind = {"query": "query parameter", "path": "path parameter", "header": "header"}.get(loc[0] if loc else "", "")
    if kind:
        name = ".".join(loc[1:]) or "?"
        return f"{kind} {name!r}: {error.get('msg', 'invalid')}"
    return f"field {'.'.join(loc) or 'request'!r}: {error.get('msg', 'invalid')}"


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.ServiceError)
    return response_for(exc)


def describe_validation(exc: RequestValidationError) -> str:
    return "; ".join(_describe(e) for e in exc.errors() if isinstance(e, dict)) or "invalid request"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors_ = [e for e in exc.errors() if isinstance(e, dict)]
    details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "input": e.get("input")} for e in errors_]
    # Inputs may hold anything a client sent; keep only JSON-safe scalars.
    for item in details:
        if not isinstance(item["input"], (str, int, float, bool, type(None))):
            item.pop("input")
    message = describe_validation(exc)
    return error_response(422, errors.InvalidRequest.code, message, {"errors": details})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = CODE_OF_STATUS.get(status, "invalid_request" if status < 500 else "internal_error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if status == 404 and message == "Not Found":
        message = f"no route {request.url.path}; see /docs for the API"
    elif status == 405:
        message = f"method {request.method} not allowed on {request.url.path}; see /docs"
    return error_response(status, code, message, headers=getattr(exc, "headers", None))


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    logger.debug("client disconnected during %s %s", request.method, request.url.path)
    return error_response(400, errors.InvalidRequest.code, "the client disconnected before the body was read")


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, errors.InternalError.code, "internal error; the service logged the details")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected_error)


def error_responses(*classes: type[errors.ServiceError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the errors a route can answer with."""
    documented: dict[int | str, dict[str, Any]] = {}
    for cls in classes:
        status = STATUS[cls]
        entry = documented.setdefault(status, {"model": ErrorResponse, "description": ""})
        entry["description"] = ", ".join(filter(None, [entry["description"], cls.code]))
    return documented
