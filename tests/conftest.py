"""Fixtures that build real git repositories in temporary directories.

Every test runs with HOME, CI_RISK_HOME, CI_RISK_CACHE, CI_RISK_CONFIG and git's global config pointed at
temporary places, so no test reads or writes a real user's files.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from testing.postgres import fresh_schema
from testing.repos import Repo, built_once, lines, make_repo


@pytest.fixture
def restored_environ() -> Iterator[None]:
    """The environment as it was, after the test and after monkeypatch's own undo (set up first, torn down last).

    An in-process command may set a variable (`--hash-authors` does, for the stores it opens); monkeypatch
    would even put it back if a test deleted it. Module fixtures of the next file must not see it.
    """
    before = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(before)


@pytest.fixture(autouse=True)
def isolated_env(
    restored_environ: None, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CI_RISK_HOME", str(home / "ci-risk"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    for name in list(os.environ):
        if name.startswith(("PRE_COMMIT_", "CI_RISK_")) and name not in ("CI_RISK_HOME",):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CI_RISK_CACHE", str(home / "cache"))  # pulled team models
    monkeypatch.setenv("CI_RISK_CONFIG", str(home / "ci-risk-config.ini"))  # the user's own config file (absent)
    # The push's time budgets guard latency, not results: on a busy test machine a
    # one-second budget would make history features unknown at random. Tests of
    # the budgets themselves (test_push_budget.py) set them explicitly.
    monkeypatch.setenv("CI_RISK_INDEX_BUDGET", "300")
    monkeypatch.setenv("CI_RISK_STORE_BUDGET", "300")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test Person\n\temail = test@example.com\n"
        '[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n[protocol "file"]\n\tallow = always\n'
    )
    yield


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The store named by CI_RISK_DB: a new SQLite file, then a new schema on the real PostgreSQL server."""
    if request.param == "sqlite":
        url = str(tmp_path / "store" / "history.sqlite")
        monkeypatch.setenv("CI_RISK_DB", url)
        yield url
        return
    with fresh_schema() as url:
        monkeypatch.setenv("CI_RISK_DB", url)
        yield url


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def history_repo(tmp_path: Path) -> Repo:
    """A small project with a regular maintainer's history before any test adds commits."""
    r = make_repo(tmp_path / "project")
    built_once(r, "history_repo", _maintainer_history)
    return r


def _maintainer_history(r: Repo) -> None:
    r.commit(
        {"src/app.py": lines(50), "README.md": "# app\n", "setup.py": "setup()\n"},
        "initial import",
        author="Maintainer <maint@example.com>",
    )
    for i in range(5):
        r.commit(
            {"src/app.py": lines(51 + i), "tests/test_app.py": lines(10 + i, "test")},
            f"improve app {i}",
            author="Maintainer <maint@example.com>",
        )


# -- S3: moto's standalone server on loopback, as s3fs's own tests use ------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server; the process's environment points S3 clients at it."""
    import boto3

    from testing.published import aws_env

    for name, value in aws_env(moto_endpoint).items():
        monkeypatch.setenv(name, value)
    bucket = f"team-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    return bucket


# -- CI runs everything --------------------------------------------------------
# Locally a test may skip, visibly, when the browser or the PostgreSQL server is
# missing. With CI=true a skip means something CI was meant to prove went
# unproven, so the run fails.


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if _ci() and skipped:
        terminalreporter.write_line(
            f"CI=true: {len(skipped)} skipped test(s) fail this run; CI must run every test", red=True
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if _ci() and reporter is not None and reporter.stats.get("skipped") and session.exitstatus == 0:
        session.exitstatus = 1


# The files that take longest start first, longest first (measured: busy seconds per file on a worker): with two
# workers taking whole files (scripts/test.sh), a slow file handed out last keeps one worker busy while the other
# has nothing left to do. The rest follow in collection order, small files that fill the end evenly. scripts/test.sh
# keeps this order (pytest-xdist otherwise hands out the files with the most tests first).
SLOW_FILES_FIRST = (
    "tests/views/test_demo.py",
    "tests/views/test_report.py",
    "tests/model/test_shared_history.py",
    "tests/gate/test_push_e2e.py",
    "tests/model/test_training.py",
    "tests/model/test_bounded.py",
    "tests/examples/test_ci_examples.py",
    "tests/views/test_dashboard.py",
    "tests/distribution/test_team_model.py",
    "tests/gate/test_push_budget.py",
    "tests/gate/test_trust.py",
    "tests/gate/test_prediction_recording.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return SLOW_FILES_FIRST.index(path) if path in SLOW_FILES_FIRST else len(SLOW_FILES_FIRST)

    items.sort(key=rank)
