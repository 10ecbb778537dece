"""service/outputs.py: the hand-written PNG and zlib writers give what standard decoders read back
exactly; JSON bodies read back as the standard library writes them; colour grids are RGB."""

from __future__ import annotations

import io
import json
import math
import os
import zlib

import numpy as np
import pytest
from PIL import Image

from service.inputs import FLOAT32_MAX
from service.outputs import _png_chunk, _png_head, grid, json_bytes, npy_bytes, png_bytes, png_grid_bytes, zlib_stored


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


@pytest.mark.parametrize("shape", [(28, 28), (1, 1), (1, 300), (20, 20, 3), (36, 36, 3), (37, 37, 3)])
def test_a_stored_png_is_byte_for_byte_its_chunks_written_in_full(shape):
    """png_bytes writes a small image's shape-dependent bytes from a cache: the same bytes as the
    stored zlib stream in an IDAT chunk written from scratch."""
    pixels = np.random.default_rng(1).integers(0, 256, shape).astype(np.uint8)
    height, width = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    rows = np.zeros((height, width * channels + 1), dtype=np.uint8)
    rows[:, 1:] = pixels.reshape(height, -1)
    whole = (
        _png_head(height, width, channels) + _png_chunk(b"IDAT", zlib_stored(rows.tobytes())) + _png_chunk(b"IEND", b"")
    )
    assert png_bytes(pixels) == whole


NAN, INF = float("nan"), float("inf")


def test_json_bytes_reads_back_as_the_standard_library_wrote_it():
    rng = np.random.default_rng(0)
    payload = {
        "model": "mnist",
        "latent_dim": 32,
        "results": [
            {
                "filename": "zahl-ß-🙂.png",
                "mu": rng.standard_normal(32).astype(np.float32).tolist(),
                "mse": 1e-7,
                "none": None,
                "big": FLOAT32_MAX,
            }
        ],
    }
    body = json_bytes(payload)
    assert json.loads(body) == payload == json.loads(json.dumps(payload))
    assert b" " not in body.replace(b'"mnist"', b"")  # compact
    assert "zahl-ß-🙂.png".encode() in body  # UTF-8, not \u escapes


def test_json_bytes_writes_non_finite_floats_as_null_instead_of_failing():
    # Not valid JSON as NaN/Infinity; the standard library's allow_nan=False raised (a 500).
    assert json.loads(json_bytes({"mse": math.nan, "z": [math.inf, -math.inf, 1.5]})) == {
        "mse": None,
        "z": [None, None, 1.5],
    }


def test_an_rgb_grid_is_an_rgb_png_with_the_cells_in_place():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 6, 4, 3), dtype=np.uint8)  # 5 RGB images, 6 high, 4 wide
    image = Image.open(io.BytesIO(png_grid_bytes(pixels)))
    assert image.mode == "RGB" and image.size == (3 * 4 + 2 * 2, 2 * 6 + 1 * 2)
    canvas = np.asarray(image)
    assert np.array_equal(canvas, grid(pixels))
    assert np.array_equal(canvas[:6, 6:10], pixels[1]) and np.array_equal(canvas[8:14, :4], pixels[3])


@pytest.mark.parametrize("shape", [(1, 1, 28, 28), (5, 3, 64, 64), (3, 32), (0, 4), (7,)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_npy_bytes_are_exactly_what_np_save_writes_of_the_float32_array(shape, dtype):
    array = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float32), allow_pickle=False)
    assert npy_bytes(array) == buffer.getvalue()
    assert npy_bytes(np.asfortranarray(array)) == buffer.getvalue()
