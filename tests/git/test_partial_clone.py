"""Partial clones (`git clone --filter=blob:none`, `--filter=tree:0`): ci-risk reads the objects that are here.

Reading a missing object makes git fetch it from the promisor remote, one fetch per commit's diff. Measured on a
300-commit history over `file://`, before the fix: a history walk on a git that ignores GIT_NO_LAZY_FETCH (every
git before 2.44 but its security releases) downloaded all 146 missing blobs in 46 fetches, and a remote that did
not answer (an ssh command sleeping 15 s) held `ci-risk check` 90 s; on git 2.39.5, which honours it, `backfill`
stopped at git's warning ("lazy fetching disabled"), taken for its error.

An "older git" here is the real one behind a `git` on PATH that unsets GIT_NO_LAZY_FETCH.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ci_risk_hook.features.analysis import analyze
from ci_risk_hook.features.extract import Limits
from ci_risk_hook.git import repo as git
from ci_risk_hook.git.ranges import PushRange
from ci_risk_hook.mining.backfill import backfill_commits
from ci_risk_hook.outcomes.store import open_store
from testing.repos import Repo, lines

BIN = Path(sys.executable).parent
CI_RISK = str(BIN / "ci-risk")


def partial_clone(upstream: Repo, tmp_path: Path, filter_spec: str = "blob:none") -> Repo:
    """A clone of `upstream` through a bare remote that serves filters, as a forge does."""
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(upstream.path), str(bare)], check=True)
    subprocess.run(["git", "-C", str(bare), "config", "uploadpack.allowFilter", "true"], check=True)
    clone = tmp_path / "partial"
    subprocess.run(["git", "clone", "-q", f"--filter={filter_spec}", f"file://{bare}", str(clone)], check=True)
    return Repo(clone)


def missing_objects(repo: Repo) -> int:
    """Objects the clone's history names but does not hold (listing them fetches nothing)."""
    listed = repo.git("rev-list", "--objects", "--all", "--missing=print", env={"GIT_NO_LAZY_FETCH": "1"})
    return sum(1 for line in listed.splitlines() if line.startswith("?"))


