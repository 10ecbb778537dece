"""service/inference.py's array helpers: what the PNG outputs quantise, and where draws come from."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

from service.inference import generator, to_uint8


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


def _draw_in_child(queue) -> None:
    queue.put(generator(None).standard_normal(8))


def test_a_seed_gives_its_stream_and_no_seed_never_repeats_across_calls_threads_or_forks():
    assert np.array_equal(generator(7).standard_normal(8), np.random.default_rng(7).standard_normal(8))
    first, second = generator(None).standard_normal(8), generator(None).standard_normal(8)
    assert not np.array_equal(first, second)
    in_thread = []
    thread = threading.Thread(target=lambda: in_thread.append(generator(None).standard_normal(8)))
    thread.start()
    thread.join()
    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_draw_in_child, args=(queue,))
    child.start()
    forked = queue.get(timeout=30)
    child.join(30)
    here = generator(None).standard_normal(8)  # the draw a forked child would repeat without its own stream
    assert not np.array_equal(forked, here) and not np.array_equal(in_thread[0], here)
