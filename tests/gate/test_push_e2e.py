"""Real pushes to a local bare remote through the installed hooks, scored by a real model.

The thresholds are placed just below and just above the model's actual score
for the pending push, so the same push is blocked or let through by the
setting alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from testing.modelkit import NEWCOMERS, grow_history, train_model
from testing.repos import REPO_ROOT, Repo, lines, make_repo

BIN = Path(sys.executable).parent
CI_RISK = str(BIN / "ci-risk")
PRE_COMMIT = [sys.executable, "-m", "pre_commit"]


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pre-commit cache for the session: the hook's environment is built once."""
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture(scope="session")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A committed snapshot of this checkout (uncommitted edits included), as pre-commit would fetch it."""
    dest = tmp_path_factory.mktemp("ci-risk-hook-repo")
    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        src = REPO_ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
    }
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["commit", "-q", "--no-verify", "--no-gpg-sign", "-m", "snapshot"],
    ):
        subprocess.run(["git", *args], cwd=dest, check=True, env=env, capture_output=True)
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=dest, check=True, capture_output=True, text=True
    ).stdout.strip()
    return dest, sha


@pytest.fixture
def project(tmp_path: Path, pre_commit_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Repo]:
    """A project with history, a model trained on it, and a bare remote holding main."""
    monkeypatch.setenv("PRE_COMMIT_HOME", str(pre_commit_home))
    repo = make_repo(tmp_path / "project")
    labels = grow_history(repo)
    train_model(repo, labels, repo.path / ".git" / "ci-risk" / "model.json")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    repo.git("remote", "add", "origin", str(remote))
    repo.git("push", "-q", "--no-verify", "-u", "origin", "main")
    yield repo


def risky_change(repo: Repo) -> str:
    return repo.commit(
        {".github/workflows/ci.yml": lines(280, "new step"), "requirements.txt": lines(120, "pkg")},
        "rework CI",
        author=NEWCOMERS[-1],
    )


def safe_change(repo: Repo) -> str:
    return repo.commit({"src/core.py": lines(43, "tidy")}, "tidy core", author="Ada Maintainer <ada@example.com>")


def score(repo: Repo, *args: str) -> float:
    proc = subprocess.run([CI_RISK, "check", "--format", "json", *args], cwd=repo.path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    probability = report["ranges"][0]["probability"]
    assert probability is not None, report
    return float(probability)


def push(repo: Repo, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "push", "origin", "main"],
        cwd=repo.path,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def remote_head(repo: Repo) -> str:
    return repo.git("ls-remote", "origin", "refs/heads/main").split()[0]


def test_model_ranks_the_risky_push_above_the_safe_one(project: Repo) -> None:
    safe_change(project)
    safe = score(project)
    project.git("reset", "-q", "--hard", "HEAD~1")
    risky_change(project)
    assert score(project) > safe


def _install_pre_commit(project: Repo, hook_repo: tuple[Path, str]) -> None:
    path, rev = hook_repo
    (project.path / ".pre-commit-config.yaml").write_text(
        "default_install_hook_types: [pre-commit, pre-push]\n"
        f"repos:\n- repo: {path}\n  rev: {rev}\n  hooks:\n  - id: ci-risk\n    args: [--mode, block]\n"
    )
    proc = subprocess.run([*PRE_COMMIT, "install", "-t", "pre-push"], cwd=project.path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pre_commit_hook_blocks_above_block_at_and_passes_below(project: Repo, hook_repo: tuple[Path, str]) -> None:
    _install_pre_commit(project, hook_repo)
    tip = risky_change(project)
    probability = score(project)

    blocked = push(project, {"CI_RISK_BLOCK_AT": f"{max(probability - 0.01, 0):.4f}"})
    assert blocked.returncode != 0, blocked.stdout + blocked.stderr
    out = blocked.stdout + blocked.stderr
    assert "BLOCKED" in out and "1." in out, out
    assert remote_head(project) != tip

    allowed = push(project, {"CI_RISK_BLOCK_AT": f"{min(probability + 0.01, 1):.4f}"})
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert remote_head(project) == tip


def test_pre_commit_try_repo(project: Repo, hook_repo: tuple[Path, str]) -> None:
    base = project.head()
    tip = risky_change(project)
    path, _ = hook_repo
    proc = subprocess.run(
        [
            *PRE_COMMIT,
            "try-repo",
            str(path),
            "ci-risk",
            "--hook-stage",
            "pre-push",
            "--from-ref",
            base,
            "--to-ref",
            tip,
            "--verbose",
        ],
        cwd=project.path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ci-risk: risk 0." in proc.stdout, proc.stdout


def test_raw_hook_blocks_and_passes(project: Repo) -> None:
    installed = subprocess.run([CI_RISK, "install"], cwd=project.path, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    tip = risky_change(project)
    probability = score(project)

    blocked = push(project, {"CI_RISK_MODE": "block", "CI_RISK_BLOCK_AT": f"{max(probability - 0.01, 0):.4f}"})
    assert blocked.returncode != 0
    assert "BLOCKED" in blocked.stdout + blocked.stderr
    assert remote_head(project) != tip

    allowed = push(project, {"CI_RISK_MODE": "block", "CI_RISK_BLOCK_AT": f"{min(probability + 0.01, 1):.4f}"})
    assert allowed.returncode == 0, allowed.stderr
    assert remote_head(project) == tip


def test_raw_hook_lets_a_deletion_through(project: Repo) -> None:
    project.git("push", "-q", "--no-verify", "origin", "main:doomed")
    subprocess.run([CI_RISK, "install"], cwd=project.path, check=True, capture_output=True)
    proc = subprocess.run(
        ["git", "push", "origin", "--delete", "doomed"],
        cwd=project.path,
        capture_output=True,
        text=True,
        env={**os.environ, "CI_RISK_MODE": "block", "CI_RISK_BLOCK_AT": "0"},
    )
    assert proc.returncode == 0, proc.stderr


def test_raw_hook_new_branch_is_scored(project: Repo) -> None:
    subprocess.run([CI_RISK, "install"], cwd=project.path, check=True, capture_output=True)
    project.git("checkout", "-q", "-b", "feature")
    risky_change(project)
    proc = subprocess.run(
        ["git", "push", "origin", "feature"],
        cwd=project.path,
        capture_output=True,
        text=True,
        env={**os.environ, "CI_RISK_MODE": "block", "CI_RISK_BLOCK_AT": "0"},
    )
    assert proc.returncode != 0
    assert "refs/heads/feature -> refs/heads/feature: 1 commit(s)" in proc.stdout + proc.stderr


def test_raw_hook_scores_a_push_by_the_branch_it_goes_to(project: Repo) -> None:
    """The bundled model learnt that side branches fail more often than the mainline: the same commit pushed to a
    side branch scores higher than on main, so a threshold between the two blocks the one and lets the other go."""
    (project.path / ".git" / "ci-risk" / "model.json").unlink()  # the bundled model, which knows `branch_mainline`
    subprocess.run([CI_RISK, "install"], cwd=project.path, check=True, capture_output=True)
    tip = safe_change(project)
    on_main, on_side = score(project, "--branch", "main"), score(project, "--branch", "feature/login")
    assert on_side > on_main
    between = {"CI_RISK_MODE": "block", "CI_RISK_BLOCK_AT": f"{(on_main + on_side) / 2:.6f}"}

    side = subprocess.run(
        ["git", "push", "origin", "main:refs/heads/feature/login"],
        cwd=project.path,
        capture_output=True,
        text=True,
        env={**os.environ, **between},
    )
    assert side.returncode != 0, side.stdout + side.stderr
    assert "BLOCKED" in side.stdout + side.stderr
    assert "side branch" in side.stdout + side.stderr  # and the reason says why

    mainline = push(project, between)
    assert mainline.returncode == 0, mainline.stdout + mainline.stderr
    assert remote_head(project) == tip


def test_raw_hook_with_a_vanished_interpreter_lets_the_push_through(project: Repo) -> None:
    subprocess.run([CI_RISK, "install"], cwd=project.path, check=True, capture_output=True)
    hook = project.path / ".git" / "hooks" / "pre-push"
    hook.write_text(hook.read_text().replace("PYTHON=", "PYTHON=/nonexistent/python #", 1))
    safe_change(project)
    proc = push(project, {"CI_RISK_MODE": "block", "CI_RISK_BLOCK_AT": "0"})
    assert proc.returncode == 0
    assert "push not checked" in proc.stderr


def test_a_push_from_a_partial_clone_fetches_nothing_and_says_in_one_line_what_it_could_not_read(
    project: Repo, hook_repo: tuple[Path, str], tmp_path: Path
) -> None:
    """A `--filter=blob:none` clone pushing through pre-commit: the hook reads what is here (no lazy fetch of old
    blobs from the promisor remote), scores with the history features trees give, and says LT is unknown."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "-C", str(remote), "config", "uploadpack.allowFilter", "true"], check=True)
    clone = Repo(tmp_path / "partial")
    subprocess.run(["git", "clone", "-q", "--filter=blob:none", f"file://{remote}", str(clone.path)], check=True)
    assert clone.git("config", "remote.origin.promisor") == "true"

    def missing() -> int:
        listed = clone.git("rev-list", "--objects", "--all", "--missing=print", env={"GIT_NO_LAZY_FETCH": "1"})
        return sum(1 for line in listed.splitlines() if line.startswith("?"))

    _install_pre_commit(clone, hook_repo)
    clone.clock = project.clock
    tip = safe_change(clone)
    before = missing()
    assert before > 0
    pushed = push(clone)
    out = pushed.stdout + pushed.stderr
    assert pushed.returncode == 0, out
    assert remote_head(clone) == tip
    assert missing() == before
    said = [line.strip() for line in out.splitlines() if "missing from this clone" in line]
    assert said == ["note: earlier file contents are missing from this clone: LT (the changed files' size) is unknown"]
