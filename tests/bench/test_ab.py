"""bench.ab: two builds side by side, each from its own checkout, taking turns under load.

The numbers are not checked (any machine passes), only that each build ran from its own tree,
that both were measured and that the worktree is gone afterwards.
"""

from __future__ import annotations

import os
import subprocess

import psutil
import pytest

from bench import ab
from bench.suite import cpu_layout


def _worktrees() -> str:
    return subprocess.run(["git", "worktree", "list"], cwd=ab.REPO_ROOT, capture_output=True, text=True).stdout


def test_checkout_gives_a_worktree_of_the_revision_and_removes_it():
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ab.REPO_ROOT, capture_output=True, text=True, check=True)
    with ab.checkout("HEAD") as tree:
        assert tree != ab.REPO_ROOT
        assert (tree / "service" / "__main__.py").is_file() and (tree / "models").is_dir()
        inside = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, text=True, check=True)
        assert inside.stdout == head.stdout
        assert str(tree) in _worktrees()
    assert not tree.exists() and str(tree) not in _worktrees()
    with ab.checkout(None) as tree:
        assert tree == ab.REPO_ROOT


def test_an_unknown_revision_is_refused_with_a_message():
    with pytest.raises(SystemExit, match="not a commit"):
        with ab.checkout("no-such-revision-anywhere"):
            pass


def test_compare_runs_both_builds_from_their_own_trees(monkeypatch):
    cwds = []
    start = ab.BenchServer.__init__

    def recording_init(self, *args, **kwargs):
        start(self, *args, **kwargs)
        cwds.append(psutil.Process(self.server.pid).cwd())

    monkeypatch.setattr(ab.BenchServer, "__init__", recording_init)
    cores = os.sched_getaffinity(0)
    results = ab.compare(["HEAD", None], concurrency=2, duration_s=0.4, rounds=2, warmup_s=0.1)
    assert os.sched_getaffinity(0) == cores  # the caller gets its cores back
    assert list(results) == ["HEAD", "this checkout"]
    assert cwds[0] != str(ab.REPO_ROOT) and cwds[1] == str(ab.REPO_ROOT)
    server_cpus, _ = cpu_layout()
    for ping, decode in results.values():
        assert ping.load.ok > 0 and decode.load.ok > 0 and decode.load.errors == {}
        if server_cpus and len(server_cpus) == 1:  # pinned to one core: batches run on the event loop
            assert decode.cpu_us == pytest.approx(decode.loop_cpu_us, rel=0.1)
        else:  # inference ran on a batch worker
            assert 0 < decode.loop_cpu_us < decode.cpu_us
    text = ab.table([results, results])
    assert "| HEAD | 1 |" in text and "| this checkout | 2 |" in text and "workload: /decode n=1 json" in text
    assert "| **HEAD** | median |" in text
