"""Upload preprocessing (docs/preprocessing.md), in-process: the rules that make an arbitrary image
look like the training data."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from devtools.images import digit_array, digit_png_bytes, image_bytes
from service.errors import PayloadTooLarge
from service.preprocessing import border_level, decode_image, prepare_images, to_model_input

MAX_PIXELS = 10_000_000


def model_input(data: bytes, rule: str = "mnist-digit", normalize: bool = True) -> np.ndarray:
    return prepare_images([data], rule, (1, 28, 28), MAX_PIXELS, normalize)[0, 0]


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
