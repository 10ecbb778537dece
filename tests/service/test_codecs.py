"""The hand-written fast paths give what the general ones give: PNGs and zlib streams that
standard decoders read back exactly, and JSON latents equal to latents_array's (or refused)."""

from __future__ import annotations

import io
import json
import math
import os
import zlib

import numpy as np
import pytest
from PIL import Image

from service.bodies import FLOAT32_MAX, latents_array, well_formed_latents
from service.encoding import json_bytes, png_bytes, zlib_stored
from service.errors import ApiError


@pytest.mark.parametrize("size", [0, 1, 812, 4095, 65535, 65536, 200_000])
def test_stored_zlib_streams_decompress_to_the_data(size):
    data = os.urandom(size)
    stream = zlib_stored(data)
    assert zlib.decompress(stream) == data
    if size <= 4096:  # one stored block: byte for byte what zlib itself writes at level 0
        assert stream == zlib.compress(data, 0)


@pytest.mark.parametrize("shape", [(28, 28), (1, 1), (1, 300), (90, 120)])
def test_png_bytes_round_trip_through_pillow(shape):
    pixels = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    image = Image.open(io.BytesIO(png_bytes(pixels)))
    assert image.mode == "L" and image.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(image), pixels)


NAN, INF = float("nan"), float("inf")
CASES = [
    [0.5, -1.25, 3.0, 0.0],
    [[0.5, -1.25, 3.0, 0.0]] * 3,
    [1, 2, 3, 4],
    [1, 2.5, 3, 4],
    [FLOAT32_MAX, -FLOAT32_MAX, 0.0, 1.0],
    [FLOAT32_MAX * 1.0000001, 0.0, 0.0, 0.0],
    [10**40, 0, 0, 0],
    [NAN, 1.0, 2.0, 3.0],
    [1.0, 2.0, 3.0, NAN],
    [1.0, INF, 2.0, 3.0],
    [-INF, INF, 0.0, 0.0],
    [True, 1.0, 2.0, 3.0],
    [[1.0, 2.0, 3.0, "4"]],
    [[1.0, 2.0, 3.0, None]],
    [[1.0, 2.0, 3.0, [4.0]]],
    [[1.0, 2.0], [3.0, 4.0]],
    [[0.5] * 4, [0.5] * 3],
    [[0.5] * 4] * 9,
    [],
    [[]],
    "latents",
    {"a": 1},
]


@pytest.mark.parametrize("raw", CASES, ids=range(len(CASES)))
def test_the_json_fast_path_agrees_with_latents_array(raw):
    fast = well_formed_latents(raw, latent_dim=4, max_rows=8)
    try:
        general = latents_array(raw, latent_dim=4, max_rows=8)
    except (ApiError, ValueError, TypeError):
        general = None
    if fast is None:
        return  # read_latents then calls latents_array, which accepts or explains
    assert general is not None, "the fast path accepted what latents_array refuses"
    assert fast.dtype == np.float32 and general.dtype == np.float32
    assert np.array_equal(fast, general)


def test_the_fast_path_takes_the_common_shapes():
    assert well_formed_latents([0.1] * 32, 32, 1024).shape == (1, 32)
    assert well_formed_latents([[0.1] * 32] * 16, 32, 1024).shape == (16, 32)


def test_json_bytes_reads_back_as_the_standard_library_wrote_it():
    rng = np.random.default_rng(0)
    payload = {
        "model": "mnist", "latent_dim": 32,
        "results": [{"filename": "zahl-ß-🙂.png", "mu": rng.standard_normal(32).astype(np.float32).tolist(),
                     "mse": 1e-7, "none": None, "big": FLOAT32_MAX}],
    }
    body = json_bytes(payload)
    assert json.loads(body) == payload == json.loads(json.dumps(payload))
    assert b" " not in body.replace(b'"mnist"', b"")  # compact
    assert "zahl-ß-🙂.png".encode() in body  # UTF-8, not \u escapes


def test_json_bytes_writes_non_finite_floats_as_null_instead_of_failing():
    # Not valid JSON as NaN/Infinity; the standard library's allow_nan=False raised (a 500).
    assert json.loads(json_bytes({"mse": math.nan, "z": [math.inf, -math.inf, 1.5]})) == {"mse": None, "z": [None, None, 1.5]}
