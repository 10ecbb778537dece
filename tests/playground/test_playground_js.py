"""The page's JavaScript logic (error wording and retries, latent arithmetic and PCA, the drawing
and its conversion, the panels' helpers) under node's own test runner: tests/playground/js/."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

JS_TESTS = sorted((Path(__file__).parent / "js").glob("*.test.mjs"))


def test_the_pages_javascript_logic_passes_its_node_tests():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the browser tests still run the page)")
    assert JS_TESTS, "no tests in tests/playground/js"
    finished = subprocess.run([node, "--test", *map(str, JS_TESTS)], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stdout[-6000:] + finished.stderr[-2000:]
    assert "# fail 0" in finished.stdout
