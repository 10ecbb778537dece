"""Typed exceptions: every failure the SDK raises is a `VAEError`.

The service answers every 4xx/5xx with one JSON shape,
`{"error": {"code": ..., "message": ..., "details": ...}}` (docs/api.md); `error_from_response`
turns that body into the subclass for its `code`, so callers can write `except ModelNotFound`.
Failures with no HTTP answer at all (refused connection, client-side timeout) are
`TransportError`s with `status=None`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "VAEError",
    "TransportError",
    "ConnectionFailed",
    "RequestTimeout",
    "APIError",
    "InvalidRequest",
    "InvalidImage",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "ModelNotFound",
    "MethodNotAllowed",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "Overloaded",
    "Unavailable",
    "ServerTimeout",
    "ServerError",
]


class VAEError(Exception):
    """Base class of every error the SDK raises.

    Attributes: `status` (HTTP status, or None when the server never answered), `code` (the
    service's snake_case error code), `message` (human-readable, says what is allowed),
    `details` (optional structured extras), `retry_after` (seconds the server asked us to wait).
    """

    default_code = "error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code or self.default_code
        self.details = details
        self.retry_after = retry_after

    def __str__(self) -> str:
        prefix = f"{self.status} {self.code}" if self.status is not None else self.code
        return f"{prefix}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r})"


class TransportError(VAEError):
    """No HTTP response: the request could not be sent or the answer never arrived."""

    default_code = "transport_error"


class ConnectionFailed(TransportError):
    """The server could not be reached (refused, DNS failure, connection reset)."""

    default_code = "connection_failed"


class RequestTimeout(TransportError, TimeoutError):
    """The client's own timeout (`Client(timeout=...)`) expired before the server answered."""

    default_code = "client_timeout"


class APIError(VAEError):
    """The server answered with an error status; `code` and `message` come from its body."""

    default_code = "http_error"


class InvalidRequest(APIError):
    """422 `invalid_request`: a parameter or body the service refuses (the message says why)."""

    default_code = "invalid_request"


class InvalidImage(InvalidRequest):
    """422 `invalid_image`: an upload that is not a decodable image."""

    default_code = "invalid_image"


class Unauthorized(APIError):
    """401 `unauthorized`: no API key (`Client(api_key=...)` or $VAE_API_KEY), or a wrong one."""

    default_code = "unauthorized"


class Forbidden(APIError):
    """403 `forbidden`: the API key lacks the scope this call needs (e.g. `admin`)."""

    default_code = "forbidden"


class NotFound(APIError):
    """404 `not_found`: no such endpoint."""

    default_code = "not_found"


class ModelNotFound(NotFound):
    """404 `model_not_found`: the `model` parameter names no loaded model."""

    default_code = "model_not_found"


class MethodNotAllowed(APIError):
    """405 `method_not_allowed`."""

    default_code = "method_not_allowed"


class PayloadTooLarge(APIError):
    """413 `payload_too_large`: the upload exceeds the service's size limit."""

    default_code = "payload_too_large"


class UnsupportedMediaType(APIError):
    """415 `unsupported_media_type`: a body type the endpoint does not accept."""

    default_code = "unsupported_media_type"


class Overloaded(APIError):
    """429 `queue_full`: the batch queue is full; retried automatically, raised when retries run out."""

    default_code = "queue_full"


class Unavailable(APIError):
    """503 `not_ready` / `shutting_down`: retried automatically, raised when retries run out."""

    default_code = "unavailable"


class ServerTimeout(APIError, TimeoutError):
    """504 `timeout`: the service gave up waiting for the model (its timeout, not ours)."""

    default_code = "timeout"


class ServerError(APIError):
    """500 `internal_error` or any other 5xx: a bug or outage on the server side."""

    default_code = "internal_error"


# The service's codes first (docs/api.md); the status decides only for codes we do not know.
ERROR_BY_CODE: dict[str, type[APIError]] = {
    "invalid_request": InvalidRequest,
    "invalid_image": InvalidImage,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "model_not_found": ModelNotFound,
    "method_not_allowed": MethodNotAllowed,
    "payload_too_large": PayloadTooLarge,
    "unsupported_media_type": UnsupportedMediaType,
    "queue_full": Overloaded,
    "not_ready": Unavailable,
    "shutting_down": Unavailable,
    "timeout": ServerTimeout,
    "internal_error": ServerError,
}

ERROR_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidRequest,
    429: Overloaded,
    503: Unavailable,
    504: ServerTimeout,
}


def error_class(status: int, code: str | None) -> type[APIError]:
    """The exception class for an error response with this status and (maybe unknown) code."""
    if code in ERROR_BY_CODE:
        return ERROR_BY_CODE[code]
    if status in ERROR_BY_STATUS:
        return ERROR_BY_STATUS[status]
    return ServerError if status >= 500 else APIError
