"""bench.device: the accelerator check runs its CPU half anywhere and tells a provider that is not active."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from bench.ceiling import REPO_ROOT


def run_device(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    found = subprocess.run(
        [sys.executable, "-m", "bench.device", "--duration", "0.3", "--results", str(tmp_path), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    results = json.loads((tmp_path / "device.json").read_text()) if (tmp_path / "device.json").exists() else {}
    return found, results


def test_the_cpu_run_checks_every_model_and_measures_both_endpoints_beside_the_ceiling(tmp_path):
    found, results = run_device(tmp_path, "--providers", "cpu", "--workers", "1")
    assert found.returncode == 0, found.stderr
    (cell,) = results["cells"]
    models = len(list((REPO_ROOT / "models").glob("*/model.json")))
    assert cell["provider"] == "cpu" and cell["workers"] == 1 and cell["models_on_provider"] == f"{models}/{models}"
    assert cell["ceiling_images_s"] > 0 and cell["sample_images_s"] > 0 and cell["decode_req_s"] > 0
    assert cell["sample_errors"] == {} and cell["decode_errors"] == {}
    row = re.search(r"^\| cpu \| 1 \| (\d+)/(\d+) \|", found.stdout, re.MULTILINE)
    assert row and row.group(1) == row.group(2) == str(models)
    assert (tmp_path / "device.md").read_text().strip() in found.stdout


def test_a_provider_that_is_not_active_is_reported_and_fails_the_run(tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():  # on a GPU machine CUDA is really there
        return
    found, results = run_device(tmp_path, "--providers", "cuda")
    assert found.returncode == 1
    (cell,) = results["cells"]
    assert cell["provider"] == "cuda" and cell["models_on_provider"].startswith("0/")
    assert "VAE_PROVIDER=cuda but onnxruntime activated" in cell["failure"]
    assert "| cuda | 1 | 0/? | the service did not start:" in found.stdout and "Traceback" not in found.stderr
