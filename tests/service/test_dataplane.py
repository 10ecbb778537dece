"""service/dataplane.py: the hot routes skip FastAPI's router and wrappers, yet answer exactly as
the control plane does: the same bodies, errors, headers, metrics, API keys and CORS."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.app import DATA_PLANE_PATHS, create_app
from service.auth import key_line
from service.config import Settings

KEY = "dp-test-key-0123456789abcdef"


def png_bytes(seed: int = 0) -> bytes:
    pixels = (np.random.default_rng(seed).random((28, 28)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


LATENTS = json.dumps({"latents": [np.linspace(-1, 1, 32).round(4).tolist()]})
NPY_NAN = io.BytesIO()
np.save(NPY_NAN, np.full((1, 32), np.nan, dtype=np.float32))

# (method, target, body, content type): good requests and bad ones, on every data-plane route.
REQUESTS = [
    ("POST", "/decode?format=npy", LATENTS, "application/json"),
    ("POST", "/decode", LATENTS, "application/json"),
    ("POST", "/decode?format=json&model=fashion-mnist", LATENTS, "application/json"),
    ("POST", "/decode?bogus=1", LATENTS, "application/json"),
    ("POST", "/decode?model=nope", LATENTS, "application/json"),
    ("POST", "/decode", NPY_NAN.getvalue(), "application/x-npy"),
    ("POST", "/decode", '{"latents": [[1, 2]]}', "application/json"),
    ("POST", "/decode", "{not json", "application/json"),
    ("POST", "/decode", LATENTS, "text/plain"),
    ("POST", "/decode", "x" * (3 << 20), "application/json"),
    ("POST", "/sample?n=3&seed=5&format=npy", "", None),
    ("POST", "/sample?n=0", "", None),
    ("POST", "/sample?n=two", "", None),
    ("POST", "/sample?n=2&prior=mixture&label=7&seed=1", "", None),
    ("POST", "/sample?label=dragon", "", None),
    ("POST", "/encode?seed=3&sample=true", "png", None),
    ("POST", "/encode", "corrupt", None),
    ("POST", "/reconstruct?format=json", "png", None),
    ("POST", "/reconstruct", "", "multipart/form-data; boundary=x"),
    ("POST", "/v2/models/mnist-decoder/infer", "oip", "application/json"),
    ("POST", "/v2/models/mnist-decoder/versions/1/infer", "oip", "application/json"),
    ("POST", "/v2/models/mnist-decoder/infer", '{"inputs": []}', "application/json"),
    ("POST", "/v2/models/nope/infer", "oip", "application/json"),
    ("GET", "/decode", "", None),  # not on the data plane: the control plane's 405
    ("GET", "/v2/models/mnist-decoder/infer", "", None),
]

OIP_BODY = json.dumps(
    {"inputs": [{"name": "z", "shape": [1, 32], "datatype": "FP32", "data": [0.25] * 32}], "id": "r1"}
)


def send(client: TestClient, method: str, target: str, body: str | bytes, content_type: str | None, **headers):
    headers = {"X-Request-ID": "fixed-id-1", **headers}
    if body in ("png", "corrupt"):
        upload = png_bytes() if body == "png" else b"\x89PNG\r\n\x1a\nbroken"
        return client.request(method, target, files={"file": ("digit.png", upload, "image/png")}, headers=headers)
    if body == "oip":
        body = OIP_BODY
    if content_type:
        headers["Content-Type"] = content_type
    return client.request(method, target, content=body, headers=headers)


@pytest.fixture(scope="module")
def planes():
    """The same settings twice: the data plane on, and off (every route through FastAPI's stack)."""
    with_plane = create_app(Settings())
    without = create_app(Settings())
    without.data_plane_paths = ()
    with (
        TestClient(with_plane, raise_server_exceptions=False) as fast,
        TestClient(without, raise_server_exceptions=False) as full,
    ):
        yield with_plane, fast, without, full


def test_the_hot_routes_and_only_they_are_on_the_data_plane(planes):
    with_plane, fast, without, _ = planes
    fast.get("/ping")  # builds the middleware stack
    assert with_plane.data_plane.paths == sorted(DATA_PLANE_PATHS)
    assert without.data_plane.paths == []
    seen: list[str] = []
    control = with_plane.data_plane.control

    async def spy(scope, receive, send):
        seen.append(scope["path"])
        await control(scope, receive, send)

    with_plane.data_plane.control = spy
    try:
        assert fast.post("/decode?format=npy", content=LATENTS, headers={"Content-Type": "application/json"}).is_success
        assert fast.post("/v2/models/mnist-decoder/infer", content=OIP_BODY).is_success
        assert fast.get("/models").is_success
        assert fast.get("/decode").status_code == 405
    finally:
        with_plane.data_plane.control = control
    assert seen == ["/models", "/decode"]


@pytest.mark.parametrize(("method", "target", "body", "content_type"), REQUESTS)
def test_answers_equal_the_control_planes(planes, method, target, body, content_type):
    _, fast, _, full = planes
    ours, theirs = (send(client, method, target, body, content_type) for client in (fast, full))
    assert ours.status_code == theirs.status_code, ours.text
    assert ours.content == theirs.content
    for header in ("content-type", "x-request-id", "x-model", "x-latent-shape", "retry-after", "allow"):
        assert ours.headers.get(header) == theirs.headers.get(header), header
    if ours.status_code >= 400:
        error = ours.json()["error"]
        assert error if target.startswith("/v2") else error["code"] and error["message"]
    assert ours.status_code < 500


def test_requests_are_counted_by_route_template(planes):
    _, fast, _, _ = planes

    def count(status: str) -> float:
        total = 0.0
        for line in fast.get("/metrics").text.splitlines():
            if line.startswith("vae_http_requests_total{") and 'endpoint="/v2/models/{name}/infer"' in line:
                if f'status="{status}"' in line:
                    total += float(line.rsplit(" ", 1)[1])
        return total

    before_ok, before_missing = count("200"), count("404")
    assert fast.post("/v2/models/mnist-decoder/infer", content=OIP_BODY).status_code == 200
    assert fast.post("/v2/models/nope/infer", content=OIP_BODY).status_code == 404
    assert (count("200"), count("404")) == (before_ok + 1, before_missing + 1)


def test_an_unexpected_error_is_a_500_in_the_error_shape_and_the_service_goes_on(planes, monkeypatch):
    with_plane, fast, _, _ = planes
    engine = with_plane.state.service.engine

    async def broken(model, latents):
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "decode", broken)
    answer = fast.post("/decode", content=LATENTS, headers={"Content-Type": "application/json"})
    assert answer.status_code == 500
    assert answer.json() == {
        "error": {"code": "internal_error", "message": "internal error; the service logged the details"}
    }
    assert "boom" not in answer.text
    monkeypatch.undo()
    assert fast.post("/decode", content=LATENTS, headers={"Content-Type": "application/json"}).status_code == 200


def test_api_keys_and_cors_hold_on_the_data_plane(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(key_line(KEY, ["infer"], "app") + "\n")
    settings = Settings(api_keys=keys, cors_origins=["https://example.org"])
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        headers = {"Content-Type": "application/json", "Origin": "https://example.org"}
        refused = client.post("/decode", content=LATENTS, headers=headers)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        allowed = client.post("/decode?format=npy", content=LATENTS, headers={**headers, "X-API-Key": KEY})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://example.org"
        assert "X-Request-ID" in allowed.headers["access-control-expose-headers"]
        preflight = client.options(
            "/decode",
            headers={"Origin": "https://example.org", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://example.org"
