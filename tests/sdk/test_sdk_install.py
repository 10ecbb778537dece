"""The SDK installs on its own: a fresh virtual environment gets vae_client with httpx and numpy,
and none of the service's or the trainer's heavy dependencies.

Builds a real venv and pip-installs ./sdk from the package index (30-60 s); it runs in CI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import venv
from pathlib import Path

import pytest

SDK_DIR = Path(__file__).resolve().parents[2] / "sdk"

CHECK = textwrap.dedent(
    """
    import importlib.util, json
    import numpy as np
    import vae_client
    from vae_client import SampleResult
    from vae_client._images import to_uploads

    # Without Pillow, arrays still upload as PNG and results still save a PNG grid.
    grid = SampleResult(images=np.zeros((4, 1, 28, 28), np.float32)).save_grid("grid.png")
    rgb_grid = SampleResult(images=np.zeros((4, 3, 12, 16), np.float32)).save_grid("rgb.png")
    uploads = to_uploads([np.zeros((2, 28, 28), np.uint8), np.zeros((1, 3, 12, 16), np.float32)])
    print(json.dumps({
        "version": vae_client.__version__,
        "absent": [name for name in ("fastapi", "onnxruntime", "torch", "PIL", "typer")
                   if importlib.util.find_spec(name) is None],
        "grid_png": open(grid, "rb").read(8) == b"\\x89PNG\\r\\n\\x1a\\n",
        "colour_types": [open(path, "rb").read(26)[25] for path in (grid, rgb_grid)],  # IHDR colour type
        "uploads": [upload.content_type for upload in uploads],
    }))
    """
)


def run(*command, cwd: Path) -> str:
    done = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_sdk_installs_into_a_clean_venv_without_service_or_training_dependencies(tmp_path):
    source = tmp_path / "sdk"  # a copy, so the build leaves nothing behind in the repository
    shutil.copytree(SDK_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", source, cwd=tmp_path)

    report = json.loads(run(python, "-c", CHECK, cwd=tmp_path).strip().splitlines()[-1])
    assert report["absent"] == ["fastapi", "onnxruntime", "torch", "PIL", "typer"]
    assert report["version"] and report["grid_png"]
    assert report["uploads"] == ["image/png"] * 3
    assert report["colour_types"] == [0, 2]  # grayscale, RGB
    without_typer = subprocess.run([env_dir / "bin" / "vae", "--help"], capture_output=True, text=True)
    assert without_typer.returncode != 0 and "pip install 'vae-client[cli]'" in without_typer.stderr
