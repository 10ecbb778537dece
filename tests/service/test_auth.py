"""VAE_API_KEYS against the real service, REST and gRPC: a missing, wrong or under-scoped key gets
401/403 and nothing runs; open paths stay open; the keys file is checked at start."""

from __future__ import annotations

import subprocess
import sys

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
from tritonclient.utils import InferenceServerException

from devtools.live import REPO_ROOT, free_port, run_until_exit, start_server
from service.auth import key_line
from vae_client import Client, Forbidden, Unauthorized

INFER, ADMIN = "infer-key-0123456789abcdef", "admin-key-0123456789abcdef"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text(f"# test keys\n{key_line(INFER, ['infer'], 'app')}\n{key_line(ADMIN, ['infer', 'admin'], 'ops')}\n")
    grpc_port = free_port()
    server = start_server({"VAE_API_KEYS": str(keys), "VAE_GRPC_PORT": str(grpc_port), "VAE_MODEL_CONTROL": "true"})
    yield server, grpc_port
    server.stop()


def test_rest_needs_a_key_with_the_right_scope(keyed):
    server, _ = keyed
    with httpx.Client(base_url=server.base_url) as http:
        missing = http.post("/sample", params={"n": 1})
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
        wrong = http.post("/sample", params={"n": 1}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "not valid" in wrong.json()["error"]["message"]
        assert http.post("/sample", params={"n": 1}, headers={"X-API-Key": INFER}).status_code == 200
        under = http.post("/v2/repository/index", headers={"Authorization": f"Bearer {INFER}"})
        assert under.status_code == 403 and "'admin'" in under.json()["error"]
        assert http.post("/v2/repository/index", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
        for path in ("/health", "/ready", "/metrics", "/v2/health/ready"):
            assert http.get(path).status_code == 200, path
        metrics = http.get("/metrics").text
    assert 'endpoint="/sample",method="POST",status="200"} 1.0' in metrics  # refused requests ran nothing


def test_grpc_needs_a_key_too(keyed):
    _, grpc_port = keyed
    z = np.zeros((1, 32), np.float32)
    tensor = tgrpc.InferInput("z", [1, 32], "FP32")
    tensor.set_data_from_numpy(z)
    client = tgrpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    assert client.is_server_live()
    with pytest.raises(InferenceServerException) as refused:
        client.infer("mnist-decoder", [tensor])
    assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
    result = client.infer("mnist-decoder", [tensor], headers={"authorization": f"Bearer {INFER}"})
    assert result.as_numpy("image").shape == (1, 1, 28, 28)
    with pytest.raises(InferenceServerException) as under:
        client.get_model_repository_index(headers={"x-api-key": INFER})
    assert under.value.status() == "StatusCode.PERMISSION_DENIED"
    client.close()


def test_the_sdk_sends_its_key_and_types_the_refusals(keyed):
    server, _ = keyed
    with Client(server.base_url, api_key=INFER, retries=0) as vae:
        assert vae.sample(2, seed=0).images.shape == (2, 1, 28, 28)
    with Client(server.base_url, api_key="wrong", retries=0) as vae, pytest.raises(Unauthorized):
        vae.sample(1)
    assert issubclass(Forbidden, Exception)


def test_a_bad_keys_file_refuses_to_start_naming_the_line(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("sha256:abc infer\n")
    code, output = run_until_exit({"VAE_API_KEYS": str(keys)})
    assert code == 2 and f"{keys}:1" in output and "VAE_API_KEYS" in output


def test_hash_key_prints_a_line_the_service_reads():
    made = subprocess.run(
        [sys.executable, "-m", "service", "hash-key", "--scopes", "infer,admin", "--name", "ci"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0 and made.stdout.startswith("sha256:") and made.stdout.strip().endswith("infer,admin ci")
    key = made.stderr.rsplit(" ", 1)[1].strip()
    assert key_line(key, ["infer", "admin"], "ci") == made.stdout.strip()
