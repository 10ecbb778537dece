"""Service configuration: one Settings object read from VAE_* environment variables.

docs/configuration.md documents every field; keep the two in step.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 quota (docker --cpus, a
    Kubernetes CPU limit), which affinity does not show."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VAE_", extra="ignore", protected_namespaces=())

    # Models and runtime
    model_dir: Path = Field(
        REPO_ROOT / "models", description="Folder whose sub-folders each hold a model.json and its ONNX files."
    )
    default_model: str = Field("mnist", description="Model used when a request names none.")
    provider: Literal["cpu", "cuda", "auto"] = Field("auto", description="onnxruntime execution provider.")
    intra_op_threads: int = Field(1, ge=1, le=64, description="onnxruntime threads inside one operator.")
    inter_op_threads: int = Field(1, ge=1, le=64, description="onnxruntime threads across operators.")

    # Dynamic batching
    max_batch_size: int = Field(256, ge=1, le=65536, description="Most rows (images) in one onnxruntime call.")
    max_queue_delay_ms: float = Field(
        0.0, ge=0, le=10_000, description="Longest wait to fill a batch once a request is queued."
    )
    max_queue_rows: int = Field(16384, ge=1, description="Most rows waiting per model graph; beyond it: 429.")
    max_queue_wait_s: float = Field(
        5.0,
        gt=0,
        description="Longest estimated wait behind the rows queued (recent seconds per row); beyond it: 429.",
    )
    max_batch_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Caps a batch's rows by their float32 bytes, so big images get smaller batches.",
    )
    max_queue_bytes: int = Field(
        1024 * 1024 * 1024,
        ge=1024,
        description="Caps the rows waiting per model graph by their bytes; also caps n and uploads per request.",
    )
    engine_workers: int | None = Field(
        None,
        ge=0,
        le=16,
        description="Worker threads per model graph; those after the first start only on a backlog. "
        "0: batches run on the event loop, no thread hand-offs. Default: 0 when the process may use "
        "one CPU (affinity or cgroup quota), else 2.",
    )
    engine_spill_rows: int = Field(
        32,
        ge=1,
        description="Rows waiting before the second and later workers start a batch; tiny batches run best one after another.",
    )
    retry_after_batch_s: float = Field(
        0.05,
        gt=0,
        le=60,
        description="Seconds one full batch is assumed to take, for a 429's Retry-After before any batch is timed.",
    )
    request_timeout_s: float = Field(30.0, gt=0, description="Per-request deadline for inference; beyond it: 504.")

    # Limits on what a client may send
    max_sample_n: int = Field(1024, ge=1, description="Most images per /sample or rows per /decode.")
    max_upload_images: int = Field(64, ge=1, description="Most images per /encode or /reconstruct request.")
    max_walk_steps: int = Field(
        64, ge=2, description="Most frames per /interpolate and values per dimension for /traverse."
    )
    max_score_k: int = Field(1024, ge=1, description="Most importance samples per image for /score (its k).")
    max_score_rows: int = Field(
        65_536, ge=1, description="Most decoder rows (k x images) one /score request may ask for."
    )
    outlier_percentile: float = Field(
        99.0, gt=0, lt=100, description="/score flags an image whose outlier_score is above this test-set percentile."
    )
    max_upload_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, description="Largest upload body in bytes; beyond it: 413."
    )
    max_image_pixels: int = Field(
        40_000_000, ge=784, description="Most pixels (width x height) per decoded image; beyond it: 413."
    )
    max_json_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest JSON or .npy body for /decode; beyond it: 413."
    )

    # Request handling on the event loop
    image_decode_threads: int = Field(
        2, ge=1, le=64, description="Threads that decode large uploads off the event loop."
    )
    inline_decode_bytes: int = Field(
        64 * 1024,
        ge=0,
        description="Uploads up to this many bytes in all are decoded on the event loop; the hop to a thread costs more.",
    )
    gc_young_threshold: int = Field(
        20_000,
        ge=700,
        description="Allocations between young-generation garbage collections, set once the models are loaded.",
    )

    # Open Inference Protocol (docs/api.md)
    grpc_port: int | None = Field(
        None, ge=0, le=65535, description="Port for the OIP gRPC API on the bind address; off when unset."
    )
    model_control: bool = Field(
        False,
        description="Enable the OIP model repository extension (load and unload model folders): an admin operation.",
    )

    # The playground (GET /) and browsers on other origins
    playground: bool = Field(True, description="Serve the playground page at GET /; false: the API alone.")
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins allowed to call the API from a browser (JSON list, e.g. ["https://example.org"]); none by default.',
    )

    # Connections (service/connections.py): what a slow, idle or hostile client may hold
    max_connections: int = Field(1000, ge=1, description="Most open connections; one more gets 503 at once.")
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Deadline for a request's line and headers, from the connection's start or the previous response.",
    )
    body_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Base allowance for a request body; the declared length at VAE_MIN_BODY_RATE_BYTES_S is added.",
    )
    min_body_rate_bytes_s: int = Field(
        64 * 1024, ge=1, description="Slowest body upload accepted, in bytes per second, beyond the base allowance."
    )
    max_header_bytes: int = Field(16 * 1024, ge=1024, description="Largest request line plus headers; beyond it: 431.")
    keep_alive_timeout_s: float = Field(
        5.0, gt=0, description="An idle kept-alive connection is closed after this long."
    )

    # Who may call (service/auth.py)
    api_keys: Path | None = Field(
        None, description="File of hashed API keys with scopes (python -m service hash-key); unset: no keys needed."
    )
    api_keys_protect_ops: bool = Field(
        False, description="Also require a key for health, readiness, metrics, the docs and the playground page."
    )

    # Server
    host: str = Field(
        "127.0.0.1", description="Bind address for `python -m service serve` (the container image sets 0.0.0.0)."
    )
    port: int = Field(8000, ge=0, le=65535, description="Bind port for `python -m service serve`.")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Server processes for `python -m service serve`, each with its own models and batchers.",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field("info", description="Log level.")
    access_log: bool = Field(False, description="Log every request (costs throughput).")
    shutdown_timeout_s: float = Field(
        30.0, gt=0, description="On SIGTERM, longest wait for in-flight requests to finish."
    )

    @property
    def batch_workers(self) -> int:
        """engine_workers, or its default: on one CPU a worker thread only adds hand-offs."""
        if self.engine_workers is not None:
            return self.engine_workers
        return 0 if available_cpus() == 1 else 2

    @model_validator(mode="after")
    def _queue_holds_the_largest_request(self) -> Settings:
        largest = max(self.max_sample_n, self.max_upload_images)
        if self.max_queue_rows < largest:
            raise ValueError(
                f"max_queue_rows ({self.max_queue_rows}) must be at least max(max_sample_n, "
                f"max_upload_images) = {largest}, or the largest allowed request could never be queued"
            )
        return self
