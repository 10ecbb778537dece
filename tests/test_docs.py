"""The docs a newcomer reads stay true: the configuration table lists exactly the settings with
their defaults, README stays short, and code comments carry no benchmark figures."""

from __future__ import annotations

import re
from pathlib import Path

from service.config import REPO_ROOT, Settings

CONFIGURATION = REPO_ROOT / "docs" / "configuration.md"
ROW = re.compile(r"^\| `VAE_([A-Z0-9_]+)` \| `([^`]*)`", re.M)
# A figure from a run: "663 us", "~60 ms", "3.4x" (sizes, limits and definitions are not figures).
FIGURE = re.compile(r"\b\d+(\.\d+)?\s?(us|µs|ms)\b|\b\d+(\.\d+)?x (faster|slower|less|more)\b|\b\d+\.\d+x\b")


def documented_default(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Path) and value.is_relative_to(REPO_ROOT):
        return f"<repo>/{value.relative_to(REPO_ROOT)}"
    return str(value)


def test_the_configuration_table_lists_every_setting_with_its_default():
    rows = dict(ROW.findall(CONFIGURATION.read_text()))
    fields = Settings.model_fields
    assert set(rows) == {name.upper() for name in fields}, "docs/configuration.md and Settings list different names"
    for name, field in fields.items():
        assert rows[name.upper()] == documented_default(field.get_default(call_default_factory=True)), (
            f"VAE_{name.upper()}"
        )


def test_readme_stays_about_200_lines():
    assert len((REPO_ROOT / "README.md").read_text().splitlines()) <= 210


def test_code_comments_and_docstrings_carry_no_benchmark_figures():
    found = []
    for folder in ("service", "training", "sdk/src", "devtools"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):  # comments and docstrings
                if FIGURE.search(line):
                    found.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert not found, "figures belong in bench/README.md:\n" + "\n".join(found)


def test_docker_compose_passes_every_setting_through():
    import yaml

    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    passed = set(compose["services"]["vae"]["environment"])
    missing = sorted({f"VAE_{name.upper()}" for name in Settings.model_fields} - passed)
    assert not missing, f"docker-compose.yml does not pass {missing} through"
