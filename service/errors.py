"""Every failure the service reports, one class per error code in docs/api.md.

The stage that finds a problem raises its class; none of them knows HTTP. service/handlers.py is
the one place that maps a class to a status and the error body
`{"error": {"code", "message", "details"?}}`.

    ServiceError
    ├── InvalidRequest          invalid_request          a parameter or body the service refuses
    │   └── InvalidImage        invalid_image            upload bytes that are not a decodable image
    ├── UnsupportedMediaType    unsupported_media_type   a body or image type the endpoint does not take
    ├── PayloadTooLarge         payload_too_large        a body, image or upload count over a limit
    ├── Unauthorized            unauthorized             no API key, or one that is not valid
    ├── Forbidden               forbidden                an API key without the scope the path needs
    ├── ModelNotFound           model_not_found          no loaded model has that name
    ├── RouteNotFound           not_found                no such endpoint, or a model file the model lacks
    ├── MethodNotAllowed        method_not_allowed       the endpoint exists, the method does not
    ├── QueueFull               queue_full               the batch queue is at its row limit
    ├── InferenceTimeout        timeout                  inference missed the request deadline
    ├── NotReady                not_ready                models are still loading
    ├── ShuttingDown            shutting_down            draining after SIGTERM
    └── InternalError           internal_error           a bug; never anything a client sent
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    """Base class: `code` names the failure, `message` says what was wrong and what is allowed."""

    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(ServiceError):
    code = "invalid_request"


class InvalidImage(InvalidRequest):
    code = "invalid_image"


class UnsupportedMediaType(ServiceError):
    code = "unsupported_media_type"


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"


class Unauthorized(ServiceError):
    code = "unauthorized"


class Forbidden(ServiceError):
    code = "forbidden"


class ModelNotFound(ServiceError):
    code = "model_not_found"

    def __init__(self, name: str | None, available: list[str]) -> None:
        super().__init__(f"unknown model {name!r}; available: {available}", {"available": available})


class RouteNotFound(ServiceError):
    code = "not_found"


class MethodNotAllowed(ServiceError):
    code = "method_not_allowed"


class QueueFull(ServiceError):
    code = "queue_full"

    def __init__(
        self,
        rows: int,
        queued_rows: int,
        max_queue_rows: int,
        retry_after_s: int,
        wait_s: float | None = None,
        max_queue_wait_s: float | None = None,
    ) -> None:
        if wait_s is None:  # refused by the row bound
            message = f"the inference queue is full ({queued_rows} rows waiting, at most {max_queue_rows})"
            details: dict[str, float | None] = {"queued_rows": queued_rows, "max_queue_rows": max_queue_rows}
        else:  # refused by the time bound
            message = (
                f"the inference queue is full ({queued_rows} rows waiting, about {wait_s:.1f} s of work; "
                f"at most {max_queue_wait_s:g} s, VAE_MAX_QUEUE_WAIT_S)"
            )
            details = {
                "queued_rows": queued_rows,
                "estimated_wait_s": round(wait_s, 3),
                "max_queue_wait_s": max_queue_wait_s,
            }
        super().__init__(f"{message}; retry after {retry_after_s} s", details)
        self.rows, self.queued_rows, self.max_queue_rows, self.retry_after_s = (
            rows,
            queued_rows,
            max_queue_rows,
            retry_after_s,
        )


class InferenceTimeout(ServiceError):
    code = "timeout"

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            f"inference did not finish within the request timeout of {timeout_s:g} s (VAE_REQUEST_TIMEOUT_S)"
        )
        self.timeout_s = timeout_s


class NotReady(ServiceError):
    code = "not_ready"


class ShuttingDown(ServiceError):
    code = "shutting_down"


class InternalError(ServiceError):
    code = "internal_error"


def error_codes() -> set[str]:
    """Every code the service can answer with (the SDK must know each one)."""
    found: set[str] = set()
    pending: list[type[ServiceError]] = [ServiceError]
    while pending:
        cls = pending.pop()
        found.add(cls.code)
        pending.extend(cls.__subclasses__())
    return found
