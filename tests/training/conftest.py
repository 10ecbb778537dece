"""A cache for decoded image folders outside the repository's data/."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def folder_cache(tmp_path_factory):
    """Decoded folders are cached in a temporary directory, not in the repository's data/."""
    cache = tmp_path_factory.mktemp("data-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VAE_DATA_CACHE", str(cache))
        yield cache
