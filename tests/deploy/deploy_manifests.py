"""deploy/ rendered as a cluster would receive it (`kubectl kustomize` on an overlay, optionally with
components added the way docs/kubernetes.md shows, one dict per object), and what the tests read from it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.config import REPO_ROOT, Settings

yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate: pip install -r requirements/dev.txt")

DEPLOY = REPO_ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"

# What an overlay plus components renders to; each is a way docs/kubernetes.md deploys.
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "cpu": ("kubernetes/overlays/cpu", ()),
    "gpu": ("kubernetes/overlays/gpu", ()),
    "cpu+monitoring": ("kubernetes/overlays/cpu", ("kubernetes/components/monitoring",)),
    "gpu+monitoring": ("kubernetes/overlays/gpu", ("kubernetes/components/monitoring",)),
    "cpu+cpu-only-autoscaling": ("kubernetes/overlays/cpu", ("kubernetes/components/cpu-only-autoscaling",)),
    "kserve": ("kserve", ()),
}


@dataclass
class Rendered:
    objects: list[dict]

    def all(self, kind: str) -> list[dict]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str) -> dict:
        found = self.all(kind)
        assert len(found) == 1, f"expected one {kind}, found {len(found)}"
        return found[0]

    def kinds(self) -> set[str]:
        return {obj["kind"] for obj in self.objects}


def kustomize(directory: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: deploy/ is rendered with `kubectl kustomize` (client 1.32)")
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


def render_variant(variant: str, scratch: Path) -> Rendered:
    """The objects of one of VARIANTS; components are added from a kustomization written in scratch."""
    overlay, components = VARIANTS[variant]
    if not components:
        return Rendered(kustomize(DEPLOY / overlay))
    # kustomize refuses absolute paths to a base or a component: relative ones from scratch.
    relative = [os.path.relpath(DEPLOY / path, scratch) for path in (overlay, *components)]
    kustomization = {"resources": relative[:1], "components": relative[1:]}
    (scratch / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return Rendered(kustomize(scratch))


def pod_container(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def container_env(container: dict, config_maps: list[dict]) -> dict[str, str]:
    """The environment a container starts with: its envFrom ConfigMaps, then env (which wins)."""
    by_name = {cm["metadata"]["name"]: cm["data"] for cm in config_maps}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(by_name[source["configMapRef"]["name"]])
    env.update({var["name"]: var["value"] for var in container.get("env", [])})
    return env


def setting_names() -> set[str]:
    return {f"VAE_{name.upper()}" for name in Settings.model_fields}


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings the service would build from exactly this environment (values validated)."""
    for name in [name for name in os.environ if name.startswith("VAE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def container_port(container: dict, port: int | str) -> int:
    """A probe's or a Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return number


def compose_image(compose_file: str) -> str:
    """The image a compose file builds, with its ${VAR:-default} tag resolved to the default."""
    image = yaml.safe_load((REPO_ROOT / compose_file).read_text())["services"]["vae"]["image"]
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", image)


def quantity(value: str | int) -> float:
    """A Kubernetes quantity as a number: "500m" -> 0.5, "1Gi" -> 2**30."""
    number, suffix = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value)).groups()
    scale = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}[suffix]
    return float(number) * scale


def memory_at_full_queues(settings: Settings) -> int:
    """Bytes the service holds with every model graph's queue full to VAE_MAX_QUEUE_BYTES."""
    graphs = 2 * len(list((REPO_ROOT / "models").glob("*/model.json")))  # the image bakes models/ in
    service = 200 * 2**20  # about 160 MB at ready and under overload (bench/README.md)
    return graphs * settings.max_queue_bytes + service