@pytest.fixture
def older_git(tmp_path: Path) -> dict[str, str]:
    """The environment of a git that does not know GIT_NO_LAZY_FETCH (git < 2.44): a `git` first on PATH."""
    shim = tmp_path / "older-git"
    shim.mkdir()
    real = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True, check=True).stdout.strip()
    (shim / "git").write_text(f'#!/bin/sh\nunset GIT_NO_LAZY_FETCH\nexec {real} "$@"\n')
    (shim / "git").chmod(0o755)
    return {"PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture
def blobless(history_repo: Repo, tmp_path: Path) -> Repo:
    """A blobless clone with one commit of its own: older versions of src/app.py are not here."""
    clone = partial_clone(history_repo, tmp_path)
    clone.clock = history_repo.clock
    clone.commit({"src/app.py": lines(58)}, "extend app", author="Maintainer <maint@example.com>")
    assert missing_objects(clone) > 0
    return clone


def ci_risk(repo: Repo, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CI_RISK, *args], cwd=repo.path, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def test_check_fetches_nothing_even_on_a_git_that_ignores_no_lazy_fetch(
    blobless: Repo, older_git: dict[str, str]
) -> None:
    missing = missing_objects(blobless)
    proc = ci_risk(blobless, "check", "--from", "HEAD~1", env=older_git)
    assert proc.returncode == 0, proc.stderr
    assert missing_objects(blobless) == missing
    # The shim's git does fetch lazily: the check above is not vacuous.
    subprocess.run(["git", "log", "-p"], cwd=blobless.path, capture_output=True, env={**os.environ, **older_git})
    assert missing_objects(blobless) < missing


def test_the_promisor_remote_is_never_contacted(blobless: Repo, older_git: dict[str, str], tmp_path: Path) -> None:
    """A remote that does not answer (an unreachable host, a VPN that is down) held the push for each fetch's
    time-out; ci-risk must not start a fetch at all."""
    contacted = tmp_path / "contacted"
    ssh = tmp_path / "ssh"
    ssh.write_text(f'#!/bin/sh\necho "$@" >> {contacted}\nexit 255\n')
    ssh.chmod(0o755)
    blobless.git("config", "remote.origin.url", "ssh://git.example.invalid/project.git")
    blobless.git("config", "core.sshCommand", str(ssh))
    for command in (["check", "--from", "HEAD~1"], ["backfill", "--no-szz"]):
        proc = ci_risk(blobless, *command, env=older_git)
        assert proc.returncode == 0, (command, proc.stderr)
    assert not contacted.exists(), contacted.read_text()


def test_backfill_on_a_partial_clone_computes_what_is_here(blobless: Repo) -> None:
    """git 2.39.5 prints "warning: lazy fetching disabled" before saying which object it lacks: taken for the
    error itself, it stopped backfill (exit 1) instead of leaving those commits' line counts unknown."""
    missing = missing_objects(blobless)
    proc = ci_risk(blobless, "backfill", "--no-szz")
    assert proc.returncode == 0, proc.stderr
    assert "7 commits read, features stored for 7 new" in proc.stdout
    # Said once: all but the clone's own commit lack a blob of an earlier version.
    said = [line for line in proc.stdout.splitlines() if "missing" in line]
    assert said == [
        "ci-risk: 6 of these commits' file contents are missing from this clone (a partial or damaged clone): "
        "their line counts, and the sizes (LT) that depend on them, are unknown"
    ]
    assert missing_objects(blobless) == missing


def push_features(repo: Repo, tip: str = "HEAD") -> tuple[dict[str, float | None], list[str]]:
    sha = repo.git("rev-parse", tip)
    push = PushRange(tip=sha, exclude=tuple(repo.git("rev-parse", f"{sha}^@").split()[:1]))
    result = analyze(push, git.repo_info(str(repo.path)), Limits(), cwd=str(repo.path))
    return result.values, result.notes


def test_a_partial_clone_scores_with_every_history_feature_but_the_unreadable_size(
    history_repo: Repo, blobless: Repo
) -> None:
    """The earlier versions of src/app.py are not here: its size before the push (LT) is unknown, and said in
    one line. It was 0 (the unreadable changes counted as no lines), silently; the rest is as in a full clone."""
    history_repo.clock = blobless.clock - 3600
    history_repo.commit({"src/app.py": lines(58)}, "extend app", author="Maintainer <maint@example.com>")
    full, _ = push_features(history_repo)
    assert full["lt"] == 55 and full["nuc"] == 6  # the fixture's own numbers: the comparison below is not vacuous
    partial, notes = push_features(blobless)
    assert partial["lt"] is None
    assert {k: v for k, v in partial.items() if k != "lt"} == {k: v for k, v in full.items() if k != "lt"}
    missing = [note for note in notes if "missing" in note]
    assert missing == ["earlier file contents are missing from this clone: LT (the changed files' size) is unknown"]


def test_backfill_on_a_partial_clone_answers_as_the_index_does(blobless: Repo, tmp_path: Path) -> None:
    """Training-serving skew: backfill's streaming history must not count unreadable changes as 0 lines either."""
    store = open_store(str(tmp_path / "h.sqlite"))
    repo_id = store.repository_id(blobless.git("rev-list", "--max-parents=0", "HEAD"))
    backfill_commits(store, repo_id, cwd=str(blobless.path))
    stored = {sha: values for sha, _, _, values in store.commit_features(repo_id)}
    store.close()
    for sha in blobless.git("rev-list", "HEAD").split():
        assert stored[sha] == push_features(blobless, sha)[0], sha
    assert stored[blobless.head()]["lt"] is None


def counting_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `git` first on PATH that logs each run of it; returns the log."""
    shim = tmp_path / "counting-git"
    shim.mkdir()
    log = tmp_path / "git-runs.log"
    real = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True, check=True).stdout.strip()
    (shim / "git").write_text(f'#!/bin/sh\necho "$1 $2" >> {log}\nexec {real} "$@"\n')
    (shim / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    return log


def test_a_walk_over_a_partial_clone_reads_each_commit_as_far_as_its_blobs_allow_in_a_few_git_runs(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once an object was missing, each commit cost a `git log` of its own, fed all the commits left: a blobless
    clone's 1,000-commit history took 196 s to index (5,000 commits: unfinished after 17 min). Now a chunk of
    commits costs three runs, and a commit whose blobs are here keeps its line counts."""
    repo.commit({"small.py": lines(3)}, "start")
    for i in range(40):
        if i % 3 == 0:
            repo.commit({"big.txt": lines(100 + i, "a long line of text")}, f"big {i}")  # over 1 kB: not cloned
        else:
            repo.commit({"small.py": lines(4 + i)}, f"small {i}")
    clone = partial_clone(repo, tmp_path, "blob:limit=1k")
    log = counting_git(tmp_path, monkeypatch)
    commits = list(git.iter_commits(["HEAD"], str(clone.path)))
    runs = log.read_text().splitlines()
    assert [c.subject for c in commits] == clone.git("log", "--format=%s").splitlines()
    unknown = {c.subject for c in commits if c.lines_unknown}
    assert unknown == {c.subject for c in commits if c.subject.startswith("big")}, unknown
    small = next(c for c in commits if c.subject == "small 1")
    assert [(f.path, f.added, f.deleted) for f in small.files] == [("small.py", 2, 0)]  # 3 lines, then 5
    assert len(runs) <= 6, runs


def test_a_clone_without_older_trees_refuses_backfill_in_one_line_and_the_push_goes_on(
    history_repo: Repo, tmp_path: Path
) -> None:
    """`--filter=tree:0`: older commits' file lists cannot be read at all. backfill and index refuse (exit 1) in
    one line naming the commit; a check scores the push's own commits and says why history is unknown."""
    clone = partial_clone(history_repo, tmp_path, "tree:0")
    clone.clock = history_repo.clock
    clone.commit({"src/app.py": lines(58)}, "extend app", author="Maintainer <maint@example.com>")
    missing = missing_objects(clone)
    for command in (["backfill", "--no-szz"], ["index"]):
        proc = ci_risk(clone, *command)
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        lines_said = proc.stderr.splitlines()
        assert len(lines_said) == 1 and lines_said[0].startswith("Error: commit "), proc.stderr
        assert "its trees are not in this clone, so its files cannot be read" in lines_said[0]
    proc = ci_risk(clone, "check", "--from", "HEAD~1", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert '"la": 3.0' in proc.stdout and "its trees are not in this clone" in proc.stdout
    assert missing_objects(clone) == missing
