"""The render fixture: each deploy/ variant rendered once per session."""

from __future__ import annotations

import pytest
from deploy_manifests import Rendered, render_variant


@pytest.fixture(scope="session")
def render(tmp_path_factory):
    """`render("gpu+monitoring")`: the objects of that variant (deploy_manifests.VARIANTS)."""
    cache: dict[str, Rendered] = {}

    def rendered(variant: str) -> Rendered:
        if variant not in cache:
            cache[variant] = render_variant(variant, tmp_path_factory.mktemp(variant.replace("+", "-")))
        return cache[variant]

    return rendered
