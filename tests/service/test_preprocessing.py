"""Upload preprocessing (docs/preprocessing.md), in-process: the rules that make an arbitrary image
look like the training data."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from devtools.images import digit_array, digit_png_bytes, image_bytes
from service.errors import PayloadTooLarge
from service.preprocessing import InputSpec, border_level, decode_image, prepare_images, to_model_input

MAX_PIXELS = 10_000_000


def model_input(data: bytes, rule: str = "mnist-digit", normalize: bool = True) -> np.ndarray:
    return prepare_images([data], InputSpec(rule, (1, 28, 28)), MAX_PIXELS, normalize)[0, 0]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_a_digit_in_the_training_format_passes_through_bit_for_bit():
    digit = digit_array(3)
    assert np.array_equal(model_input(digit_png_bytes(3)), digit / np.float32(255))


def test_ink_on_white_paper_at_any_size_becomes_an_mnist_like_digit():
    scores = []
    for index in range(20):
        data = digit_png_bytes(index, "JPEG", size=300, white_background=True)
        scores.append(correlation(model_input(data), digit_array(index) / 255.0))
    assert np.mean(scores) > 0.85, scores


def test_mnist_rule_fits_the_figure_in_20x20_centred_by_centre_of_mass():
    canvas = np.zeros((200, 100), np.uint8)
    canvas[20:180, 40:60] = 255  # a tall bar, off to one side
    result = model_input(image_bytes(canvas))
    rows, cols = np.nonzero(result > 0.5)
    assert rows.max() - rows.min() + 1 == 20  # the long side fits 20 pixels
    assert cols.max() - cols.min() + 1 <= 4  # aspect ratio kept
    mass = result.sum()
    centre = ((result.sum(axis=1) * np.arange(28)).sum() / mass, (result.sum(axis=0) * np.arange(28)).sum() / mass)
    assert abs(centre[0] - 14) <= 1 and abs(centre[1] - 14) <= 1


def test_fashion_rule_resizes_the_longest_edge_to_28_and_centres_the_box():
    photo = np.full((300, 150, 3), 255, np.uint8)  # white background product shot
    photo[50:250, 25:125] = (20, 40, 90)  # a dark, 2:1 tall garment
    result = model_input(image_bytes(photo, "PNG"), rule="fashion-product")
    rows, cols = np.nonzero(result > 0.5)
    assert (rows.min(), rows.max()) == (0, 27)
    assert cols.max() - cols.min() + 1 == 14 and cols.min() == 7


def test_normalize_false_only_converts_to_grayscale_and_resizes():
    photo = np.full((56, 56), 255, np.uint8)
    photo[:28] = 0
    result = model_input(image_bytes(photo), normalize=False)
    assert result.shape == (28, 28)
    assert result[:12].max() < 0.05 and result[16:].min() > 0.95  # not inverted, not recentred


def test_transparent_background_is_flattened_onto_a_contrasting_colour():
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[6:22, 12:16] = (0, 0, 0, 255)  # black ink on a transparent background
    result = model_input(image_bytes(rgba, "PNG"))
    assert result[0, 0] == 0.0 and result.max() == pytest.approx(1.0)


def test_sixteen_bit_images_are_scaled_to_unit_range():
    deep = np.zeros((28, 28), np.uint16)
    deep[10:18, 10:18] = 65535
    buffer = io.BytesIO()
    Image.fromarray(deep).save(buffer, "PNG")
    values = decode_image(buffer.getvalue(), MAX_PIXELS)
    assert values.max() == pytest.approx(1.0) and values.min() == 0.0


def test_gif_uses_the_first_frame():
    frames = [Image.fromarray(digit_array(i)) for i in (1, 2)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    assert np.array_equal(model_input(buffer.getvalue()), digit_array(1) / np.float32(255))


def test_a_blank_image_becomes_zeros_not_an_error():
    assert not model_input(image_bytes(np.full((50, 50), 255, np.uint8))).any()


def test_the_pixel_limit_is_checked_before_decoding():
    buffer = io.BytesIO()
    Image.new("1", (5000, 5000)).save(buffer, "PNG")
    with pytest.raises(PayloadTooLarge):
        decode_image(buffer.getvalue(), 1_000_000)


def test_rules_return_float32_in_unit_range():
    noise = np.random.default_rng(0).random((40, 60)).astype(np.float32)
    for rule in ("mnist-digit", "fashion-product"):
        result = to_model_input(noise, rule, 28, 28)
        assert result.dtype == np.float32 and result.shape == (28, 28)
        assert 0.0 <= result.min() and result.max() <= 1.0


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (2, 3), (28, 28), (29, 41), (60, 7)])
def test_border_level_is_the_median_of_the_frame(shape):
    rng = np.random.default_rng(sum(shape))
    for values in (rng.random(shape, dtype=np.float32), np.round(rng.random(shape, dtype=np.float32) * 4) / 4):
        band = max(1, min(shape) // 20)
        frame = np.concatenate(
            [values[:band].ravel(), values[-band:].ravel(), values[:, :band].ravel(), values[:, -band:].ravel()]
        )
        assert border_level(values) == float(np.median(frame))


def rgba_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), "RGBA" if pixels.shape[2] == 4 else "RGB").save(buffer, "PNG")
    return buffer.getvalue()


def test_fit_pads_a_wide_colour_image_keeping_its_aspect_ratio():
    red = np.zeros((10, 40, 3), np.uint8)
    red[..., 0] = 255
    spec = InputSpec("fit", (3, 16, 16), background=(0, 0, 255), resize="pad")
    out = prepare_images([rgba_bytes(red)], spec, MAX_PIXELS)[0]
    assert out.shape == (3, 16, 16) and out.dtype == np.float32
    # 40x10 -> 16x4, centred: rows 6..9 red, the rest the card's background (blue).
    assert np.allclose(out[:, 7, 8], [1, 0, 0], atol=0.02)
    assert np.allclose(out[:, 0, 8], [0, 0, 1]) and np.allclose(out[:, 15, 8], [0, 0, 1])


def test_fit_crop_fills_the_frame_from_the_centre():
    image = np.zeros((20, 60, 3), np.uint8)
    image[:, 25:35] = 255  # a white band in the middle sixth
    spec = InputSpec("fit", (3, 8, 8), resize="crop")
    out = prepare_images([rgba_bytes(image)], spec, MAX_PIXELS)[0]
    # 60x20 -> 24x8, the middle 8 columns kept: the band fills their centre, nothing is padded.
    assert out.shape == (3, 8, 8)
    assert out[:, :, 3:5].mean() > 0.8 and out[:, :, 0].max() < 0.2


def test_fit_composites_transparency_on_the_card_background_and_never_inverts():
    pixels = np.zeros((12, 12, 4), np.uint8)
    pixels[4:8, 4:8] = (255, 255, 0, 255)  # an opaque yellow square on transparent black
    spec = InputSpec("fit", (3, 12, 12), background=(0, 255, 0))
    out = prepare_images([rgba_bytes(pixels)], spec, MAX_PIXELS)[0]
    assert np.allclose(out[:, 0, 0], [0, 1, 0]) and np.allclose(out[:, 5, 5], [1, 1, 0])
    gray = prepare_images([rgba_bytes(pixels)], InputSpec("fit", (1, 12, 12), background=(255, 255, 255)), MAX_PIXELS)
    assert gray.shape == (1, 1, 12, 12) and gray[0, 0, 0, 0] == pytest.approx(1.0)  # white paper stays white


def test_fit_without_normalize_only_converts_and_resizes():
    image = np.random.default_rng(1).integers(0, 256, (30, 10, 3), dtype=np.uint8)
    out = prepare_images([rgba_bytes(image)], InputSpec("fit", (3, 8, 16)), MAX_PIXELS, normalize=False)[0]
    assert out.shape == (3, 8, 16)  # stretched, not padded
    grayscale_upload = prepare_images([digit_png_bytes(0)], InputSpec("fit", (3, 28, 28)), MAX_PIXELS)[0]
    assert np.allclose(grayscale_upload[0], grayscale_upload[2])  # gray becomes equal RGB channels
