"""Optional API keys (VAE_API_KEYS): who may call, for REST and gRPC alike.

The keys file holds one key per line as `sha256:<hex digest of the key> <scopes> [name]`, scopes
`infer` (every model endpoint, the OIP data plane) and `admin` (the model repository extension)
comma-separated; `python -m service hash-key` writes such a line. Keys are long random tokens,
so a plain SHA-256 is enough to keep the file from leaking them; each presented key is compared
with every stored digest in constant time. Clients send `Authorization: Bearer <key>` or
`X-API-Key: <key>` (gRPC: the same as metadata). Health, readiness, metrics, the docs and the
playground's static page stay open unless VAE_API_KEYS_PROTECT_OPS is set.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from service.errors import Forbidden, Unauthorized

SCOPES = ("infer", "admin")
OPEN_PATHS = frozenset({"/health", "/ready", "/metrics", "/ping", "/v2/health/live", "/v2/health/ready"})
PAGE_PATHS = frozenset({"/", "/docs", "/openapi.json", "/docs/oauth2-redirect"})


class KeyFileError(ValueError):
    """A keys file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class StoredKey:
    digest: bytes
    scopes: frozenset[str]
    name: str


def digest_of(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_line(key: str, scopes: list[str], name: str = "") -> str:
    return f"sha256:{digest_of(key).hex()} {','.join(scopes)} {name}".rstrip()


def load_keys(path: Path) -> list[StoredKey]:
    keys = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the API keys file ({exc.strerror})") from None
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("sha256:") or len(parts[0]) != 7 + 64:
            raise KeyFileError(f"{path}:{number}: expected 'sha256:<64 hex digits> <scopes> [name]'")
        scopes = frozenset(parts[1].split(","))
        if not scopes <= set(SCOPES):
            raise KeyFileError(f"{path}:{number}: scopes {sorted(scopes)}; allowed: {', '.join(SCOPES)}")
        try:
            digest = bytes.fromhex(parts[0][7:])
        except ValueError:
            raise KeyFileError(f"{path}:{number}: the digest is not hexadecimal") from None
        keys.append(StoredKey(digest, scopes, parts[2] if len(parts) > 2 else ""))
    if not keys:
        raise KeyFileError(f"{path}: no keys; add lines from `python -m service hash-key`")
    return keys


class KeyRing:
    def __init__(self, keys: list[StoredKey], protect_ops: bool = False) -> None:
        self.keys = keys
        self.protect_ops = protect_ops

    def scope_for(self, path: str) -> str | None:
        """The scope a path needs; None when it is open."""
        if not self.protect_ops and (path in OPEN_PATHS or path in PAGE_PATHS or path.startswith("/static/")):
            return None
        return "admin" if path.startswith("/v2/repository") else "infer"

    def check(self, presented: str | None, scope: str) -> StoredKey:
        """The key's entry if it holds `scope`; Unauthorized or Forbidden otherwise."""
        if not presented:
            raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        digest = digest_of(presented)
        found = None
        for stored in self.keys:  # every digest is compared, so the time does not tell which matched
            if hmac.compare_digest(stored.digest, digest):
                found = stored
        if found is None:
            raise Unauthorized("the API key is not valid")
        if scope not in found.scopes:
            raise Forbidden(f"this API key lacks the {scope!r} scope (it has {', '.join(sorted(found.scopes))})")
        return found


def presented_key(headers: dict[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return headers.get("x-api-key")


class ApiKeyMiddleware:
    """Refuses requests without a key holding the path's scope (401 or 403 in the error shape)."""

    def __init__(self, app, keyring: KeyRing) -> None:
        self.app = app
        self.keyring = keyring

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = self.keyring.scope_for(scope["path"])
        if needed is not None:
            headers = {
                k.decode("latin-1"): v.decode("latin-1")
                for k, v in scope["headers"]
                if k in (b"authorization", b"x-api-key")
            }
            try:
                self.keyring.check(presented_key(headers), needed)
            except (Unauthorized, Forbidden) as exc:
                from service.handlers import oip_response_for, response_for  # errors become HTTP there

                shape = oip_response_for if scope["path"].startswith("/v2") else response_for
                await shape(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)
