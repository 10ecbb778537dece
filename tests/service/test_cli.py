"""`python -m service`: help, check, and serve's command-line options over the environment."""

from __future__ import annotations

import shutil
import subprocess
import sys

import httpx

from devtools.live import MODELS_DIR, REPO_ROOT, free_port


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_help_prints_the_commands_and_starts_nothing():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout and "check" in result.stdout
    serve = run_cli("serve", "--help")
    assert serve.returncode == 0 and "--host" in serve.stdout and "--model-dir" in serve.stdout


def test_check_passes_on_the_shipped_models():
    result = run_cli("check")
    assert result.returncode == 0, result.stderr
    assert "ok  mnist" in result.stdout and "ok  fashion-mnist" in result.stdout


def test_check_exits_2_naming_a_corrupt_file(tmp_path):
    shutil.copytree(MODELS_DIR / "mnist", tmp_path / "mnist")
    (tmp_path / "mnist" / "decoder.onnx").write_bytes(b"not onnx")
    result = run_cli("check", "--model-dir", str(tmp_path))
    assert result.returncode == 2
    assert "decoder.onnx" in result.stderr and "sha256" in result.stderr


def test_an_unknown_command_or_option_is_a_usage_error():
    assert run_cli("bogus").returncode == 2
    assert run_cli("serve", "--no-such-option").returncode == 2


def test_serve_options_override_the_environment(tmp_path):
    shutil.copytree(MODELS_DIR / "mnist", tmp_path / "mnist")
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "VAE_MODEL_DIR": "/nonexistent", "VAE_PORT": "1", "VAE_LOG_LEVEL": "warning"}
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port), "--model-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(300):
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            subprocess.run(["sleep", "0.1"])
        assert ready.json()["models"] == ["mnist"]  # the --model-dir, not VAE_MODEL_DIR
    finally:
        process.terminate()
        process.wait(30)
