"""The Open Inference Protocol through the unmodified tritonclient (HTTP JSON, HTTP binary, gRPC)
against the real service: metadata, health, results equal to /decode and /encode, bad input,
overload, request ids, and the model repository extension."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from tritonclient.utils import InferenceServerException

from devtools.images import digit_array, digit_png_bytes
from devtools.live import MODELS_DIR, REPO_ROOT, free_port, start_server

Z = np.random.default_rng(0).standard_normal((3, 32)).astype(np.float32)


@pytest.fixture(scope="module")
def oip(tmp_path_factory):
    models = tmp_path_factory.mktemp("repository")
    for name in ("mnist", "fashion-mnist"):
        shutil.copytree(MODELS_DIR / name, models / name)
    grpc_port = free_port()
    server = start_server({"VAE_GRPC_PORT": str(grpc_port), "VAE_MODEL_CONTROL": "true"}, models)
    http_client = thttp.InferenceServerClient(server.base_url.removeprefix("http://"))
    grpc_client = tgrpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    with server.client() as rest:
        yield {"http": http_client, "grpc": grpc_client, "rest": rest, "models": models, "server": server}
    grpc_client.close()
    http_client.close()
    server.stop()


def decode_npy(rest, z: np.ndarray, model: str = "mnist") -> np.ndarray:
    answer = rest.post("/decode", params={"format": "npy", "model": model}, json={"latents": z.tolist()})
    return np.load(io.BytesIO(answer.content))


def http_input(name: str, array: np.ndarray, binary: bool = True, datatype: str = "FP32") -> thttp.InferInput:
    tensor = thttp.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def grpc_input(name: str, array: np.ndarray, datatype: str = "FP32") -> tgrpc.InferInput:
    tensor = tgrpc.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def test_health_and_server_metadata(oip):
    for client in (oip["http"], oip["grpc"]):
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("mnist-decoder") and client.is_model_ready("fashion-mnist-encoder")
    metadata = oip["http"].get_server_metadata()
    assert metadata["name"] == "vae-service" and "binary_tensor_data" in metadata["extensions"]


def test_model_metadata_names_datatypes_and_shapes_from_the_card(oip):
    decoder = oip["http"].get_model_metadata("mnist-decoder")
    assert decoder["inputs"] == [{"name": "z", "datatype": "FP32", "shape": [-1, 32]}]
    assert decoder["outputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    encoder = oip["grpc"].get_model_metadata("mnist-encoder", as_json=True)
    assert [t["name"] for t in encoder["outputs"]] == ["mu", "logvar"]
    assert [int(d) for d in encoder["inputs"][0]["shape"]] == [-1, 1, 28, 28]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_http_decoder_results_equal_decode(oip, binary):
    outputs = [thttp.InferRequestedOutput("image", binary_data=binary)]
    result = oip["http"].infer("mnist-decoder", [http_input("z", Z, binary)], outputs=outputs, request_id="req-7")
    assert np.array_equal(result.as_numpy("image"), decode_npy(oip["rest"], Z))
    assert result.get_response()["id"] == "req-7"


def test_grpc_decoder_results_equal_decode(oip):
    result = oip["grpc"].infer("mnist-decoder", [grpc_input("z", Z)], request_id="req-8")
    assert np.array_equal(result.as_numpy("image"), decode_npy(oip["rest"], Z))
    assert result.get_response().id == "req-8"


def test_encoder_results_equal_encode_for_the_same_input(oip):
    digits = np.stack([digit_array(i) for i in range(3)]).astype(np.float32)[:, None] / 255.0
    # A 28x28 digit on a dark background passes through /encode's preprocessing unchanged.
    files = [("file", (f"{i}.png", digit_png_bytes(i))) for i in range(3)]
    stacked = np.load(io.BytesIO(oip["rest"].post("/encode", params={"format": "npy"}, files=files).content))
    for client, make in ((oip["http"], http_input), (oip["grpc"], grpc_input)):
        result = client.infer("mnist-encoder", [make("image", digits)])
        assert np.array_equal(result.as_numpy("mu"), stacked[:, 0])
        assert np.array_equal(result.as_numpy("logvar"), stacked[:, 1])


def test_fp16_is_converted_and_other_datatypes_are_refused(oip):
    half = Z.astype(np.float16)
    result = oip["http"].infer("mnist-decoder", [http_input("z", half, datatype="FP16")])
    assert np.array_equal(result.as_numpy("image"), decode_npy(oip["rest"], half.astype(np.float32)))
    with pytest.raises(InferenceServerException, match="datatype INT32 is not accepted"):
        oip["http"].infer("mnist-decoder", [http_input("z", Z.astype(np.int32), datatype="INT32")])
    with pytest.raises(InferenceServerException, match="INT32"):
        oip["grpc"].infer("mnist-decoder", [grpc_input("z", Z.astype(np.int32), datatype="INT32")])


@pytest.mark.parametrize(
    "model, name, array, words",
    [
        ("mnist-decoder", "z", np.zeros((2, 31), np.float32), "does not match mnist-decoder's [N, 32]"),
        ("mnist-decoder", "latent", Z, "has no input 'latent'"),
        ("mnist-encoder", "image", np.zeros((1, 1, 28, 27), np.float32), "[N, 1, 28, 28]"),
        ("mnist-decoder", "z", np.full((1, 32), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_inputs_are_refused_with_what_is_allowed(oip, model, name, array, words):
    with pytest.raises(InferenceServerException) as http_error:
        oip["http"].infer(model, [http_input(name, array)])
    assert words in http_error.value.message() and http_error.value.status() == "400"
    with pytest.raises(InferenceServerException) as grpc_error:
        oip["grpc"].infer(model, [grpc_input(name, array)])
    assert words in grpc_error.value.message() and grpc_error.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_unknown_models_are_404_and_not_found(oip):
    with pytest.raises(InferenceServerException) as http_error:
        oip["http"].get_model_metadata("mnist")
    assert http_error.value.status() == "404" and "mnist-decoder" in http_error.value.message()
    with pytest.raises(InferenceServerException) as grpc_error:
        oip["grpc"].infer("nope-decoder", [grpc_input("z", Z)])
    assert grpc_error.value.status() == "StatusCode.NOT_FOUND"
    raw = oip["rest"].post("/v2/models/nope/infer", content=b"{}")
    assert raw.status_code == 404 and set(raw.json()) == {"error"}


def test_malformed_bodies_get_the_protocols_error_shape(oip):
    rest = oip["rest"]
    for body, headers in (
        (b"not json", {}),
        (json.dumps({"inputs": []}).encode(), {}),
        (
            b'{"inputs": [{"name": "z", "shape": [1, 32], "datatype": "FP32", "parameters": {"binary_data_size": 999}}]}',
            {"Inference-Header-Content-Length": "95"},
        ),
        (b"{}", {"Inference-Header-Content-Length": "99"}),
    ):
        answer = rest.post("/v2/models/mnist-decoder/infer", content=body, headers=headers)
        assert answer.status_code == 400, answer.text
        assert set(answer.json()) == {"error"} and answer.json()["error"]


def test_x_request_id_is_echoed_or_made_on_every_endpoint(oip):
    rest = oip["rest"]
    assert rest.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    made = rest.post("/sample", params={"n": 1}).headers["x-request-id"]
    assert len(made) == 32
    body = {"inputs": [{"name": "z", "shape": [1, 32], "datatype": "FP32", "data": [0.0] * 32}]}
    answer = rest.post("/v2/models/mnist-decoder/infer", json=body, headers={"X-Request-ID": "trace-9"})
    assert answer.json()["id"] == "trace-9" and answer.headers["x-request-id"] == "trace-9"


def test_oip_and_rest_traffic_share_the_queue_limits():
    server = start_server(
        {
            "VAE_MAX_SAMPLE_N": "64",
            "VAE_MAX_QUEUE_ROWS": "64",
            "VAE_MAX_QUEUE_DELAY_MS": "1000",
            "VAE_MAX_BATCH_SIZE": "1024",
            "VAE_GRPC_PORT": str(grpc_port := free_port()),
        }
    )
    try:
        client = thttp.InferenceServerClient(server.base_url.removeprefix("http://"))
        grpc_client = tgrpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        with server.client() as rest, ThreadPoolExecutor(1) as pool:
            filling = pool.submit(rest.post, "/sample", params={"n": 64, "format": "npy"})
            time.sleep(0.3)
            with pytest.raises(InferenceServerException) as http_error:
                client.infer("mnist-decoder", [http_input("z", Z[:1])])
            with pytest.raises(InferenceServerException) as grpc_error:
                grpc_client.infer("mnist-decoder", [grpc_input("z", Z[:1])])
            assert filling.result().status_code == 200
        assert http_error.value.status() == "429" and "queue is full" in http_error.value.message()
        assert grpc_error.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        grpc_client.close()
    finally:
        server.stop()


def test_the_repository_extension_is_off_by_default(live_server):
    with live_server.client() as rest:
        answer = rest.post("/v2/repository/index")
    assert answer.status_code == 404 and "VAE_MODEL_CONTROL" in answer.json()["error"]


def test_a_changed_model_folder_loads_without_a_restart_and_a_corrupt_one_is_refused(oip):
    http, rest, models = oip["http"], oip["rest"], oip["models"]
    before = decode_npy(rest, Z, "fashion-mnist")
    # Replace fashion-mnist's files with mnist's (same card name): a new version of the model.
    card = json.loads((MODELS_DIR / "mnist" / "model.json").read_text())
    card["name"], card["version"] = "fashion-mnist", "2.0.0"
    for entry in card["files"].values():  # the graphs and every file beside them that the card names
        shutil.copy(MODELS_DIR / "mnist" / entry["path"], models / "fashion-mnist" / entry["path"])
    (models / "fashion-mnist" / "model.json").write_text(json.dumps(card))
    http.load_model("fashion-mnist")
    assert http.get_model_metadata("fashion-mnist-decoder")["versions"] == ["2.0.0"]
    assert np.array_equal(decode_npy(rest, Z, "fashion-mnist"), decode_npy(rest, Z, "mnist"))
    assert not np.array_equal(before, decode_npy(rest, Z, "fashion-mnist"))

    (models / "fashion-mnist" / "decoder.onnx").write_bytes(b"corrupt")
    with pytest.raises(InferenceServerException) as refused:
        oip["grpc"].load_model("fashion-mnist")
    assert "sha256" in refused.value.message() and "keeps serving" in refused.value.message()
    assert np.array_equal(decode_npy(rest, Z, "fashion-mnist"), decode_npy(rest, Z, "mnist"))  # 2.0.0 still serves
    index = {entry["name"]: entry for entry in http.get_model_repository_index()}
    assert index["fashion-mnist"]["state"] == "READY" and index["mnist"]["state"] == "READY"

    http.unload_model("fashion-mnist-decoder")
    assert rest.post("/sample", params={"model": "fashion-mnist"}).status_code == 404
    assert {e["name"]: e["state"] for e in http.get_model_repository_index()}["fashion-mnist"] == "UNAVAILABLE"
    with pytest.raises(InferenceServerException, match="default model"):
        http.unload_model("mnist")


def test_the_proto_matches_the_protocols_field_numbers():
    """Our .proto is written from the specification; tritonclient's descriptors are the reference."""
    dump = """
import json
from service.oip.generated import grpc_predict_v2_pb2 as pb
def fields(d):
    return {f.name: [f.number, f.type] for f in d.fields} | {n.name: fields(n) for n in d.nested_types}
print(json.dumps({name: fields(d) for name, d in pb.DESCRIPTOR.message_types_by_name.items()}))
"""
    ours = json.loads(
        subprocess.run([sys.executable, "-c", dump], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    )
    from tritonclient.grpc import service_pb2

    def fields(d):
        return {f.name: [f.number, f.type] for f in d.fields} | {n.name: fields(n) for n in d.nested_types}

    for name, expected in ours.items():
        reference = fields(service_pb2.DESCRIPTOR.message_types_by_name[name])
        for field, value in expected.items():
            assert reference[field] == value, (name, field)
