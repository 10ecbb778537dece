"""service/inference.py's array helpers: what the PNG outputs quantise."""

from __future__ import annotations

import numpy as np
import pytest

from service.inference import to_uint8


@pytest.mark.parametrize("channels", [1, 3])
def test_to_uint8_rounds_and_clips_exactly_as_the_plain_formula(channels):
    rng = np.random.default_rng(0)
    images = rng.uniform(-0.1, 1.1, (64, channels, 28, 28)).astype(np.float32)
    images[0, 0, 0, :6] = [0.5 / 255, 1.5 / 255, 254.5 / 255, 0.0, 1.0, np.nextafter(np.float32(1), np.float32(2))]
    reference = np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)
    reference = reference[:, 0] if channels == 1 else reference.transpose(0, 2, 3, 1)
    pixels = to_uint8(images)
    assert pixels.dtype == np.uint8 and np.array_equal(pixels, reference)
    first_row = pixels[0, 0, :6] if channels == 1 else pixels[0, 0, :6, 0]
    assert first_row.tolist() == [0, 2, 254, 0, 255, 255]  # halves round to even, beyond 1 clips
