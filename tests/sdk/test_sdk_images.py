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


def test_arrays_follow_the_model_layout_or_the_image_layout():
    assert [image.shape for image in split_images(np.zeros((28, 28)))] == [(28, 28)]
    assert [image.shape for image in split_images(np.zeros((5, 28, 28)))] == [(28, 28)] * 5
    assert [image.shape for image in split_images(np.zeros((5, 1, 28, 28)))] == [(28, 28)] * 5
    assert [image.shape for image in split_images(np.zeros((2, 3, 12, 16)))] == [(12, 16, 3)] * 2  # [N, C, H, W]
    assert [image.shape for image in split_images(np.zeros((12, 16, 3)))] == [(12, 16, 3)]  # one, channels last
    assert [image.shape for image in split_images(np.zeros((2, 12, 16, 4)))] == [(12, 16, 4)] * 2  # RGBA
    with pytest.raises(ValueError, match=r"\[N, C, H, W\] \(C = 1 or 3\)"):
        split_images(np.zeros((2, 2, 28, 28)))


def test_colour_arrays_upload_as_rgb_pngs_with_channels_in_place():
    images = np.random.default_rng(0).random((2, 3, 12, 16)).astype(np.float32)
    uploads = to_uploads(images)
    decoded = [Image.open(io.BytesIO(upload.content)) for upload in uploads]
    assert [(image.mode, image.size) for image in decoded] == [("RGB", (16, 12))] * 2
    np.testing.assert_array_equal(np.asarray(decoded[1]), np.rint(images[1].transpose(1, 2, 0) * 255))


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


@pytest.mark.parametrize("shape, mode", [((28, 31), "L"), ((12, 16, 3), "RGB"), ((9, 8, 4), "RGBA")])
def test_the_pillow_free_png_writer_round_trips(shape, mode):
    pixels = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    assert Image.open(io.BytesIO(_encode_png_zlib(pixels))).mode == mode
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


def test_colour_grids_keep_their_channels_with_black_padding():
    images = np.zeros((5, 3, 12, 16), np.float32)
    images[:, 0] = 1.0  # every cell pure red
    canvas = grid(images)
    assert canvas.shape == (2 * 12 + 2, 3 * 16 + 2 * 2, 3)
    assert canvas[:12, :16].tolist() == [[[255, 0, 0]] * 16] * 12 and canvas[12:14].max() == 0
    assert grid(images[:1]).shape == (12, 16, 3)


def test_colour_results_save_an_rgb_grid_and_give_rgb_pil_images(tmp_path):
    result = SampleResult(images=np.full((4, 3, 12, 16), 0.5, np.float32))
    saved = Image.open(result.save_grid(tmp_path / "grid.png"))
    assert saved.mode == "RGB" and saved.size == (2 * 16 + 2, 2 * 12 + 2)
    pil_images = result.to_pil()
    assert [(image.mode, image.size) for image in pil_images] == [("RGB", (16, 12))] * 4
    assert result.image_shape == (3, 12, 16)


def test_results_save_a_png_grid_and_give_pil_images(tmp_path):
    result = SampleResult(images=np.full((4, 1, 28, 28), 0.5, np.float32))
    saved = decode_png(result.save_grid(tmp_path / "grid.png").read_bytes())
    assert saved.shape == (58, 58)
    pil_images = result.to_pil()
    assert len(pil_images) == 4 and pil_images[0].size == (28, 28) and pil_images[0].mode == "L"
    np.testing.assert_array_equal(np.load(result.save_npy(tmp_path / "x.npy")), result.images)
