"""Client.interpolate / traverse and `vae interpolate` / `vae traverse` against the real service."""

from __future__ import annotations

import asyncio

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from devtools.images import digit_png_bytes
from vae_client import AsyncClient, Client
from vae_client.cli import app


def test_interpolate_between_seeds_latents_and_images(live_server, tmp_path):
    with Client(live_server.base_url) as vae:
        walk = vae.interpolate(3, 9, steps=5)
        assert walk.images.shape == (5, 1, 28, 28) and walk.method == "linear"
        first = vae.sample(1, seed=3).images[0]
        assert np.array_equal(walk.images[0], first)
        mu = vae.encode([digit_png_bytes(0), digit_png_bytes(1)]).mu
        by_latent = vae.interpolate(mu[0], mu[1], steps=4, method="slerp")
        by_image = vae.interpolate(digit_png_bytes(0), digit_png_bytes(1), steps=4, method="slerp")
        assert np.array_equal(by_latent.images, by_image.images)
        path = by_image.save_animation(tmp_path / "walk.gif")
        assert Image.open(path).n_frames == 6


def test_traverse_reports_the_dimensions_it_swept(live_server):
    with Client(live_server.base_url) as vae:
        chosen = vae.traverse(dims=[0, 4], steps=3)
        assert chosen.dims == [0, 4] and chosen.images.shape == (6, 1, 28, 28) and chosen.steps == 3
        active = vae.traverse(digit_png_bytes(2), count=3, steps=4)
        assert len(active.dims) == 3 and active.grid().shape == (3 * 28 + 2 * 2, 4 * 28 + 3 * 2)


def test_the_async_client_walks_too(live_server):
    async def walk():
        async with AsyncClient(live_server.base_url) as vae:
            return await vae.interpolate(1, 2, steps=3), await vae.traverse(dims=[1], steps=2)

    walk_result, traverse_result = asyncio.run(walk())
    assert len(walk_result) == 3 and traverse_result.dims == [1]


def test_the_cli_writes_walks_and_traversals(live_server, tmp_path):
    runner = CliRunner()
    image = tmp_path / "digit.png"
    image.write_bytes(digit_png_bytes(3))
    gif = tmp_path / "walk.gif"
    result = runner.invoke(
        app, ["--url", live_server.base_url, "interpolate", "seed:1", "seed:2", "-o", str(gif), "--steps", "4"]
    )
    assert result.exit_code == 0, result.output
    assert Image.open(gif).n_frames == 6
    row = tmp_path / "row.png"
    assert (
        runner.invoke(
            app, ["--url", live_server.base_url, "interpolate", str(image), str(image), "-o", str(row)]
        ).exit_code
        == 0
    )
    assert Image.open(row).size == (8 * 28 + 7 * 2, 28)
    grid = tmp_path / "grid.png"
    result = runner.invoke(
        app, ["--url", live_server.base_url, "traverse", str(image), "-o", str(grid), "--count", "2", "--steps", "3"]
    )
    assert result.exit_code == 0, result.output
    assert Image.open(grid).size == (3 * 28 + 2 * 2, 2 * 28 + 2)
    mixed = runner.invoke(app, ["--url", live_server.base_url, "interpolate", "seed:1", str(image)])
    assert mixed.exit_code == 2 and "one kind" in mixed.output
