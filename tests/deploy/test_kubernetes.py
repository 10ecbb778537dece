"""deploy/kubernetes renders to valid Kubernetes 1.32 objects that agree with the service: probes on
its health endpoints, a grace period that covers its drain, real settings, the image compose builds,
a locked-down pod, and an HPA whose queue metric the adapter rule serves."""

from __future__ import annotations

import copy
import re

import pytest
from deploy_manifests import (
    KUBERNETES,
    VARIANTS,
    compose_image,
    container_env,
    container_port,
    memory_at_full_queues,
    pod_container,
    quantity,
    setting_names,
    settings_from,
    yaml,
)

from service.metrics import Metrics

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is in requirements/dev.txt: pip install -r requirements/dev.txt"
)

KUBERNETES_VERSION = "1.32.0"
DEPLOYMENTS = ["cpu", "gpu"]
BUILT_IN = {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"}
QUEUE_METRIC = "vae_queue_depth_rows"


def the_deployment(render, variant: str) -> tuple[dict, dict, dict[str, str]]:
    """The Deployment, its one container, and the environment that container starts with."""
    rendered = render(variant)
    deployment = rendered.one("Deployment")
    container = pod_container(deployment)
    return deployment, container, container_env(container, rendered.all("ConfigMap"))


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "kserve"])
def test_every_built_in_object_validates_strictly_against_the_kubernetes_schemas(render, variant):
    rendered = render(variant)
    assert BUILT_IN <= rendered.kinds()
    for obj in rendered.objects:
        if obj["kind"] in BUILT_IN:
            # strict: an unknown or misspelled field fails too, as the API server's strict field validation would.
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        else:
            assert obj["kind"] == "ServiceMonitor"  # checked field by field below


def test_the_schema_check_rejects_a_misspelled_field(render):
    deployment = copy.deepcopy(render("cpu").one("Deployment"))
    pod_container(deployment)["lifecycle"]["preStop"]["sleep"] = {"second": 5}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("variant", DEPLOYMENTS)
