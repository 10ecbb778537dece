"""Limits and bad input: each class of client error gets its status and the one error shape,
never a 500."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from devtools.images import digit_png_bytes, image_bytes
from devtools.live import MODELS_DIR, start_server

LIMITS = {
    "VAE_MAX_SAMPLE_N": "64",
    "VAE_MAX_UPLOAD_IMAGES": "3",
    "VAE_MAX_UPLOAD_BYTES": "200000",
    "VAE_MAX_IMAGE_PIXELS": "1000000",
    "VAE_MAX_JSON_BYTES": "20000",
}


@pytest.fixture(scope="module")
def limited():
    server = start_server(LIMITS)
    with server.client() as http:
        yield http
    server.stop()


def assert_error(response, status: int, code: str, *words: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    for word in words:
        assert word in body["error"]["message"], body["error"]["message"]
    return body["error"]


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "params, words",
    [
        ({"n": 65}, ["1..64"]),
        ({"n": 0}, ["'n'"]),
        ({"n": "many"}, ["'n'"]),
        ({"temperature": 0}, ["'temperature'"]),
        ({"temperature": "inf"}, ["'temperature'"]),
        ({"seed": -1}, ["'seed'"]),
        ({"format": "gif"}, ["'format'", "png"]),
    ],
)
def test_bad_query_values_are_422_saying_what_is_allowed(limited, params, words):
    assert_error(limited.post("/sample", params=params), 422, "invalid_request", *words)


@pytest.mark.parametrize("path", ["/sample", "/decode", "/encode", "/reconstruct"])
def test_unknown_model_is_404_listing_the_models(limited, path):
    error = assert_error(limited.post(path, params={"model": "cifar"}), 404, "model_not_found", "cifar")
    assert error["details"]["available"] == sorted(p.name for p in MODELS_DIR.iterdir() if (p / "model.json").exists())
    assert_error(limited.get("/models/cifar"), 404, "model_not_found")


def test_unknown_route_and_wrong_method_use_the_error_shape(limited):
    assert_error(limited.get("/nowhere"), 404, "not_found")
    assert_error(limited.get("/sample"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    "body, words",
    [
        ({"latents": [[0.0] * 31]}, ["32"]),
        ({"latents": [[0.0] * 32, [0.0] * 31]}, ["32"]),
        ({"latents": [["a"] * 32]}, ["numbers"]),
        ({"latents": []}, ["32"]),
        ({"z": [[0.0] * 32]}, ["latents"]),
        ({"latents": [[0.0] * 32] * 65}, ["1..64"]),
    ],
)
def test_decode_rejects_wrong_latents_with_the_expected_size(limited, body, words):
    assert_error(limited.post("/decode", json=body), 422, "invalid_request", *words)


def test_decode_rejects_nan_and_inf_in_json_and_npy(limited):
    row = ", ".join(["0.0"] * 31)
    for literal in ("NaN", "Infinity", "1e400"):
        response = limited.post(
            "/decode", content=f'{{"latents": [[{literal}, {row}]]}}', headers={"Content-Type": "application/json"}
        )
        assert_error(response, 422, "invalid_request", "32")
    bad = np.zeros((2, 32), np.float32)
    bad[1, 3] = np.inf
    assert_error(
        limited.post("/decode", content=npy(bad), headers={"Content-Type": "application/x-npy"}),
        422,
        "invalid_request",
        "NaN or inf",
    )
    assert_error(
        limited.post(
            "/decode", content=npy(np.zeros((2, 16), np.float32)), headers={"Content-Type": "application/x-npy"}
        ),
        422,
        "invalid_request",
        "32",
    )


def test_decode_rejects_bad_bodies(limited):
    assert_error(
        limited.post("/decode", content=b"{not json", headers={"Content-Type": "application/json"}),
        422,
        "invalid_request",
    )
    assert_error(
        limited.post("/decode", content=b"\x93NUMPY garbage", headers={"Content-Type": "application/x-npy"}),
        422,
        "invalid_request",
        ".npy",
    )
    assert_error(
        limited.post("/decode", content=b"latents", headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
        "application/json",
    )
    too_big = json.dumps({"latents": [[0.123456789] * 32] * 64})
    assert_error(
        limited.post("/decode", content=too_big, headers={"Content-Type": "application/json"}),
        413,
        "payload_too_large",
        "20000",
    )


def test_uploads_over_max_upload_bytes_are_413_with_or_without_content_length(limited):
    noise = np.random.default_rng(0).integers(0, 256, (500, 500), dtype=np.uint8)
    big = image_bytes(noise, "PNG")
    assert len(big) > 200_000
    assert_error(limited.post("/encode", files={"file": ("big.png", big)}), 413, "payload_too_large", "200000")

    def chunked():
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    assert_error(
        limited.post("/encode", content=chunked(), headers={"Content-Type": "image/png"}), 413, "payload_too_large"
    )


def test_more_images_than_max_upload_images_is_413(limited):
    files = [("file", (f"{i}.png", digit_png_bytes(i))) for i in range(4)]
    assert_error(limited.post("/encode", files=files), 413, "payload_too_large", "3")
    assert limited.post("/encode", files=files[:3]).status_code == 200


def test_a_decompression_bomb_is_refused_before_decoding(limited, live_server):
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, "PNG")  # 400 megapixels in ~50 kB
    bomb = buffer.getvalue()
    assert len(bomb) < 200_000
    assert_error(
        limited.post("/encode", content=bomb, headers={"Content-Type": "image/png"}),
        413,
        "payload_too_large",
        "1000000",
    )
    with live_server.client() as default:  # default limits too
        assert_error(default.post("/reconstruct", files={"file": ("bomb.png", bomb)}), 413, "payload_too_large")
        assert default.get("/health").status_code == 200


def test_unsupported_media_is_415(limited):
    assert_error(
        limited.post("/encode", content=b"hello", headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
        "multipart/form-data",
    )
    assert_error(
        limited.post("/encode", content=b"<svg/>", headers={"Content-Type": "image/svg+xml"}),
        415,
        "unsupported_media_type",
        "image/png",
    )
    tiff = image_bytes(np.zeros((28, 28), np.uint8), "TIFF")
    assert_error(limited.post("/encode", files={"file": ("d.tiff", tiff)}), 415, "unsupported_media_type", "TIFF")


def test_undecodable_or_truncated_images_are_422(limited):
    assert_error(
        limited.post("/encode", content=b"not an image", headers={"Content-Type": "image/png"}), 422, "invalid_image"
    )
    png = digit_png_bytes(0, size=200)
    assert_error(limited.post("/encode", files={"file": ("cut.png", png[: len(png) // 2])}), 422, "invalid_image")
    jpeg = digit_png_bytes(0, "JPEG", size=200)
    assert_error(
        limited.post("/reconstruct", files={"file": ("cut.jpg", jpeg[: len(jpeg) // 2])}), 422, "invalid_image"
    )
    assert_error(limited.post("/encode", content=b"", headers={"Content-Type": "image/png"}), 422, "invalid_image")
    files = [("file", ("ok.png", digit_png_bytes(0))), ("file", ("bad.png", b"junk"))]
    assert_error(limited.post("/encode", files=files), 422, "invalid_image", "image 1")


def test_a_form_without_files_and_malformed_multipart_are_rejected(limited):
    assert_error(limited.post("/encode", data={"note": "no file"}, files={}), 415, "unsupported_media_type")
    no_file = limited.post(
        "/encode",
        content=b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--x--\r\n',
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert_error(no_file, 422, "invalid_request", "no image")
    broken = limited.post("/encode", content=b"garbage", headers={"Content-Type": "multipart/form-data"})
    assert broken.status_code in (413, 422) and broken.json()["error"]["code"] in (
        "invalid_request",
        "payload_too_large",
    )


def test_random_garbage_never_causes_a_500(limited):
    rng = np.random.default_rng(7)
    content_types = [
        "image/png",
        "image/jpeg",
        "application/octet-stream",
        "application/json",
        "application/x-npy",
        "multipart/form-data; boundary=zz",
        "image/gif",
    ]
    for path in ("/encode", "/reconstruct", "/decode"):
        for content_type in content_types:
            for length in (1, 8, 100, 3000):
                body = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
                response = limited.post(path, content=body, headers={"Content-Type": content_type})
                assert 400 <= response.status_code < 500, (path, content_type, response.text)
                assert "error" in response.json()


def test_the_openapi_schema_states_the_configured_limits(limited):
    paths = limited.get("/openapi.json").json()["paths"]
    n = next(p for p in paths["/sample"]["post"]["parameters"] if p["name"] == "n")
    assert n["schema"]["maximum"] == int(LIMITS["VAE_MAX_SAMPLE_N"])
    latents = paths["/decode"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["latents"]
    assert latents["maxItems"] == int(LIMITS["VAE_MAX_SAMPLE_N"])
    for path in ("/encode", "/reconstruct"):
        form = paths[path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert form["properties"]["file"]["maxItems"] == int(LIMITS["VAE_MAX_UPLOAD_IMAGES"])
