"""bench.asgi_cost: the service's in-process Python per request, every scenario answered 200."""

from __future__ import annotations

import re
import subprocess
import sys

from bench.asgi_cost import REPO_ROOT, scenarios


def test_every_scenario_is_timed_and_printed_in_microseconds():
    found = subprocess.run(
        [sys.executable, "-m", "bench.asgi_cost", "--requests", "50", "--rounds", "1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert found.returncode == 0, found.stderr
    rows = dict(re.findall(r"^\| (/[^|]+?) \| ([\d.]+) \|$", found.stdout, re.MULTILINE))
    assert set(rows) == set(scenarios(b"png"))
    assert all(float(us) > 0 for us in rows.values())
