"""CI tests: no variable of the CI running the tests leaks in; real repositories and shallow clones of them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from testing.repos import Repo, built_once, lines, make_repo

CI_PREFIXES = ("GITHUB_", "GITLAB_", "CI_", "JENKINS_", "GIT_", "BUILDKITE", "TF_BUILD", "CIRCLE", "SYSTEM_", "BUILD_")


@pytest.fixture(autouse=True)
def no_ci_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    keep = ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM", "CI_RISK_HOME", "CI_RISK_CONFIG", "CI_RISK_INDEX_BUDGET")
    for name in list(os.environ):
        if name.startswith(CI_PREFIXES) and name not in keep and not name.startswith("CI_RISK_STORE"):
            monkeypatch.delenv(name, raising=False)
    for name in ("CI", "JENKINS_URL", "BRANCH_NAME", "CHANGE_ID", "CHANGE_TARGET"):
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture
def upstream(tmp_path: Path) -> Repo:
    """A project with 30 commits on main and a 3-commit branch `feature` forked from main~5."""
    r = make_repo(tmp_path / "upstream")
    built_once(r, "ci upstream", _main_and_feature)
    return r


def _main_and_feature(r: Repo) -> None:
    r.commit({"src/app.py": lines(40), "README.md": "# app\n"}, "initial import")
    for i in range(29):
        r.commit({"src/app.py": lines(41 + i), "tests/test_app.py": lines(5 + i, "t")}, f"main change {i}")
    r.git("checkout", "-q", "-b", "feature", "HEAD~5")
    for i in range(3):
        r.commit({f"src/feature{i}.py": lines(10 + i)}, f"feature step {i}")
    r.git("checkout", "-q", "main")