def test_startup_and_readiness_probe_ready_and_liveness_probes_health_on_the_http_port(render, variant):
    _, container, env = the_deployment(render, variant)
    probes = {name: container[name]["httpGet"] for name in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert {name: probe["path"] for name, probe in probes.items()} == {
        "startupProbe": "/ready",
        "readinessProbe": "/ready",
        "livenessProbe": "/health",
    }
    for probe in probes.values():
        assert container_port(container, probe["port"]) == int(env["VAE_PORT"])
    assert container_port(container, "grpc") == int(env["VAE_GRPC_PORT"])
    # The startup probe must allow for loading and warming up every model before liveness starts.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


@pytest.mark.parametrize("variant", DEPLOYMENTS)
def test_the_service_routes_http_and_grpc_to_the_container_ports(render, variant):
    rendered = render(variant)
    container = pod_container(rendered.one("Deployment"))
    ports = {port["name"]: port for port in rendered.one("Service")["spec"]["ports"]}
    assert set(ports) == {"http", "grpc"}
    assert container_port(container, ports["http"]["targetPort"]) == 8000
    assert container_port(container, ports["grpc"]["targetPort"]) == 8001
    assert ports["grpc"]["appProtocol"] == "grpc"


@pytest.mark.parametrize("variant", DEPLOYMENTS)
def test_the_grace_period_covers_the_pre_stop_pause_and_the_drain(render, variant, monkeypatch):
    deployment, container, env = the_deployment(render, variant)
    settings = settings_from(env, monkeypatch)
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert pre_stop >= 1, "endpoints need a moment to drop the pod before it drains"
    # A margin beyond the two: queued batches finish after uvicorn's wait, then the process exits.
    assert grace > pre_stop + settings.shutdown_timeout_s
    # An in-flight request ends by its deadline, so the drain's wait covers every accepted request.
    assert settings.shutdown_timeout_s >= settings.request_timeout_s


@pytest.mark.parametrize("variant", DEPLOYMENTS)
def test_every_variable_in_the_config_map_and_on_the_container_is_a_valid_setting(render, variant, monkeypatch):
    rendered = render(variant)
    (config_map,) = rendered.all("ConfigMap")
    _, container, env = the_deployment(render, variant)
    names = set(config_map["data"]) | {var["name"] for var in container["env"]}
    assert names - setting_names() == set(), "not a setting in service/config.py"
    settings = settings_from(env, monkeypatch)  # the values parse and pass the cross-field checks
    assert settings.host == "0.0.0.0" and str(settings.model_dir) == "/app/models"
    assert settings.provider == {"cpu": "cpu", "gpu": "cuda"}[variant]


@pytest.mark.parametrize(
    ("variant", "compose_file"), [("cpu", "docker-compose.yml"), ("gpu", "docker-compose.gpu.yml")]
)
def test_the_image_is_the_one_docker_compose_builds(render, variant, compose_file):
    _, container, _ = the_deployment(render, variant)
    assert container["image"] == compose_image(compose_file)


@pytest.mark.parametrize("variant", DEPLOYMENTS)
def test_the_pod_runs_as_the_image_user_without_privileges_on_a_read_only_root(render, variant):
    deployment, container, _ = the_deployment(render, variant)
    pod = deployment["spec"]["template"]["spec"]
    for context in (pod["securityContext"], container["securityContext"]):
        assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    # /tmp is the one writable path (compose: tmpfs /tmp), from an emptyDir.
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == "/tmp"
    assert [volume for volume in pod["volumes"] if volume["name"] == mount["name"]][0]["emptyDir"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False, "service links inject VAE_*_PORT=tcp://... variables"


@pytest.mark.parametrize("variant", DEPLOYMENTS)
def test_cpu_and_memory_are_requested_and_limited(render, variant):
    _, container, _ = the_deployment(render, variant)
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    for resource in ("cpu", "memory"):
        assert 0 < quantity(requests[resource]) <= quantity(limits[resource])
    # The service holds about 150 MB with the shipped models (bench/README.md).
    assert quantity(requests["memory"]) >= 200 * 2**20


def test_the_gpu_variant_takes_one_gpu_tolerates_gpu_nodes_and_runs_fewer_pods(render):
    _, container, _ = the_deployment(render, "gpu")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    _, cpu_container, _ = the_deployment(render, "cpu")
    assert "nvidia.com/gpu" not in cpu_container["resources"]["limits"]
    tolerations = render("gpu").one("Deployment")["spec"]["template"]["spec"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    gpu_hpa, cpu_hpa = render("gpu").one("HorizontalPodAutoscaler"), render("cpu").one("HorizontalPodAutoscaler")
    assert gpu_hpa["spec"]["maxReplicas"] < cpu_hpa["spec"]["maxReplicas"]


@pytest.mark.parametrize("variant", DEPLOYMENTS)
def test_the_service_budget_and_spread_select_exactly_the_deployments_pods(render, variant):
    rendered = render(variant)
    deployment = rendered.one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels and deployment["spec"]["selector"]["matchLabels"] == pod_labels
    assert rendered.one("Service")["spec"]["selector"] == pod_labels
    # policy/v1: an empty selector would select every pod in the namespace.
    assert rendered.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == pod_labels
    (spread,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == pod_labels


def adapter_rule() -> dict:
    values = yaml.safe_load((KUBERNETES / "prometheus-adapter-values.yaml").read_text())
    (rule,) = [rule for rule in values["rules"]["custom"] if rule["name"]["as"] == QUEUE_METRIC]
    return rule


@pytest.mark.parametrize("variant", DEPLOYMENTS)
def test_the_hpa_scales_the_deployment_on_cpu_and_on_the_queue_metric_the_adapter_serves(render, variant):
    rendered = render(variant)
    hpa, deployment = rendered.one("HorizontalPodAutoscaler"), rendered.one("Deployment")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    metrics = {metric["type"]: metric for metric in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    pods = metrics["Pods"]["pods"]
    assert pods["metric"]["name"] == QUEUE_METRIC and pods["target"]["type"] == "AverageValue"
    assert quantity(pods["target"]["averageValue"]) > 0
    rule = adapter_rule()
    assert QUEUE_METRIC in rule["seriesQuery"] and re.search(rule["name"]["matches"], QUEUE_METRIC)
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
    assert rule["resources"]["overrides"]["namespace"] == {"resource": "namespace"}
    assert "by (<<.GroupBy>>)" in rule["metricsQuery"]


def test_the_queue_metric_is_a_gauge_the_service_exports():
    families = {family.name: family.type for family in Metrics().registry.collect()}
    assert families[QUEUE_METRIC] == "gauge"


def test_the_cpu_only_component_leaves_the_hpa_on_cpu_alone(render):
    hpa = render("cpu+cpu-only-autoscaling").one("HorizontalPodAutoscaler")
    assert [metric["type"] for metric in hpa["spec"]["metrics"]] == ["Resource"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


@pytest.mark.parametrize("variant", ["cpu+monitoring", "gpu+monitoring"])
def test_the_service_monitor_scrapes_metrics_from_the_services_http_port(render, variant):
    rendered = render(variant)
    monitor, service = rendered.one("ServiceMonitor"), rendered.one("Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector and selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}  # fields of the operator's Endpoint


def test_the_plain_overlays_need_no_custom_resource_definitions(render):
    for variant in DEPLOYMENTS:
        assert render(variant).kinds() == BUILT_IN, "a CRD kind here breaks `kubectl apply -k` where it is absent"


@pytest.mark.parametrize("variant", DEPLOYMENTS)
def test_every_queue_full_to_its_byte_cap_fits_in_the_memory_limit(render, variant, monkeypatch):
    _, container, env = the_deployment(render, variant)
    settings = settings_from(env, monkeypatch)
    assert memory_at_full_queues(settings) <= quantity(container["resources"]["limits"]["memory"])
