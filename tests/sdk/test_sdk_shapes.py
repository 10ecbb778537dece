"""Shapes follow the model that answered, never 28x28, one channel or a flat latent: the latent
shape from its headers, decode() of any latent shape, encode() of spatial latents, ModelInfo's
shapes (with fallbacks for older servers), and only the query parameters each route declares.

A scripted server (httpx.MockTransport) answers like the service does for a colour model with a
spatial latent; the same against the real service is in test_sdk_live_colour.py.
"""

from __future__ import annotations

import asyncio
import io
import math

import httpx
import numpy as np
import pytest

import vae_client
from vae_client import AsyncClient, Client, ModelInfo, ModelLimits
from vae_client import _endpoints as endpoints

IMAGE_SHAPE = (3, 12, 16)
LATENT_SHAPE = (2, 3, 4)
LATENT_DIM = math.prod(LATENT_SHAPE)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def model_headers(latent_shape: tuple[int, ...] | None = LATENT_SHAPE) -> dict[str, str]:
    headers = {"Content-Type": "application/x-npy", "X-Model": "rgb", "X-Latent-Dim": str(LATENT_DIM)}
    if latent_shape is not None:
        headers["X-Latent-Shape"] = ",".join(map(str, latent_shape))
    return headers


class SpatialModel:
    """Answers /decode and /sample as the service does for a [3, 12, 16] model with a [2, 3, 4]
    latent (one image per latent sent), and records every request."""

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.sent: list[np.ndarray] = []
        self.headers = model_headers() if headers is None else headers

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/decode":
            latents = np.load(io.BytesIO(request.content))
            self.sent.append(latents)
            rows = 1 if latents.shape == LATENT_SHAPE else latents.size // LATENT_DIM
        else:
            rows = int(request.url.params["n"])
        return httpx.Response(200, content=npy(np.zeros((rows, *IMAGE_SHAPE), np.float32)), headers=self.headers)


def decode_with(server: SpatialModel, latents) -> vae_client.DecodeResult:
    with Client("http://vae.test", transport=httpx.MockTransport(server)) as client:
        return client.decode(latents)


def test_image_results_carry_the_models_latent_shape_from_x_latent_shape():
    with Client("http://vae.test", transport=httpx.MockTransport(SpatialModel())) as client:
        result = client.sample(3, seed=0)
    assert result.images.shape == (3, *IMAGE_SHAPE) and result.image_shape == IMAGE_SHAPE
    assert (result.model, result.latent_shape, result.latent_dim) == ("rgb", LATENT_SHAPE, LATENT_DIM)


def test_a_server_without_x_latent_shape_gives_a_flat_latent_of_x_latent_dim():
    older = SpatialModel(headers=model_headers(latent_shape=None))
    with Client("http://vae.test", transport=httpx.MockTransport(older)) as client:
        result = client.sample(2)
    assert (result.latent_shape, result.latent_dim) == ((LATENT_DIM,), LATENT_DIM)


@pytest.mark.parametrize(
    "latents, rows",
    [
        (np.zeros(LATENT_SHAPE), 1),  # one spatial latent, no batch axis
        (np.zeros((5, *LATENT_SHAPE)), 5),
        (np.zeros((2, LATENT_DIM)), 2),  # flat vectors, reshaped by the server
        (np.zeros(LATENT_DIM), 1),
        (np.zeros((3, *LATENT_SHAPE)).tolist(), 3),  # nested lists
    ],
    ids=["C,h,w", "N,C,h,w", "N,D", "D", "lists"],
)
def test_decode_sends_any_latent_shape_as_float32_npy_and_reports_it_in_the_models_shape(latents, rows):
    server = SpatialModel()
    result = decode_with(server, latents)
    (sent,) = server.sent
    assert sent.dtype == np.float32 and sent.shape == np.shape(latents)  # as given: the server checks it
    assert result.images.shape == (rows, *IMAGE_SHAPE)
    assert result.latents.shape == (rows, *LATENT_SHAPE) and result.latent_shape == LATENT_SHAPE


def test_decode_without_model_headers_keeps_the_batch_axis_it_was_given():
    server = SpatialModel(headers={"Content-Type": "application/x-npy"})  # e.g. a proxy dropped them
    assert decode_with(server, np.zeros(LATENT_SHAPE)).latents.shape == (1, *LATENT_SHAPE)
    assert decode_with(server, np.zeros((4, *LATENT_SHAPE))).latents.shape == (4, *LATENT_SHAPE)


def test_decode_refuses_what_is_no_array_of_numbers_before_sending():
    server = SpatialModel()
    with pytest.raises(ValueError, match="rectangular array of numbers"):
        decode_with(server, [[0.0] * LATENT_DIM, [0.0] * 3])
    with pytest.raises(ValueError, match="at least one latent"):
        decode_with(server, [])
    assert server.requests == []


