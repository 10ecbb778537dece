"""docs/own-model.md's example runs as written: a PyTorch VAE exported with torch.onnx, packaged
with `python -m service package`, served, and its /decode equal to the torch decoder."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest

from devtools.live import REPO_ROOT, start_server

torch = pytest.importorskip("torch")  # the serving-only environment has no torch


def test_the_documented_pytorch_export_packages_and_serves(tmp_path):
    example = REPO_ROOT / "docs" / "examples" / "export_pytorch_vae.py"
    exported = tmp_path / "exported"
    subprocess.run([sys.executable, str(example), str(exported)], check=True, capture_output=True, timeout=300)
    packaged = subprocess.run(
        [
            sys.executable,
            "-m",
            "service",
            "package",
            "--encoder",
            str(exported / "encoder.onnx"),
            "--decoder",
            str(exported / "decoder.onnx"),
            "--name",
            "my-vae",
            "--out",
            str(tmp_path / "models" / "my-vae"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert packaged.returncode == 0, packaged.stderr

    sys.path.insert(0, str(example.parent))
    try:
        from export_pytorch_vae import build
    finally:
        sys.path.pop(0)
    _, decoder = build()
    z = np.random.default_rng(0).standard_normal((3, 4, 8, 12)).astype(np.float32)
    with torch.no_grad():
        expected = decoder(torch.from_numpy(z)).numpy()

    server = start_server({"VAE_DEFAULT_MODEL": "my-vae"}, tmp_path / "models")
    try:
        with server.client() as http:
            answer = http.post("/decode", params={"format": "npy"}, json={"latents": z.tolist()})
            assert answer.status_code == 200, answer.text
            images = np.load(io.BytesIO(answer.content))
            assert images.shape == (3, 3, 32, 48)
            np.testing.assert_allclose(images, expected, atol=1e-5)
            assert http.post("/sample", params={"n": 4}).headers["content-type"] == "image/png"
    finally:
        server.stop()
