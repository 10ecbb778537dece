"""GET / and the playground's static files (placeholder until the page lands)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["playground"], include_in_schema=False)


@router.get("/")
async def index() -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><title>VAE playground</title><p>The API is documented at <a href=/docs>/docs</a>."
    )
