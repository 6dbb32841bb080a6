"""Fixtures that build real git repositories in temporary directories.

Every test runs with HOME, CI_RISK_HOME and git's global config pointed at
temporary places, so no test reads or writes a real user's files.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Mapping, Union

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

Content = Union[str, bytes, None]  # None deletes the file


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CI_RISK_HOME", str(home / "ci-risk"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    for name in list(os.environ):
        if name.startswith(("PRE_COMMIT_", "CI_RISK_")) and name not in ("CI_RISK_HOME",):
            monkeypatch.delenv(name, raising=False)
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test Person\n\temail = test@example.com\n"
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n[protocol \"file\"]\n\tallow = always\n"
    )
    yield


class Repo:
    """A real git repository with helpers to commit as different authors at chosen times."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.clock = 1_600_000_000

    def git(self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            ["git", *args], cwd=self.path, input=input, capture_output=True,
            env={**os.environ, **(env or {})},
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
        return proc.stdout.decode("utf-8", "surrogateescape").strip()

    def commit(
        self,
        files: Mapping[str, Content],
        message: str = "change",
        author: str = "Test Person <test@example.com>",
        at: int | None = None,
    ) -> str:
        for name, content in files.items():
            target = self.path / name
            if content is None:
                self.git("rm", "-q", "--", name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
            self.git("add", "--", name)
        self.clock = at if at is not None else self.clock + 3600
        name, _, email = author.partition(" <")
        date = f"{self.clock} +0000"
        env = {
            "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email.rstrip(">"), "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email.rstrip(">"), "GIT_COMMITTER_DATE": date,
        }
        self.git("commit", "-q", "--no-verify", "--no-gpg-sign", "--allow-empty", "-m", message, env=env)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")


def make_repo(path: Path) -> Repo:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    return Repo(path)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "repo")


def lines(n: int, prefix: str = "line") -> str:
    return "".join(f"{prefix} {i}\n" for i in range(n))


@pytest.fixture
def history_repo(tmp_path: Path) -> Repo:
    """A small project with a regular maintainer's history before any test adds commits."""
    r = make_repo(tmp_path / "project")
    r.commit({"src/app.py": lines(50), "README.md": "# app\n", "setup.py": "setup()\n"}, "initial import",
             author="Maintainer <maint@example.com>")
    for i in range(5):
        r.commit({"src/app.py": lines(51 + i), "tests/test_app.py": lines(10 + i, "test")}, f"improve app {i}",
                 author="Maintainer <maint@example.com>")
    return r


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`ci-risk ARGS` in-process: (exit code, stdout, stderr)."""
    from ci_risk_hook import cli

    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- CI runs everything --------------------------------------------------------
# Locally a test may skip, visibly, when the browser or the PostgreSQL server is
# missing. With CI=true a skip means something CI was meant to prove went
# unproven, so the run fails.

def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if _ci() and skipped:
        terminalreporter.write_line(f"CI=true: {len(skipped)} skipped test(s) fail this run; CI must run every test",
                                    red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if _ci() and reporter is not None and reporter.stats.get("skipped") and session.exitstatus == 0:
        session.exitstatus = 1
