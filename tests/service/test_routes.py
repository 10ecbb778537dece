"""Every route and output format, in-process (`TestClient(create_app(settings))`, shipped models):
what each endpoint answers, its formats, and its OpenAPI entry."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import pytest
from PIL import Image

from devtools.images import MEDIA_TYPE, digit_array, digit_png_bytes, image_bytes
from devtools.live import MODELS_DIR

SHIPPED = sorted(p.name for p in MODELS_DIR.iterdir() if (p / "model.json").exists())
D = 32  # latent_dim of the shipped models (read from the card in test_models_list_cards_providers_and_shapes)


def load_npy(content: bytes) -> np.ndarray:
    return np.load(io.BytesIO(content), allow_pickle=False)


def load_png(content: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(content))
    assert image.format == "PNG" and image.mode == "L"
    return np.asarray(image)


@pytest.fixture(scope="module")
def client(app_client):
    return app_client


def test_health_ping_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ping").text == "pong"
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "models": SHIPPED}


def test_openapi_is_served_at_docs_with_every_route(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/sample",
        "/decode",
        "/encode",
        "/reconstruct",
        "/models",
        "/models/{name}",
        "/health",
        "/ready",
        "/metrics",
    ):
        assert path in paths
    assert "multipart/form-data" in paths["/encode"]["post"]["requestBody"]["content"]


def test_models_list_cards_providers_and_shapes(client):
    listing = client.get("/models").json()
    assert listing["default"] == "mnist"
    by_name = {m["name"]: m for m in listing["models"]}
    assert sorted(by_name) == SHIPPED
    mnist = client.get("/models/mnist").json()
    assert mnist == by_name["mnist"]
    assert mnist["provider"] == "CPUExecutionProvider"
    assert mnist["card"]["latent_dim"] == D
    assert mnist["inputs"] == {"encoder": {"image": ["N", 1, 28, 28]}, "decoder": {"z": ["N", D]}}
    assert mnist["outputs"]["encoder"] == {"mu": ["N", D], "logvar": ["N", D]}
    assert mnist["outputs"]["decoder"] == {"image": ["N", 1, 28, 28]}


def test_sample_default_is_a_png_grid_with_sqrt_n_columns_and_2px_padding(client):
    response = client.post("/sample", params={"n": 16, "seed": 1})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-model"] == "mnist" and response.headers["x-latent-dim"] == str(D)
    grid = load_png(response.content)
    assert grid.shape == (4 * 28 + 3 * 2, 4 * 28 + 3 * 2)
    assert not grid[28:30, :].any() and not grid[:, 28:30].any()  # black padding between cells
    cells = client.post("/sample", params={"n": 16, "seed": 1, "format": "npy"})
    first = np.clip(np.rint(load_npy(cells.content)[0, 0] * 255), 0, 255).astype(np.uint8)
    assert np.array_equal(grid[:28, :28], first)


@pytest.mark.parametrize("n", [1, 5])
def test_sample_png_grid_shape_for_odd_counts(client, n):
    grid = load_png(client.post("/sample", params={"n": n}).content)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    assert grid.shape == (rows * 28 + (rows - 1) * 2, cols * 28 + (cols - 1) * 2)


def test_sample_npy_is_float32_nchw_in_unit_range_and_seed_reproducible(client):
    first = client.post("/sample", params={"n": 7, "seed": 42, "format": "npy"})
    assert first.headers["content-type"] == "application/x-npy"
    images = load_npy(first.content)
    assert images.dtype == np.float32 and images.shape == (7, 1, 28, 28)
    assert images.min() >= 0.0 and images.max() <= 1.0
    again = client.post("/sample", params={"n": 7, "seed": 42, "format": "npy"})
    other = client.post("/sample", params={"n": 7, "seed": 43, "format": "npy"})
    assert again.content == first.content
    assert other.content != first.content


def test_sample_json_latents_follow_default_rng_seed_and_temperature(client):
    params = {"n": 3, "seed": 5, "temperature": 0.5, "prior": "standard", "format": "json"}
    body = client.post("/sample", params=params).json()
    assert body["model"] == "mnist" and body["latent_dim"] == D
    expected = np.random.default_rng(5).standard_normal((3, D), dtype=np.float32) * np.float32(0.5)
    assert np.array_equal(np.asarray(body["latents"], dtype=np.float32), expected)
    assert len(body["images"]) == 3
    assert load_png(base64.b64decode(body["images"][0])).shape == (28, 28)


def test_accept_header_chooses_the_format_and_format_query_wins(client):
    npy = client.post("/sample", params={"n": 2}, headers={"Accept": "application/x-npy"})
    assert npy.headers["content-type"] == "application/x-npy"
    as_json = client.post("/sample", params={"n": 2}, headers={"Accept": "text/html, application/json;q=0.9"})
    assert as_json.headers["content-type"] == "application/json"
    png = client.post("/sample", params={"n": 2, "format": "png"}, headers={"Accept": "application/json"})
    assert png.headers["content-type"] == "image/png"
    fallback = client.post("/sample", params={"n": 2}, headers={"Accept": "*/*"})
    assert fallback.headers["content-type"] == "image/png"


def test_decode_json_and_npy_bodies_reproduce_sampled_images(client):
    sampled = client.post("/sample", params={"n": 4, "seed": 9, "format": "json"}).json()
    reference = client.post("/sample", params={"n": 4, "seed": 9, "format": "npy"}).content
    from_json = client.post("/decode", params={"format": "npy"}, json={"latents": sampled["latents"]})
    assert from_json.status_code == 200 and from_json.content == reference
    latents = np.asarray(sampled["latents"], dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, latents)
    from_npy = client.post(
        "/decode", params={"format": "npy"}, content=buffer.getvalue(), headers={"Content-Type": "application/x-npy"}
    )
    assert from_npy.content == reference
    as_png = client.post("/decode", json={"latents": sampled["latents"]})
    assert as_png.headers["content-type"] == "image/png" and load_png(as_png.content).shape == (58, 58)
    as_json = client.post("/decode", params={"format": "json"}, json={"latents": sampled["latents"]}).json()
    assert as_json["latents"] == sampled["latents"] and as_json["images"] == sampled["images"]


def test_decode_accepts_a_single_latent_vector_as_npy(client):
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(D, dtype=np.float64))
    response = client.post(
        "/decode", params={"format": "npy"}, content=buffer.getvalue(), headers={"Content-Type": "application/x-npy"}
    )
    assert response.status_code == 200 and load_npy(response.content).shape == (1, 1, 28, 28)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "WEBP"])
def test_encode_accepts_each_image_format_as_multipart(client, fmt):
    data = digit_png_bytes(0, fmt)
    response = client.post("/encode", files={"file": (f"digit.{fmt.lower()}", data, MEDIA_TYPE[fmt])})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "mnist" and body["latent_dim"] == D
    (result,) = body["results"]
    assert result["filename"] == f"digit.{fmt.lower()}"
    assert len(result["mu"]) == D and len(result["logvar"]) == D and "z" not in result


def test_encode_lossless_formats_agree_exactly(client):
    mus = [
        client.post("/encode", files={"file": ("d", digit_png_bytes(1, fmt), MEDIA_TYPE[fmt])}).json()["results"][0][
            "mu"
        ]
        for fmt in ("PNG", "BMP", "GIF")
    ]
    assert mus[0] == mus[1] == mus[2]


def test_encode_raw_body_equals_multipart_and_many_files_keep_order(client):
    digits = [digit_png_bytes(i) for i in range(3)]
    raw = client.post("/encode", content=digits[1], headers={"Content-Type": "image/png"}).json()["results"][0]
    assert raw["filename"] is None
    files = [("files", (f"d{i}.png", data, "image/png")) for i, data in enumerate(digits)]
    many = client.post("/encode", files=files).json()["results"]
    assert [r["filename"] for r in many] == ["d0.png", "d1.png", "d2.png"]
    assert many[1]["mu"] == raw["mu"]
    assert many[0]["mu"] != many[1]["mu"]


def test_a_28x28_dark_background_digit_passes_through_normalisation_unchanged(client):
    data = digit_png_bytes(4)
    normalized = client.post("/encode", files={"file": ("d.png", data)}).json()["results"][0]
    raw = client.post("/encode", params={"normalize": "false"}, files={"file": ("d.png", data)}).json()["results"][0]
    assert normalized["mu"] == raw["mu"]
    recon = client.post("/reconstruct", params={"format": "json"}, files={"file": ("d.png", data)}).json()
    assert np.array_equal(load_png(base64.b64decode(recon["results"][0]["input"])), digit_array(4))


def test_a_large_white_background_photo_is_inverted_and_fitted_like_mnist(client):
    data = digit_png_bytes(2, "JPEG", size=400, white_background=True)
    body = client.post("/reconstruct", params={"format": "json"}, files={"file": ("scan.jpg", data)}).json()
    model_input = load_png(base64.b64decode(body["results"][0]["input"])).astype(np.float64)
    reference = digit_array(2).astype(np.float64)
    assert model_input.shape == (28, 28)
    assert model_input[0].max() < 30 and model_input[:, 0].max() < 30  # dark background, like the training data
    assert np.corrcoef(model_input.ravel(), reference.ravel())[0, 1] > 0.8


def test_encode_sample_draws_z_from_default_rng_seed(client):
    data = digit_png_bytes(5)
    first = client.post("/encode", params={"sample": "true", "seed": 11}, files={"file": ("d.png", data)}).json()
    again = client.post("/encode", params={"sample": "true", "seed": 11}, files={"file": ("d.png", data)}).json()
    result = first["results"][0]
    assert result["z"] == again["results"][0]["z"]
    mu, logvar = np.asarray(result["mu"], np.float32), np.asarray(result["logvar"], np.float32)
    eps = np.random.default_rng(11).standard_normal((1, D), dtype=np.float32)[0]
    np.testing.assert_allclose(result["z"], mu + np.exp(0.5 * logvar) * eps, rtol=1e-5, atol=1e-6)


def test_encode_npy_stacks_mu_logvar_and_z(client):
    files = [("file", ("a.png", digit_png_bytes(0))), ("file", ("b.png", digit_png_bytes(1)))]
    plain = client.post("/encode", params={"format": "npy"}, files=files)
    assert plain.headers["x-latent-fields"] == "mu,logvar"
    assert load_npy(plain.content).shape == (2, 2, D)
    sampled = client.post(
        "/encode", params={"sample": "true", "seed": 0}, files=files, headers={"Accept": "application/x-npy"}
    )
    assert sampled.headers["x-latent-fields"] == "mu,logvar,z"
    stacked = load_npy(sampled.content)
    assert stacked.shape == (2, 3, D) and stacked.dtype == np.float32
    as_json = client.post("/encode", files=files).json()["results"]
    assert np.array_equal(stacked[:, 0], np.asarray([r["mu"] for r in as_json], dtype=np.float32))


def test_reconstruct_formats_and_mse_between_input_and_output(client):
    files = [("file", (f"{i}.png", digit_png_bytes(i))) for i in range(3)]
    png = client.post("/reconstruct", files=files)
    assert png.headers["content-type"] == "image/png" and load_png(png.content).shape == (58, 58)
    npy = load_npy(client.post("/reconstruct", params={"format": "npy"}, files=files).content)
    assert npy.shape == (3, 1, 28, 28)
    body = client.post("/reconstruct", params={"format": "json"}, files=files).json()
    assert body["model"] == "mnist" and len(body["results"]) == 3
    for index, result in enumerate(body["results"]):
        expected = np.mean((digit_array(index) / 255.0 - npy[index, 0].astype(np.float64)) ** 2)
        assert result["mse"] == pytest.approx(expected, rel=1e-6)
        assert len(result["latent"]) == D
    # By default the decoded latent is mu.
    mus = client.post("/encode", files=files).json()["results"]
    assert [r["latent"] for r in body["results"]] == [r["mu"] for r in mus]


def test_reconstruct_sample_decodes_a_seeded_sample_not_mu(client):
    files = {"file": ("d.png", digit_png_bytes(7))}
    mean = client.post("/reconstruct", params={"format": "npy"}, files=files).content
    sampled = client.post("/reconstruct", params={"format": "npy", "sample": "true", "seed": 3}, files=files).content
    again = client.post("/reconstruct", params={"format": "npy", "sample": "true", "seed": 3}, files=files).content
    assert sampled == again and sampled != mean


def test_model_parameter_selects_fashion_mnist(client):
    response = client.post("/sample", params={"n": 2, "model": "fashion-mnist", "format": "npy"})
    assert response.headers["x-model"] == "fashion-mnist"
    mnist = client.post("/sample", params={"n": 2, "format": "npy"})
    assert response.content != mnist.content
    shirt = np.zeros((60, 40, 3), np.uint8) + 255
    shirt[10:50, 5:35] = (40, 60, 200)
    encoded = client.post(
        "/encode",
        params={"model": "fashion-mnist"},
        files={"file": ("shirt.webp", image_bytes(shirt, "WEBP", lossless=True))},
    )
    assert encoded.status_code == 200 and encoded.json()["model"] == "fashion-mnist"


def test_metrics_expose_requests_latency_batches_queue_and_inference(client):
    client.post("/sample", params={"n": 3})
    text = client.get("/metrics").text
    assert 'vae_http_requests_total{endpoint="/sample",method="POST",status="200"}' in text
    for name in (
        "vae_http_request_duration_seconds_bucket",
        'vae_batch_size_rows_bucket{graph="decoder",le="4.0",model="mnist"}',
        'vae_queue_depth_rows{graph="decoder",model="mnist"}',
        "vae_queue_wait_seconds_bucket",
        "vae_inference_seconds_bucket",
    ):
        assert name in text


def _api_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    return [(path, method.upper()) for path, operations in paths.items() for method in operations]


@pytest.mark.parametrize(
    "path, params, allowed",
    [
        ("/sample", {"temprature": "0.5"}, "format, label, model, n, prior, seed, temperature"),
        ("/sample", {"lable": "3"}, "format, label, model, n, prior, seed, temperature"),
        ("/score", {"K": "8"}, "k, model, normalize, seed"),
        ("/decode", {"fmt": "npy"}, "format, model"),
        ("/encode", {"normalise": "false"}, "format, model, normalize, sample, seed"),
        ("/reconstruct", {"seeds": "1"}, "format, model, normalize, sample, seed"),
    ],
)
def test_a_misspelt_query_parameter_is_422_naming_the_allowed_ones(client, path, params, allowed):
    response = client.post(path, params=params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert repr(next(iter(params))) in error["message"] and f"allowed: {allowed}" in error["message"]
    assert error["details"]["unknown"] == list(params)


def test_every_route_refuses_unknown_query_parameters(client):
    routes = _api_routes(client)
    assert len(routes) >= 10
    for path, method in routes:
        concrete = path.replace("{name}", "mnist-decoder" if path.startswith("/v2") else "mnist").replace(
            "{version}", "1.0.0"
        )
        response = client.request(method, concrete, params={"bogus": "1"})
        if path.startswith("/v2"):  # the Open Inference Protocol's own error shape and status
            assert response.status_code == 400, (method, path, response.text)
            assert "'bogus'" in response.json()["error"]
        else:
            assert response.status_code == 422, (method, path, response.text)
            assert "'bogus'" in response.json()["error"]["message"]


def test_known_parameters_still_work_together(client):
    response = client.post("/sample", params={"n": 2, "seed": 1, "temperature": 0.5, "model": "mnist", "format": "npy"})
    assert response.status_code == 200 and load_npy(response.content).shape == (2, 1, 28, 28)


def test_the_openapi_schema_is_generated_from_the_typed_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    sample = {p["name"]: p for p in paths["/sample"]["post"]["parameters"]}
    assert set(sample) == {"model", "n", "seed", "temperature", "prior", "label", "format", "accept"}
    assert sample["n"]["schema"]["maximum"] == 1024 and sample["temperature"]["schema"]["exclusiveMinimum"] == 0
    decode = {p["name"] for p in paths["/decode"]["post"]["parameters"]}
    assert decode == {"model", "format", "accept"}
    assert set(paths["/decode"]["post"]["requestBody"]["content"]) == {"application/json", "application/x-npy"}
    score = {p["name"]: p for p in paths["/score"]["post"]["parameters"]}
    assert set(score) == {"model", "k", "seed", "normalize"} and score["k"]["schema"]["maximum"] == 1024
    for path in ("/sample", "/decode", "/encode", "/reconstruct", "/score"):
        responses = paths[path]["post"]["responses"]
        assert {"404", "422", "429", "503", "504"} <= set(responses), (path, sorted(responses))
        assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")


def test_the_shipped_colour_model_samples_an_rgb_grid(client):
    """`curl -X POST 'localhost:8000/sample?n=16&model=emoji' -o emoji.png` (README)."""
    answer = client.post("/sample", params={"n": 16, "model": "emoji", "seed": 0})
    grid = Image.open(io.BytesIO(answer.content))
    assert answer.headers["x-model"] == "emoji" and grid.mode == "RGB" and grid.size == (4 * 64 + 3 * 2,) * 2
    pixels = np.asarray(grid)
    assert pixels[:64, :64].std() > 0 and not np.array_equal(pixels[:64, :64, 0], pixels[:64, :64, 1])  # colour
    images = load_npy(client.post("/sample", params={"n": 2, "model": "emoji", "format": "npy"}).content)
    assert images.shape == (2, 3, 64, 64)
