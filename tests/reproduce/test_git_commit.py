"""The commit a report names: marked dirty for a change to the code, not for reproduce's own outputs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dnsrec.reproduce import git_commit


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A checkout with one code file and one committed report."""
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "t3.md").write_text("old report\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    return tmp_path


def test_a_rewritten_report_is_not_a_code_change(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "docs" / "results" / "t3.md").write_text("new report\n")
    assert git_commit([repo / "docs" / "results"], repo=repo) == head
    # without naming it as an output, the same rewrite marks the tree (the check is live)
    assert git_commit([], repo=repo) == f"{head} (+ uncommitted changes)"


def test_a_code_change_is_marked_whatever_the_outputs(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "code.py").write_text("x = 2\n")
    assert git_commit([repo / "docs" / "results"], repo=repo) == f"{head} (+ uncommitted changes)"


def test_outputs_outside_the_checkout_are_ignored(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    elsewhere = tmp_path_factory.mktemp("out")
    assert git_commit([elsewhere], repo=repo) == head
    (repo / "code.py").write_text("x = 3\n")
    assert git_commit([elsewhere, repo], repo=repo) == f"{head} (+ uncommitted changes)"
