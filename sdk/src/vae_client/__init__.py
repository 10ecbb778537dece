"""Python client for the VAE model-serving service (docs/api.md).

from vae_client import Client

with Client("http://localhost:8000") as vae:
    grid = vae.sample(16, seed=0)
    grid.save_grid("samples.png")
    codes = vae.encode(["digit.png"])
    again = vae.decode(codes.mu)
"""

from . import errors, models
from ._transport import DEFAULT_URL, RetryPolicy
from ._version import __version__
from .async_client import AsyncClient
from .client import Client
from .errors import *  # noqa: F403 - the names in errors.__all__
from .models import *  # noqa: F403 - the names in models.__all__

__all__ = ["__version__", "DEFAULT_URL", "Client", "AsyncClient", "RetryPolicy", *models.__all__, *errors.__all__]
