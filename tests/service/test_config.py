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
