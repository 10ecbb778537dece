"""The playground: a page at GET / built only on the public HTTP API (docs/playground.md)."""

from service.playground.routes import router

__all__ = ["router"]
