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


def test_models_lists_the_shipped_models(vae):
    table = vae("models")
    assert table.exit_code == 0, table.output
    assert "mnist *" in table.output and "fashion-mnist" in table.output
    listing = json.loads(vae("models", "--json").output)
    assert listing["default"] == "mnist" and {m["name"] for m in listing["models"]} >= {"mnist"}


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
