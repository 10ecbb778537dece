"""One error shape for every 4xx/5xx: {"error": {"code", "message", "details"?}} (docs/api.md)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from service.batching import EngineStopped, InferenceTimeout, QueueFullError

logger = logging.getLogger("service.errors")

CODE_OF_STATUS = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "invalid_request",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "queue_full",
    503: "not_ready",
    504: "timeout",
}


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | list[Any] | None = None


class ErrorResponse(BaseModel):
    """The shape of every error the service returns."""

    error: ErrorBody


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details, self.headers = status, code, message, details, headers


def error_response(status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "request"
    kind = {"query": "query parameter", "path": "path parameter", "header": "header"}.get(
        str(error.get("loc", ("",))[0]), "field"
    )
    name = where.split(".", 1)[1] if "." in where and kind != "field" else where
    return f"{kind} {name!r}: {error.get('msg', 'invalid')}"


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    details = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "input": e.get("input")}
        for e in errors
        if isinstance(e, dict)
    ]
    # Inputs may hold anything a client sent; keep only JSON-safe scalars.
    for item in details:
        if not isinstance(item["input"], (str, int, float, bool, type(None))):
            item.pop("input")
    message = "; ".join(_describe(e) for e in errors) or "invalid request"
    return error_response(422, "invalid_request", message, {"errors": details})


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = CODE_OF_STATUS.get(exc.status_code, "invalid_request" if exc.status_code < 500 else "internal_error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.url.path}; see /docs"
    return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))


async def _queue_full(request: Request, exc: QueueFullError) -> JSONResponse:
    return error_response(
        429,
        "queue_full",
        f"the inference queue is full ({exc.queued_rows} rows waiting, at most {exc.max_queue_rows}); "
        f"retry after {exc.retry_after_s} s",
        {"queued_rows": exc.queued_rows, "max_queue_rows": exc.max_queue_rows},
        headers={"Retry-After": str(exc.retry_after_s)},
    )


async def _timeout(request: Request, exc: InferenceTimeout) -> JSONResponse:
    return error_response(
        504, "timeout", f"inference did not finish within the request timeout of {exc.timeout_s:g} s (VAE_REQUEST_TIMEOUT_S)"
    )


async def _stopped(request: Request, exc: EngineStopped) -> JSONResponse:
    return error_response(503, "shutting_down", "the service is shutting down; retry on another instance")


async def _client_gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
    logger.debug("client disconnected during %s %s", request.method, request.url.path)
    return error_response(400, "invalid_request", "the client disconnected before the body was read")


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error; the service logged the details")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(QueueFullError, _queue_full)
    app.add_exception_handler(InferenceTimeout, _timeout)
    app.add_exception_handler(EngineStopped, _stopped)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected_error)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the error shape."""
    return {status: {"model": ErrorResponse, "description": CODE_OF_STATUS.get(status, "error")} for status in statuses}
