"""Python client for the VAE model-serving service (docs/api.md).

    from vae_client import Client

    with Client("http://localhost:8000") as vae:
        grid = vae.sample(16, seed=0)
        grid.save_grid("samples.png")
        codes = vae.encode(["digit.png"])
        again = vae.decode(codes.mu)
"""

from ._transport import DEFAULT_URL, RetryPolicy
from ._version import __version__
from .async_client import AsyncClient
from .client import Client
from .errors import (
    APIError,
    ConnectionFailed,
    InvalidImage,
    InvalidRequest,
    MethodNotAllowed,
    ModelNotFound,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RequestTimeout,
    ServerError,
    ServerTimeout,
    TransportError,
    Unavailable,
    UnsupportedMediaType,
    VAEError,
)
from .models import (
    DecodeResult,
    EncodeResult,
    Health,
    ImageResult,
    ModelInfo,
    ModelList,
    Readiness,
    ReconstructResult,
    SampleResult,
)

__all__ = [
    "__version__",
    "DEFAULT_URL",
    "Client",
    "AsyncClient",
    "RetryPolicy",
    "ImageResult",
    "SampleResult",
    "DecodeResult",
    "ReconstructResult",
    "EncodeResult",
    "ModelInfo",
    "ModelList",
    "Health",
    "Readiness",
    "VAEError",
    "TransportError",
    "ConnectionFailed",
    "RequestTimeout",
    "APIError",
    "InvalidRequest",
    "InvalidImage",
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
