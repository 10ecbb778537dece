"""bench.decoder_cost: a committed decoder against this checkout's, timed side by side."""

from __future__ import annotations

import re
import subprocess
import sys

from bench.ceiling import REPO_ROOT


def test_a_decoder_against_itself_at_head_costs_about_the_same_and_prints_the_table():
    found = subprocess.run(
        [sys.executable, "-m", "bench.decoder_cost", "HEAD", "--rounds", "1", "--seconds", "0.05"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \|$", found.stdout, re.MULTILINE)
    assert [int(r[0]) for r in rows] == [1, 64]
    for _, then, now, ratio in rows:
        assert float(then) > 0 and float(now) > 0
        assert abs(float(ratio) - float(now) / float(then)) < 0.01


def test_an_unknown_revision_fails_with_gits_message():
    found = subprocess.run(
        [sys.executable, "-m", "bench.decoder_cost", "no-such-revision"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode != 0
    assert "no models/mnist/decoder.onnx at no-such-revision" in found.stderr and "Traceback" not in found.stderr
