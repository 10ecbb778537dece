"""Bring your own ONNX: tiny graphs of other shapes (RGB, non-square, spatial latents, other tensor
names, logits) are packaged with `python -m service package`, served by the real service, and
every endpoint and format follows their cards; faulty graphs are refused with their reasons."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from devtools.images import digit_png_bytes
from devtools.live import REPO_ROOT, start_server
from devtools.tiny_models import TinyVAE
from service.inference import sigmoid

RGB = TinyVAE(image_shape=(3, 12, 16), latent_shape=(2, 3, 4))
OTHER = TinyVAE(
    image_shape=(3, 10, 8),
    latent_shape=(6,),
    split_output="stats",
    logits=True,
    image_name="x",
    z_name="latent",
    output_name="recon",
    seed=3,
)
GRAY = TinyVAE(image_shape=(1, 20, 10), latent_shape=(8,), seed=5)


def package(source: TinyVAE, folder: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    encoder, decoder = source.write(folder / "graphs" / name)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "service",
            "package",
            "--encoder",
            str(encoder),
            "--decoder",
            str(decoder),
            "--name",
            name,
            "--out",
            str(folder / "models" / name),
            *extra,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    folder = tmp_path_factory.mktemp("own")
    for source, name, extra in (
        (RGB, "rgb", ("--labels", "cat,dog")),
        (OTHER, "other", ("--split-encoder-output", "--decoder-output", "logits", "--resize", "crop")),
        (GRAY, "gray", ()),
    ):
        result = package(source, folder, name, *extra)
        assert result.returncode == 0, result.stderr
    server = start_server({"VAE_DEFAULT_MODEL": "rgb"}, folder / "models")
    with server.client() as http:
        yield http, folder
    server.stop()


def npy(content: bytes) -> np.ndarray:
    return np.load(io.BytesIO(content), allow_pickle=False)


def npy_body(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float32))
    return buffer.getvalue()


def png(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    image.load()
    return image


def colour_png(height: int, width: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG")
    return buffer.getvalue()


def test_models_reports_each_cards_shapes_and_limits(own):
    http, _ = own
    models = {m["name"]: m for m in http.get("/models").json()["models"]}
    assert models["rgb"]["image_shape"] == [3, 12, 16] and models["rgb"]["latent_shape"] == [2, 3, 4]
    assert models["rgb"]["labels"] == ["cat", "dog"]
    assert models["other"]["latent_shape"] == [6] and models["other"]["card"]["decoder_output"] == "logits"
    assert models["gray"]["image_shape"] == [1, 20, 10]
    assert models["rgb"]["limits"]["batch_rows"]["decoder"] >= 1


def test_sample_follows_the_card_in_every_format(own):
    http, _ = own
    images = npy(http.post("/sample", params={"n": 5, "seed": 1, "format": "npy"}).content)
    assert images.shape == (5, 3, 12, 16) and images.dtype == np.float32
    grid = png(http.post("/sample", params={"n": 5, "seed": 1}).content)
    assert grid.mode == "RGB" and grid.size == (3 * 16 + 2 * 2, 2 * 12 + 2)
    body = http.post("/sample", params={"n": 2, "seed": 1, "format": "json"}).json()
    assert np.asarray(body["latents"]).shape == (2, 2, 3, 4) and body["latent_shape"] == [2, 3, 4]
    single = png(http.post("/sample", params={"n": 1, "model": "gray"}).content)
    assert single.mode == "L" and single.size == (10, 20)


def test_decode_equals_onnxruntime_for_spatial_latents_and_takes_flat_vectors(own):
    http, folder = own
    z = np.random.default_rng(2).standard_normal((3, 2, 3, 4)).astype(np.float32)
    session = ort.InferenceSession(str(folder / "models" / "rgb" / "decoder.onnx"))
    expected = session.run(None, {"z": z})[0]
    answer = http.post(
        "/decode", params={"format": "npy"}, content=npy_body(z), headers={"Content-Type": "application/x-npy"}
    )
    assert np.array_equal(npy(answer.content), expected)
    nested = http.post("/decode", params={"format": "npy"}, json={"latents": z.tolist()})
    flat = http.post("/decode", params={"format": "npy"}, json={"latents": z.reshape(3, -1).tolist()})
    assert np.array_equal(npy(nested.content), expected) and np.array_equal(npy(flat.content), expected)
    wrong = http.post("/decode", json={"latents": [[0.0] * 5]})
    assert wrong.status_code == 422 and "[N, 2, 3, 4]" in wrong.json()["error"]["message"]


def test_a_logits_decoder_gets_its_sigmoid_and_a_joint_encoder_output_is_split(own):
    http, folder = own
    z = np.random.default_rng(4).standard_normal((2, 6)).astype(np.float32)
    logits = ort.InferenceSession(str(folder / "models" / "other" / "decoder.onnx")).run(None, {"latent": z})[0]
    answer = npy(http.post("/decode", params={"model": "other", "format": "npy"}, json={"latents": z.tolist()}).content)
    assert np.array_equal(answer, sigmoid(logits)) and answer.min() >= 0 and answer.max() <= 1
    encoded = http.post("/encode", params={"model": "other"}, files={"file": ("c.png", colour_png(30, 20))}).json()
    result = encoded["results"][0]
    assert len(result["mu"]) == 6 and len(result["logvar"]) == 6 and result["mu"] != result["logvar"]


def test_encode_and_reconstruct_take_colour_and_grayscale_uploads(own):
    http, _ = own
    files = [("file", ("a.png", colour_png(40, 30))), ("file", ("b.png", digit_png_bytes(0)))]
    stacked = npy(http.post("/encode", params={"format": "npy"}, files=files).content)
    assert stacked.shape == (2, 2, 2, 3, 4)  # [N, (mu, logvar), *latent_shape]
    body = http.post("/encode", files=files).json()
    assert np.asarray(body["results"][0]["mu"]).shape == (2, 3, 4)
    grid = png(http.post("/reconstruct", files=files).content)
    assert grid.mode == "RGB" and grid.size == (2 * 16 + 2, 12)
    detail = http.post("/reconstruct", params={"format": "json"}, files=files).json()["results"][0]
    assert png(__import__("base64").b64decode(detail["input"])).size == (16, 12) and detail["mse"] >= 0
    gray = npy(http.post("/reconstruct", params={"model": "gray", "format": "npy"}, files=files).content)
    assert gray.shape == (2, 1, 20, 10)


@pytest.mark.parametrize(
    "source, extra, words",
    [
        (TinyVAE(random_op=True), (), ["decoder (decoder.onnx): no random ops", "RandomNormalLike"]),
        (TinyVAE(fixed_batch=True), (), ["encoder (encoder.onnx): dynamic batch axis", "[1, 3, 12, 16]"]),
        (TinyVAE(logits=True), (), ["decoder (decoder.onnx): outputs within [0, 1]", "--decoder-output logits"]),
        (TinyVAE(split_output="stats"), (), ["encoder (encoder.onnx): outputs", "--split-encoder-output"]),
        (TinyVAE(image_shape=(2, 12, 16)), (), ["model.json: the service refuses it", "channels must be 1"]),
    ],
)
def test_package_refuses_faulty_graphs_naming_the_check(tmp_path, source, extra, words):
    result = package(source, tmp_path, "faulty", *extra)
    assert result.returncode == 2, result.stdout
    for word in words:
        assert word in result.stderr, result.stderr
    assert all(line.startswith("package: ") for line in result.stderr.strip().splitlines())


def test_a_packaged_card_records_shapes_hashes_and_opsets(tmp_path):
    assert package(RGB, tmp_path, "rgb").returncode == 0
    card = json.loads((tmp_path / "models" / "rgb" / "model.json").read_text())
    assert card["image_shape"] == [3, 12, 16] and card["latent_shape"] == [2, 3, 4] and card["latent_dim"] == 24
    assert card["export"]["opset"]["encoder"] == {"ai.onnx": 18}
    assert len(card["files"]["decoder"]["sha256"]) == 64 and card["preprocessing"] == "fit"
