"""GET / (the playground page) and its static files; the page itself only calls the public API.

Assets are served at /static/<version>/<file>, where <version> is a hash over every file in
static/: a page and the modules it imports always come from one build, so assets are cached for a
year as immutable, while the HTML (which names the version) is revalidated on every load
(no-cache with an ETag). Bodies are read and gzipped once, when this module is imported.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request, Response

from service import errors

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX = "index.html"
STATIC_PREFIX = "/static"
VERSION_PLACEHOLDER = "{{static}}"  # index.html names its assets as {{static}}/app.js
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
GZIP_AT_LEAST = 512  # bytes; below this the gzip header and checksum outweigh the saving

# No inline scripts or styles anywhere; the page talks to this origin only.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
HTML_CACHE = "no-cache"
ASSET_CACHE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None  # None where gzip does not make it smaller
    media_type: str
    etag: str  # weak: the plain and the gzipped body are the same representation

    @classmethod
    def of(cls, body: bytes, media_type: str) -> Asset:
        # mtime=0: the same bytes give the same gzip stream on every start.
        packed = gzip.compress(body, compresslevel=9, mtime=0) if len(body) >= GZIP_AT_LEAST else None
        smaller = packed if packed is not None and len(packed) < len(body) else None
        return cls(body, smaller, media_type, f'W/"{hashlib.sha256(body).hexdigest()[:16]}"')


@dataclass(frozen=True)
class Site:
    version: str
    index: Asset
    assets: dict[str, Asset]


def build_site(folder: Path = STATIC_DIR) -> Site:
    """Read static/ once: the version is a hash over every file's name and bytes."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in MEDIA_TYPES)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    version = digest.hexdigest()[:12]
    assets = {p.name: Asset.of(p.read_bytes(), MEDIA_TYPES[p.suffix]) for p in files if p.name != INDEX}
    html = (folder / INDEX).read_text(encoding="utf-8").replace(VERSION_PLACEHOLDER, f"{STATIC_PREFIX}/{version}")
    return Site(version, Asset.of(html.encode(), MEDIA_TYPES[".html"]), assets)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (`gzip`, `*`, not with q=0)."""
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        quality = params.strip()
        if quality.startswith("q="):
            try:
                return float(quality[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def matches_etag(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2): W/ prefixes are ignored."""
    wanted = etag.removeprefix("W/")
    return any(tag.strip() == "*" or tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


def respond(request: Request, asset: Asset, cache_control: str) -> Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": cache_control, "ETag": asset.etag, "Vary": "Accept-Encoding"}
    if matches_etag(request.headers.get("if-none-match", ""), asset.etag):
        return Response(status_code=304, headers=headers)
    if asset.gzipped is not None and accepts_gzip(request.headers.get("accept-encoding", "")):
        return Response(asset.gzipped, media_type=asset.media_type, headers={**headers, "Content-Encoding": "gzip"})
    return Response(asset.body, media_type=asset.media_type, headers=headers)


SITE = build_site()
router = APIRouter(tags=["playground"], include_in_schema=False)


@router.api_route("/", methods=["GET", "HEAD"])
async def index(request: Request) -> Response:
    return respond(request, SITE.index, HTML_CACHE)


@router.api_route(STATIC_PREFIX + "/{version}/{name}", methods=["GET", "HEAD"])
async def static_file(version: str, name: str, request: Request) -> Response:
    asset = SITE.assets.get(name)
    if version != SITE.version or asset is None:
        raise errors.RouteNotFound(
            f"no playground file {name!r} in version {version!r}; the current page is at / (version {SITE.version})"
        )
    return respond(request, asset, ASSET_CACHE)
