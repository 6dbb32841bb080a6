"""Which commits a push publishes, from each source git or pre-commit gives us."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_risk_hook.git import repo as git
from ci_risk_hook.git.ranges import RangeError, explicit, from_hook_stdin, from_pre_commit_env
from testing.repos import Repo, make_repo

Z = git.ZERO_SHA


def commits_of(repo: Repo, ranges: list) -> list[list[str]]:
    return [[c.sha for c in git.iter_commits(r.rev_args(), str(repo.path))] for r in ranges]


@pytest.fixture
def pushed(history_repo: Repo, tmp_path: Path) -> Repo:
    """history_repo with a bare remote 'origin' that has main."""
    remote = tmp_path / "remote.git"
    history_repo.git("init", "-q", "--bare", str(remote))
    history_repo.git("remote", "add", "origin", str(remote))
    history_repo.git("push", "-q", "-u", "origin", "main")
    return history_repo


def test_stdin_existing_branch(pushed: Repo) -> None:
    remote_sha = pushed.head()
    a = pushed.commit({"src/a.py": "a\n"})
    b = pushed.commit({"src/b.py": "b\n"})
    ranges = from_hook_stdin([f"refs/heads/main {b} refs/heads/main {remote_sha}"], "origin", str(pushed.path))
    assert commits_of(pushed, ranges) == [[b, a]]
    assert ranges[0].label == "refs/heads/main -> refs/heads/main"


def test_stdin_new_branch_scores_commits_on_no_remote(pushed: Repo) -> None:
    pushed.git("checkout", "-q", "-b", "feature")
    c = pushed.commit({"src/c.py": "c\n"})
    ranges = from_hook_stdin([f"refs/heads/feature {c} refs/heads/feature {Z}"], "origin", str(pushed.path))
    assert commits_of(pushed, ranges) == [[c]]


def test_stdin_deletion_pushes_nothing(pushed: Repo) -> None:
    ranges = from_hook_stdin([f"(delete) {Z} refs/heads/old {pushed.head()}"], "origin", str(pushed.path))
    assert ranges == []


def test_stdin_several_refs(pushed: Repo) -> None:
    base = pushed.head()
    m = pushed.commit({"src/m.py": "m\n"})
    pushed.git("checkout", "-q", "-b", "side", base)
    s = pushed.commit({"src/s.py": "s\n"})
    lines = [f"refs/heads/main {m} refs/heads/main {base}", f"refs/heads/side {s} refs/heads/side {Z}"]
    assert commits_of(pushed, from_hook_stdin(lines, "origin", str(pushed.path))) == [[m], [s]]


def test_stdin_remote_sha_unknown_locally(pushed: Repo) -> None:
    """Someone else pushed since our last fetch: score what no remote-tracking ref has."""
    d = pushed.commit({"src/d.py": "d\n"})
    unknown = "1234567890" * 4
    ranges = from_hook_stdin([f"refs/heads/main {d} refs/heads/main {unknown}"], "origin", str(pushed.path))
    assert commits_of(pushed, ranges) == [[d]]


def test_stdin_root_commit_of_a_new_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "fresh")
    root = repo.commit({"a.py": "a\n"}, "root")
    ranges = from_hook_stdin([f"refs/heads/main {root} refs/heads/main {Z}"], "origin", str(repo.path))
    assert commits_of(repo, ranges) == [[root]]


def test_stdin_ignores_malformed_lines(pushed: Repo) -> None:
    assert from_hook_stdin(["", "garbage"], "origin", str(pushed.path)) == []


def test_pre_commit_env_with_refs(pushed: Repo) -> None:
    base = pushed.head()
    tip = pushed.commit({"src/e.py": "e\n"})
    env = {"PRE_COMMIT_FROM_REF": base, "PRE_COMMIT_TO_REF": tip, "PRE_COMMIT_REMOTE_NAME": "origin"}
    assert commits_of(pushed, from_pre_commit_env(env, str(pushed.path)) or []) == [[tip]]


def test_pre_commit_env_new_branch_with_root_commit(tmp_path: Path) -> None:
    """pre-commit passes no refs when the new branch starts at a root commit."""
    repo = make_repo(tmp_path / "fresh")
    a = repo.commit({"a.py": "a\n"})
    b = repo.commit({"b.py": "b\n"})
    env = {"PRE_COMMIT_REMOTE_NAME": "origin", "PRE_COMMIT_LOCAL_BRANCH": "refs/heads/main"}
    assert commits_of(repo, from_pre_commit_env(env, str(repo.path)) or []) == [[b, a]]


def test_outside_pre_commit_env_is_none() -> None:
    assert from_pre_commit_env({}) is None


def test_explicit_defaults_to_upstream(pushed: Repo) -> None:
    tip = pushed.commit({"src/f.py": "f\n"})
    r = explicit(None, None, str(pushed.path))
    assert commits_of(pushed, [r]) == [[tip]]


def test_explicit_without_upstream_uses_commits_on_no_remote(pushed: Repo) -> None:
    pushed.git("checkout", "-q", "-b", "local-only")
    g = pushed.commit({"src/g.py": "g\n"})
    assert commits_of(pushed, [explicit(None, None, str(pushed.path))]) == [[g]]


def test_explicit_nothing_pending_is_empty(pushed: Repo) -> None:
    assert commits_of(pushed, [explicit(None, None, str(pushed.path))]) == [[]]


def test_explicit_bad_revision(pushed: Repo) -> None:
    with pytest.raises(RangeError, match="not a commit: nope"):
        explicit("nope", None, str(pushed.path))


def test_explicit_unborn_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "empty")
    with pytest.raises(RangeError, match="no commits yet"):
        explicit(None, None, str(repo.path))
