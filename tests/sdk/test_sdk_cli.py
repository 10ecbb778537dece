"""The `vae` command line against the real service (typer's CliRunner, plus one real subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vae_client.cli import app

LATENT_DIM = 32


@pytest.fixture
def vae(live_server, monkeypatch):
    """Runs `vae ARGS...` in-process with VAE_URL pointing at the live service."""
    monkeypatch.setenv("VAE_URL", live_server.base_url)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(arg) for arg in args])

    return invoke


def test_sample_writes_a_png_grid(vae, tmp_path):
    result = vae("sample", "-n", 16, "-o", tmp_path / "grid.png", "--seed", 0)
    assert result.exit_code == 0, result.output
    assert "wrote 16 samples (model mnist)" in result.output
    assert Image.open(tmp_path / "grid.png").size == (4 * 28 + 3 * 2, 4 * 28 + 3 * 2)


def test_sample_to_npy_keeps_the_float_array(vae, tmp_path):
    result = vae("sample", "-n", 3, "-o", tmp_path / "samples.npy", "--model", "fashion-mnist", "-t", 0.5)
    assert result.exit_code == 0, result.output
    array = np.load(tmp_path / "samples.npy")
    assert array.shape == (3, 1, 28, 28) and array.dtype == np.float32


def test_encode_prints_one_json_line_per_image_and_saves_latents(vae, digit_png, tmp_path):
    result = vae("encode", digit_png, digit_png, "--sample", "--seed", 1, "-o", tmp_path / "z.npy")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line["filename"] for line in lines] == ["digit.png", "digit.png"]
    assert all(len(line["mu"]) == len(line["logvar"]) == len(line["z"]) == LATENT_DIM for line in lines)
    np.testing.assert_allclose(np.load(tmp_path / "z.npy")[0], lines[0]["z"], rtol=1e-6)


def test_decode_reads_latents_from_npy(vae, tmp_path):
    np.save(tmp_path / "z.npy", np.zeros((2, LATENT_DIM), np.float32))
    result = vae("decode", tmp_path / "z.npy", "-o", tmp_path / "decoded.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "decoded.png").size == (58, 28)


def test_reconstruct_writes_the_reconstruction(vae, digit_png, tmp_path):
    result = vae("reconstruct", digit_png, "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    assert "wrote 1 reconstruction " in result.output
    assert Image.open(tmp_path / "out.png").size == (28, 28)


def table_rows(output: str) -> dict[str, dict[str, str]]:
    """`vae models` output -> {name: {column: cell}} (the default's name is marked " *")."""
    header, *lines = [line for line in output.splitlines() if line and not line.startswith("(")]
    columns = header.split()
    rows = {}
    for line in lines:
        cells = line.replace(" *", "").split()
        rows[cells[0]] = dict(zip(columns, cells, strict=True))
    return rows


def test_models_lists_the_shipped_models(vae):
    table = vae("models")
    assert table.exit_code == 0, table.output
    assert "mnist *" in table.output and "fashion-mnist" in table.output
    mnist = table_rows(table.output)["mnist"]
    assert (mnist["DATASET"], mnist["IMAGE"], mnist["LATENT"]) == ("mnist", "1x28x28", str(LATENT_DIM))
    listing = json.loads(vae("models", "--json").output)
    assert listing["default"] == "mnist" and {m["name"] for m in listing["models"]} >= {"mnist"}
    shipped = {m["name"]: m for m in listing["models"]}["mnist"]
    assert shipped["image_shape"] == [1, 28, 28] and shipped["latent_shape"] == [LATENT_DIM]


def test_colour_samples_are_saved_as_an_rgb_grid(colour_server, tmp_path):
    url = colour_server.base_url
    result = CliRunner().invoke(
        app, ["--url", url, "sample", "-n", "4", "-o", str(tmp_path / "x.png"), "--model", "rgb"]
    )
    assert result.exit_code == 0, result.output
    grid = Image.open(tmp_path / "x.png")
    assert grid.mode == "RGB" and grid.size == (2 * 16 + 2, 2 * 12 + 2)


def test_models_table_shows_image_and_spatial_latent_shapes(colour_server):
    table = CliRunner().invoke(app, ["--url", colour_server.base_url, "models"])
    assert table.exit_code == 0, table.output
    rgb = table_rows(table.output)["rgb"]
    assert (rgb["IMAGE"], rgb["LATENT"]) == ("3x12x16", "2x3x4")
    listing = json.loads(CliRunner().invoke(app, ["--url", colour_server.base_url, "models", "--json"]).output)
    (model,) = listing["models"]
    assert model["labels"] == ["cat", "dog"] and model["limits"]["max_upload_images"] >= 1


def test_spatial_latents_go_from_encode_to_decode_through_npy(colour_server, colour_png, tmp_path):
    def vae_colour(*args):
        return CliRunner().invoke(app, ["--url", colour_server.base_url, *map(str, args)])

    encoded = vae_colour("encode", colour_png, "-o", tmp_path / "z.npy")
    assert encoded.exit_code == 0, encoded.output
    (line,) = [json.loads(text) for text in encoded.stdout.splitlines() if text.startswith("{")]
    assert np.asarray(line["mu"]).shape == (2, 3, 4) and np.asarray(line["logvar"]).shape == (2, 3, 4)
    assert np.load(tmp_path / "z.npy").shape == (1, 2, 3, 4)
    decoded = vae_colour("decode", tmp_path / "z.npy", "-o", tmp_path / "decoded.png")
    assert decoded.exit_code == 0, decoded.output
    image = Image.open(tmp_path / "decoded.png")
    assert image.mode == "RGB" and image.size == (16, 12)


def test_health_and_ready(vae):
    assert vae("health").output.strip() == "ok"
    ready = vae("ready", "--wait", 5)
    assert ready.exit_code == 0 and ready.output.startswith("ready:")


def test_service_errors_print_code_and_message_and_exit_1(vae):
    result = vae("sample", "-n", 2, "--model", "no-such-model")
    assert result.exit_code == 1
    assert "error: 404 model_not_found:" in result.stderr and "no-such-model" in result.stderr


def test_a_file_that_is_no_image_is_reported(vae, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    result = vae("encode", text)
    assert result.exit_code == 1 and "invalid_image" in result.stderr


def test_url_option_beats_the_environment(live_server, monkeypatch):
    monkeypatch.setenv("VAE_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    unreachable = CliRunner().invoke(app, ["health"])
    assert unreachable.exit_code == 1 and "cannot connect to http://127.0.0.1:9" in unreachable.stderr
    reachable = CliRunner().invoke(app, ["--url", live_server.base_url, "health"])
    assert reachable.exit_code == 0, reachable.output


def test_the_installed_vae_command_runs(live_server, tmp_path):
    script = Path(sys.executable).with_name("vae")
    command = [str(script)] if script.exists() else [shutil.which("vae") or "vae"]
    env = {**os.environ, "VAE_URL": live_server.base_url}
    done = subprocess.run(
        [*command, "sample", "-n", "4", "-o", "four.png"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "four.png").exists()