def test_encode_splits_mu_logvar_and_z_in_the_latent_shape_and_joins_split_uploads():
    stacked = np.random.default_rng(0).standard_normal((1, 3, *LATENT_SHAPE)).astype(np.float32)
    headers = {**model_headers(), "X-Latent-Fields": "mu,logvar,z"}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=npy(stacked), headers=headers))

    async def encode_async():
        async with AsyncClient("http://vae.test", transport=transport, max_upload_images=1) as client:
            return await client.encode([np.zeros((2, *IMAGE_SHAPE), np.float32)], sample=True, seed=1)

    with Client("http://vae.test", transport=transport, max_upload_images=1) as client:
        blocking = client.encode(np.zeros((2, *IMAGE_SHAPE), np.float32), sample=True, seed=1)
    for result in (blocking, asyncio.run(encode_async())):
        assert result.mu.shape == result.logvar.shape == result.z.shape == (2, *LATENT_SHAPE)
        assert (result.latent_shape, result.latent_dim) == (LATENT_SHAPE, LATENT_DIM)
        np.testing.assert_array_equal(result.z[1], stacked[0, 2])


def test_an_image_answer_that_is_not_n_c_h_w_is_an_unexpected_response():
    answer = httpx.Response(200, content=npy(np.zeros((2, 12, 16), np.float32)), headers=model_headers())
    with Client("http://vae.test", transport=httpx.MockTransport(lambda request: answer)) as client:
        with pytest.raises(vae_client.APIError, match=r"\[N, C, H, W\]") as caught:
            client.sample(2)
    assert caught.value.code == "unexpected_response"


def test_model_info_reads_image_and_latent_shapes_labels_and_limits():
    body = {
        "name": "rgb",
        "card": {"latent_dim": 24, "dataset": "pets", "version": "1"},
        "provider": "CPUExecutionProvider",
        "image_shape": [3, 12, 16],
        "latent_shape": [2, 3, 4],
        "labels": ["cat", "dog"],
        "limits": {
            "batch_rows": {"decoder": 64},
            "queue_rows": {"decoder": 512},
            "max_sample_n": 8,
            "max_upload_images": 4,
        },
        "inputs": {"encoder": {"image": ["N", 3, 12, 16]}, "decoder": {"z": ["N", 2, 3, 4]}},
        "outputs": {},
    }
    info = ModelInfo.from_json(body)
    assert (info.image_shape, info.latent_shape, info.latent_dim, info.channels) == ((3, 12, 16), (2, 3, 4), 24, 3)
    assert info.labels == ["cat", "dog"]
    assert info.limits == ModelLimits(
        max_sample_n=8, max_upload_images=4, batch_rows={"decoder": 64}, queue_rows={"decoder": 512}
    )
    assert info.to_json() == body


def test_model_info_from_an_older_server_falls_back_to_the_card_and_the_graph_inputs():
    card_only = ModelInfo.from_json({"name": "m", "card": {"image_shape": [1, 28, 28], "latent_dim": 32}})
    assert (card_only.image_shape, card_only.latent_shape, card_only.latent_dim) == ((1, 28, 28), (32,), 32)
    assert card_only.labels is None and card_only.limits is None
    graphs = {"encoder": {"x": ["N", 3, 64, 64]}, "decoder": {"latent": ["N", 4, 8, 8]}}
    graphs_only = ModelInfo.from_json({"name": "m", "card": {"labels": ["a"]}, "inputs": graphs})
    assert (graphs_only.image_shape, graphs_only.latent_shape, graphs_only.labels) == ((3, 64, 64), (4, 8, 8), ["a"])
    unknown = ModelInfo.from_json({"name": "m", "card": {}, "inputs": {"encoder": {"image": ["N", "C", "H", "W"]}}})
    assert (unknown.image_shape, unknown.latent_shape, unknown.latent_dim) == (None, None, None)


def test_every_call_sends_only_query_parameters_its_route_declares():
    """The service refuses unknown query parameters (422), so the SDK must send none."""
    from service.app import create_app
    from service.config import Settings

    schema = create_app(Settings()).openapi()
    declared = {
        (method.upper(), path): {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }
    image = np.zeros((8, 8), np.uint8)
    calls = [
        endpoints.sample(4, seed=1, temperature=0.5, model="rgb"),
        endpoints.decode(np.zeros(LATENT_DIM), model="rgb"),
        *endpoints.encode(image, model="rgb", normalize=False, sample=True, seed=1, max_images=1).calls,
        *endpoints.reconstruct(image, model="rgb", normalize=False, sample=True, seed=1, max_images=1).calls,
        endpoints.models(),
        endpoints.model("rgb"),
        endpoints.health(),
        endpoints.ready(),
    ]
    for call in calls:
        route = (call.method, "/models/{name}" if call.path.startswith("/models/") else call.path)
        sent = set(call.request_options()["params"])
        assert sent <= declared[route], f"{route}: sends {sorted(sent - declared[route])}"
