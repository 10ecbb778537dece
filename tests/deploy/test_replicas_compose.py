"""docker-compose.replicas.yml, deploy/compose/haproxy.cfg and scripts/roll-replicas.sh name the same
replicas, and the balancer follows settings the service has. scripts/replicas.sh runs the stack."""

from __future__ import annotations

import re

import pytest

from service.config import REPO_ROOT, Settings

yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate: pip install -r requirements/dev.txt")

COMPOSE = REPO_ROOT / "docker-compose.replicas.yml"
BALANCER = REPO_ROOT / "deploy" / "compose"


class ComposeLoader(yaml.SafeLoader):
    """Reads compose's `!override` tag as the value that replaces the inherited one."""


ComposeLoader.add_constructor("!override", lambda loader, node: loader.construct_sequence(node))


def services() -> dict[str, dict]:
    return yaml.load(COMPOSE.read_text(), Loader=ComposeLoader)["services"]


def replicas() -> list[str]:
    return sorted(name for name in services() if name != "balancer")


def test_every_replica_is_the_main_compose_service_without_a_published_port():
    for name in replicas():
        replica = services()[name]
        assert replica["extends"] == {"file": "docker-compose.yml", "service": "vae"}, name
        assert replica["ports"] == [], f"{name} publishes a port; only the balancer should"


def test_the_balancer_routes_to_every_replica_and_the_roll_replaces_each():
    config = (BALANCER / "haproxy.cfg").read_text()
    servers = sorted(re.findall(r"^\s+server (\S+) (\S+):8000$", config, re.M))
    assert servers == [(name, name) for name in replicas()]
    assert set(services()["balancer"]["depends_on"]) == set(replicas())
    roll = (REPO_ROOT / "scripts" / "roll-replicas.sh").read_text()
    assert f"replicas=({' '.join(replicas())})" in roll


def test_the_balancer_checks_the_same_readiness_as_compose():
    config = (BALANCER / "haproxy.cfg").read_text()
    main = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]["vae"]
    assert "option httpchk GET /ready" in config
    assert "/ready" in " ".join(main["healthcheck"]["test"])


def test_the_balancer_follows_only_settings_the_service_has():
    passed = set(services()["balancer"]["environment"])
    entrypoint = (BALANCER / "balancer-entrypoint.sh").read_text()
    read = set(re.findall(r"\$\{(VAE_[A-Z_]+):-", entrypoint))
    assert passed == read
    fields = {f"VAE_{name.upper()}" for name in Settings.model_fields}
    assert read <= fields, read - fields
    for name in read:  # the entrypoint's fallbacks are the service's defaults
        default = re.search(rf"\$\{{{name}:-([0-9.]+)\}}", entrypoint)
        assert default is not None
        assert float(default.group(1)) == Settings.model_fields[name[4:].lower()].default, name
