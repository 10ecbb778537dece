"""bench/report.py: the commit a figure names says when the code measured was not that commit."""

from __future__ import annotations

import subprocess

from bench.report import git_commit


def git(repo, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_the_commit_gains_edits_for_changed_code_but_not_for_results_or_untracked_files(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "service.py").write_text("A = 1\n")
    (tmp_path / "bench" / "results" / "latest.md").write_text("old figures\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git(tmp_path, "rev-parse", "--short", "HEAD")
    assert git_commit(tmp_path) == head
    (tmp_path / "bench" / "results" / "latest.md").write_text("new figures\n")
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert git_commit(tmp_path) == head
    (tmp_path / "service.py").write_text("A = 2\n")
    assert git_commit(tmp_path) == f"{head} + edits"
    assert git_commit(tmp_path / "missing") == "unknown"
