"""What the SDK uploads for each kind of image input, and the PNG grids it writes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vae_client import SampleResult
from vae_client._images import _encode_png_zlib, encode_png, grid, sniff_content_type, split_images, to_uploads


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_arrays_follow_the_model_layout():
    assert len(split_images(np.zeros((28, 28)))) == 1
    assert len(split_images(np.zeros((5, 28, 28)))) == 5
    assert len(split_images(np.zeros((5, 1, 28, 28)))) == 5
    with pytest.raises(ValueError, match="grayscale"):
        split_images(np.zeros((2, 3, 28, 28)))


def test_single_inputs_and_lists_mix(tmp_path):
    path = tmp_path / "digit.png"
    path.write_bytes(encode_png(np.zeros((28, 28), np.uint8)))
    uploads = to_uploads([path, str(path), path.read_bytes(), Image.new("L", (28, 28)), np.zeros((2, 28, 28))])
    assert [upload.source_name for upload in uploads] == ["digit.png", "digit.png", None, None, None, None]
    assert all(upload.content_type == "image/png" for upload in uploads)
    assert len({upload.filename for upload in uploads[2:]}) == 4  # every in-memory part named apart


def test_float_arrays_are_scaled_from_unit_range():
    pixels = np.linspace(0.0, 1.0, 28 * 28, dtype=np.float32).reshape(28, 28)
    (upload,) = to_uploads(pixels)
    np.testing.assert_array_equal(decode_png(upload.content), np.rint(pixels * 255).astype(np.uint8))


def test_the_pillow_free_png_writer_round_trips():
    pixels = np.random.default_rng(0).integers(0, 256, size=(28, 31), dtype=np.uint8)
    np.testing.assert_array_equal(decode_png(_encode_png_zlib(pixels)), pixels)


def test_nothing_to_upload_is_an_error():
    with pytest.raises(ValueError, match="no images"):
        to_uploads([])
    with pytest.raises(TypeError, match="cannot upload int"):
        to_uploads([3])


def test_content_types_come_from_magic_bytes():
    assert sniff_content_type(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert sniff_content_type(b"GIF89a...") == "image/gif"
    assert sniff_content_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_content_type(b"hello") == "application/octet-stream"


def test_grid_matches_the_services_layout():
    images = np.ones((5, 1, 28, 28), np.float32)
    canvas = grid(images)
    assert canvas.shape == (2 * 28 + 2, 3 * 28 + 2 * 2)  # ceil(sqrt(5)) = 3 columns, 2 rows
    assert canvas[28:30].max() == 0 and canvas[:28, :28].min() == 255
    assert grid(images[:1]).shape == (28, 28)


def test_results_save_a_png_grid_and_give_pil_images(tmp_path):
    result = SampleResult(images=np.full((4, 1, 28, 28), 0.5, np.float32))
    saved = decode_png(result.save_grid(tmp_path / "grid.png").read_bytes())
    assert saved.shape == (58, 58)
    pil_images = result.to_pil()
    assert len(pil_images) == 4 and pil_images[0].size == (28, 28) and pil_images[0].mode == "L"
    np.testing.assert_array_equal(np.load(result.save_npy(tmp_path / "x.npy")), result.images)
