"""Settings come from VAE_* environment variables and reject unsafe combinations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from devtools.live import run_until_exit
from service.config import Settings


def test_settings_read_the_vae_prefix(monkeypatch):
    monkeypatch.setenv("VAE_MAX_BATCH_SIZE", "32")
    monkeypatch.setenv("VAE_PROVIDER", "cpu")
    monkeypatch.setenv("MAX_BATCH_SIZE", "1")  # no prefix: ignored
    settings = Settings()
    assert settings.max_batch_size == 32 and settings.provider == "cpu"


def test_defaults_suit_two_cores_and_exact_batching():
    settings = Settings()
    assert settings.intra_op_threads == 1 and settings.max_queue_delay_ms == 0
    assert settings.default_model == "mnist" and settings.model_dir.name == "models"


def test_a_queue_smaller_than_the_largest_request_is_rejected():
    with pytest.raises(ValidationError, match="max_queue_rows"):
        Settings(max_queue_rows=10, max_sample_n=64)


def test_an_invalid_environment_variable_stops_the_service_with_its_name():
    code, output = run_until_exit({"VAE_PROVIDER": "tpu"})
    assert code == 2 and "VAE_PROVIDER" in output


def test_batches_run_on_the_event_loop_by_default_only_on_one_cpu(monkeypatch, tmp_path):
    import os
    import subprocess
    import sys

    from service import config

    cgroup = tmp_path / "cpu.max"
    monkeypatch.setattr(config, "CGROUP_CPU_MAX", cgroup)
    affinity = len(os.sched_getaffinity(0))
    assert config.available_cpus() == affinity  # no cgroup file: the affinity
    cgroup.write_text("max 100000\n")
    assert config.available_cpus() == affinity
    cgroup.write_text("50000 100000\n")  # docker --cpus 0.5
    assert config.available_cpus() == 1 and Settings().batch_workers == 0
    cgroup.write_text("200000 100000\n")
    assert config.available_cpus() == min(affinity, 2)
    assert Settings(engine_workers=3).batch_workers == 3 and Settings(engine_workers=0).batch_workers == 0
    # A process pinned to one core (what taskset does) picks the event loop by itself.
    pinned = subprocess.run(
        [sys.executable, "-c", "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
         "from service.config import Settings; print(Settings().batch_workers)"],
        capture_output=True, text=True, check=True, env={k: v for k, v in os.environ.items() if k != "VAE_ENGINE_WORKERS"},
    )  # fmt: skip
    assert pinned.stdout.strip() == "0"
