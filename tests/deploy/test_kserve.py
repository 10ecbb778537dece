"""deploy/kserve: a ServingRuntime whose container is a valid Kubernetes container serving the image's
own models over the v2 protocol on one routable port, and an InferenceService that selects it.
KServe's CRD schemas are not bundled here, so its fields are checked one by one."""

from __future__ import annotations

import re

import pytest
from deploy_manifests import (
    compose_image,
    container_env,
    memory_at_full_queues,
    quantity,
    setting_names,
    settings_from,
)

from service.config import REPO_ROOT

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is in requirements/dev.txt: pip install -r requirements/dev.txt"
)

KUBERNETES_VERSION = "1.32.0"
# Fields of KServe's ServingRuntimeSpec (pkg/apis/serving/v1alpha1/servingruntime_types.go) used here.
RUNTIME_FIELDS = {"annotations", "supportedModelFormats", "protocolVersions", "multiModel", "containers", "volumes"}
# Of PredictorSpec (v1beta1) and its model (ModelSpec), as used here.
PREDICTOR_FIELDS = {"minReplicas", "maxReplicas", "enableServiceLinks", "model"}
MODEL_FIELDS = {"modelFormat", "runtime", "protocolVersion"}


def runtime_and_service(render) -> tuple[dict, dict]:
    rendered = render("kserve")
    assert rendered.kinds() == {"ServingRuntime", "InferenceService"}
    return rendered.one("ServingRuntime"), rendered.one("InferenceService")


def test_the_runtime_speaks_v2_for_a_model_format_of_its_own(render):
    runtime, _ = runtime_and_service(render)
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert set(runtime["spec"]) <= RUNTIME_FIELDS
    assert runtime["spec"]["protocolVersions"] == ["v2"]
    assert [model_format["name"] for model_format in runtime["spec"]["supportedModelFormats"]] == ["vae-onnx"]


def test_the_runtime_pod_validates_strictly_as_a_kubernetes_pod(render):
    runtime, _ = runtime_and_service(render)
    # ServingRuntimePodSpec embeds core/v1 containers and volumes: check them as the pod they become.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": runtime["metadata"]["name"]},
        "spec": {"containers": runtime["spec"]["containers"], "volumes": runtime["spec"]["volumes"]},
    }
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def test_the_runtime_container_serves_the_baked_in_models_on_one_port_knative_can_route(render, monkeypatch):
    runtime, _ = runtime_and_service(render)
    (container,) = runtime["spec"]["containers"]
    assert container["name"] == "kserve-container"  # the container KServe merges the predictor into
    env = container_env(container, [])
    assert set(env) - setting_names() == set(), "not a setting in service/config.py"
    settings = settings_from(env, monkeypatch)
    baked = re.search(r"VAE_MODEL_DIR=(\S+)", (REPO_ROOT / "Dockerfile").read_text()).group(1)
    assert str(settings.model_dir) == baked, "no storageUri: the models are the image's own"
    # Knative routes one port per container: http1 for REST, h2c for gRPC.
    (port,) = container["ports"]
    assert port["name"] == "http1" and port["containerPort"] == settings.port
    assert settings.grpc_port is None, "a gRPC server on a port nothing routes to"
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": settings.port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": settings.port}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001
    assert security["readOnlyRootFilesystem"] is True and security["capabilities"] == {"drop": ["ALL"]}
    assert [mount["mountPath"] for mount in container["volumeMounts"]] == ["/tmp"]
    assert memory_at_full_queues(settings) <= quantity(container["resources"]["limits"]["memory"])


def test_the_inference_service_selects_the_runtime_and_the_v2_protocol(render):
    runtime, service = runtime_and_service(render)
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    predictor = service["spec"]["predictor"]
    assert set(predictor) <= PREDICTOR_FIELDS and set(predictor["model"]) <= MODEL_FIELDS
    model = predictor["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    supported = {(f["name"], f.get("version")) for f in runtime["spec"]["supportedModelFormats"]}
    assert (model["modelFormat"]["name"], model["modelFormat"].get("version")) in supported
    # Without a storageUri KServe adds no storage initializer; the runtime reads /app/models.
    assert "storageUri" not in model
    assert predictor["minReplicas"] >= 1, "a cold start loads and warms up every model first"
    assert predictor["enableServiceLinks"] is False


def test_the_image_is_the_cpu_image_docker_compose_builds(render):
    runtime, _ = runtime_and_service(render)
    assert runtime["spec"]["containers"][0]["image"] == compose_image("docker-compose.yml")
