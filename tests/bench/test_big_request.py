"""bench.big_request: one many-row request in-process against onnxruntime alone, every request 200."""

from __future__ import annotations

import re
import subprocess
import sys

from bench.asgi_cost import REPO_ROOT


def test_each_round_prints_the_request_the_part_in_onnxruntime_and_the_session_alone():
    found = subprocess.run(
        [sys.executable, "-m", "bench.big_request", "--rows", "16", "--requests", "3", "--rounds", "2"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert found.returncode == 0, found.stderr
    rounds = re.findall(r"^\| (\d) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| (\d+)% \|$", found.stdout, re.MULTILINE)
    assert [r[0] for r in rounds] == ["1", "2"]
    for _, request, inside, alone, _ in rounds:
        assert 0 < float(inside) < float(request) and float(alone) > 0  # the app's run is part of its request
    assert re.search(r"beyond onnxruntime per request: [\d.]+ ms", found.stdout)
