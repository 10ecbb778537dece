"""Start-up checks (corrupt or missing model files, providers), overload (429), timeouts (504)
and draining on SIGTERM."""

from __future__ import annotations

import io
import json
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from devtools.live import MODELS_DIR, run_until_exit, start_server


@pytest.fixture
def model_copy(tmp_path):
    target = tmp_path / "models"
    shutil.copytree(MODELS_DIR, target)
    return target


def test_a_corrupt_onnx_file_refuses_start_naming_the_file(model_copy):
    decoder = model_copy / "fashion-mnist" / "decoder.onnx"
    data = bytearray(decoder.read_bytes())
    data[len(data) // 2] ^= 0x01
    decoder.write_bytes(bytes(data))
    code, output = run_until_exit(model_dir=model_copy)
    assert code != 0
    assert str(decoder) in output and "sha256 mismatch" in output
    assert "Traceback" not in output


def test_a_missing_onnx_file_refuses_start_naming_the_file(model_copy):
    encoder = model_copy / "mnist" / "encoder.onnx"
    encoder.unlink()
    code, output = run_until_exit(model_dir=model_copy)
    assert code != 0 and str(encoder) in output and "missing" in output


def test_an_invalid_model_card_refuses_start_naming_the_card(model_copy):
    card_path = model_copy / "mnist" / "model.json"
    card = json.loads(card_path.read_text())
    card["latent_dim"] = "thirty-two"
    card_path.write_text(json.dumps(card))
    code, output = run_until_exit(model_dir=model_copy)
    assert code != 0 and str(card_path) in output and "latent_dim" in output


def test_an_unknown_default_model_refuses_start():
    code, output = run_until_exit({"VAE_DEFAULT_MODEL": "cifar"})
    assert code != 0 and "cifar" in output and "VAE_DEFAULT_MODEL" in output


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available here")
def test_provider_cuda_without_cuda_refuses_to_start():
    code, output = run_until_exit({"VAE_PROVIDER": "cuda"})
    assert code != 0 and "VAE_PROVIDER=cuda" in output


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_cuda_libraries_are_preloaded_once_before_a_cuda_session_and_never_for_cpu(monkeypatch):
    """onnxruntime-gpu's CUDA provider names cuBLAS and cuDNN by bare soname: without
    preload_dlls() the pip wheels beside it are not found and CUDA silently falls back."""
    from service import registry
    from service.config import Settings

    calls = []
    monkeypatch.setattr(ort, "preload_dlls", lambda: calls.append("preload"), raising=False)
    monkeypatch.setattr(ort, "get_available_providers", lambda: [registry.CUDA, registry.CPU])
    registry.preload_cuda_libraries.cache_clear()
    decoder = MODELS_DIR / "mnist" / "decoder.onnx"
    try:
        registry.open_session(decoder, Settings(provider="cpu"))
        assert calls == []
        for _ in range(2):
            registry.open_session(decoder, Settings(provider="auto"))  # CUDA is not really here: CPU
        assert calls == ["preload"]
    finally:  # later tests must not inherit the patched onnxruntime's cached answer
        registry.preload_cuda_libraries.cache_clear()


def test_the_service_serves_a_model_directory_of_one_model(model_copy, server_factory):
    for other in model_copy.iterdir():
        if other.name != "fashion-mnist":
            shutil.rmtree(other)
    server = server_factory({"VAE_DEFAULT_MODEL": "fashion-mnist"}, model_dir=model_copy)
    with server.client() as http:
        assert http.get("/ready").json()["models"] == ["fashion-mnist"]
        assert http.post("/sample").headers["x-model"] == "fashion-mnist"


@pytest.fixture(scope="module")
def slow_engine():
    """The engine waits 1 s to fill a batch that can never fill; the queue holds 64 rows; the
    request timeout is 0.5 s."""
    server = start_server(
        {
            "VAE_MAX_SAMPLE_N": "64",
            "VAE_MAX_UPLOAD_IMAGES": "4",
            "VAE_MAX_QUEUE_ROWS": "64",
            "VAE_MAX_BATCH_SIZE": "1024",
            "VAE_MAX_QUEUE_DELAY_MS": "1000",
            "VAE_REQUEST_TIMEOUT_S": "0.5",
        }
    )
    yield server
    server.stop()


def test_a_full_queue_answers_429_with_retry_after_at_once(slow_engine):
    with slow_engine.client() as http, ThreadPoolExecutor(1) as pool:
        filling = pool.submit(http.post, "/sample", params={"n": 64, "format": "npy"})
        time.sleep(0.2)
        started = time.perf_counter()
        rejected = http.post("/sample", params={"n": 1})
        elapsed = time.perf_counter() - started
        assert rejected.status_code == 429
        assert rejected.json()["error"]["code"] == "queue_full"
        assert int(rejected.headers["retry-after"]) >= 1
        assert elapsed < 0.3
        filling.result()
        metrics = http.get("/metrics").text
    assert 'vae_http_requests_total{endpoint="/sample",method="POST",status="429"} 1.0' in metrics


def test_a_full_queue_refuses_before_parsing_the_body(slow_engine):
    with slow_engine.client() as http, ThreadPoolExecutor(1) as pool:
        filling = pool.submit(http.post, "/sample", params={"n": 64, "format": "npy"})
        time.sleep(0.2)
        # Not JSON at all: a 422 would mean the body was parsed before the queue was asked.
        rejected = http.post("/decode", content=b"not json", headers={"content-type": "application/json"})
        assert rejected.status_code == 429 and rejected.json()["error"]["code"] == "queue_full"
        filling.result()
    with slow_engine.client() as http:  # with room again, the same body is read and refused for what it is
        assert (
            http.post("/decode", content=b"not json", headers={"content-type": "application/json"}).status_code == 422
        )


def test_a_nearly_full_queue_refuses_a_many_row_body_from_its_brackets_before_parsing_it(slow_engine):
    json_type = {"content-type": "application/json"}
    with slow_engine.client() as http, ThreadPoolExecutor(1) as pool:
        filling = pool.submit(http.post, "/sample", params={"n": 40, "format": "npy"})
        time.sleep(0.2)  # 40 of the queue's 64 rows are taken: 32 more cannot fit, 1 more can
        # Not numbers: a 422 would mean the 32 rows were parsed before the queue was asked.
        many = b'{"latents": [' + b",".join([b"[x]"] * 32) + b"]}"
        rejected = http.post("/decode", content=many, headers=json_type)
        assert rejected.status_code == 429, rejected.text
        error = rejected.json()["error"]
        assert error["code"] == "queue_full" and error["details"] == {"queued_rows": 40, "max_queue_rows": 64}
        one = http.post("/decode", content=b'{"latents": [[x]]}', headers=json_type)
        assert one.status_code == 422, one.text  # it fits, so it is parsed and explained
        filling.result()


def test_a_request_past_its_deadline_answers_504(slow_engine):
    with slow_engine.client() as http:
        started = time.perf_counter()
        response = http.post("/sample", params={"n": 2})
        elapsed = time.perf_counter() - started
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["code"] == "timeout" and "0.5" in error["message"]
    assert 0.45 < elapsed < 1.5


def queued_decoder_rows(http: httpx.Client) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith('vae_queue_depth_rows{graph="decoder",model="mnist"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_sigterm_stops_accepting_finishes_queued_work_and_exits(server_factory):
    # Queued requests wait up to 5 s for a batch that never fills: SIGTERM arrives while they wait.
    server = server_factory({"VAE_MAX_QUEUE_DELAY_MS": "5000", "VAE_MAX_BATCH_SIZE": "4096"})
    sizes = [1, 5, 64, 3, 200, 1, 17, 9]
    with server.client() as http, ThreadPoolExecutor(len(sizes)) as pool:
        pending = [
            pool.submit(http.post, "/sample", params={"n": n, "seed": i, "format": "npy"}) for i, n in enumerate(sizes)
        ]
        deadline = time.monotonic() + 10
        while queued_decoder_rows(http) < sum(sizes):  # every request accepted and waiting in the queue
            assert time.monotonic() < deadline, "requests never reached the queue"
            time.sleep(0.05)
        server.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):  # no longer accepting
            httpx.post(f"{server.base_url}/sample", timeout=5)
        responses = [future.result(timeout=30) for future in pending]
    # uvicorn re-raises the signal once drained, so the exit status reports SIGTERM (143 in a shell).
    assert server.process.wait(30) == -signal.SIGTERM
    for n, response in zip(sizes, responses, strict=True):
        assert response.status_code == 200, response.text
        assert np.load(io.BytesIO(response.content)).shape == (n, 1, 28, 28)
