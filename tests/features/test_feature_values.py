"""History features with values a reader can check by hand (each kills a named mutation in scripts/mutants.py)."""

from __future__ import annotations

import pytest

from ci_risk_hook.features.analysis import analyze
from ci_risk_hook.features.extract import Limits
from ci_risk_hook.git import repo as git
from ci_risk_hook.git.ranges import PushRange
from testing.repos import Repo, lines

DAY = 86_400
T0 = 1_600_000_000


def push_features(repo: Repo, base: str) -> dict[str, float | None]:
    info = git.repo_info(str(repo.path))
    push = PushRange(tip=repo.head(), exclude=(base,))
    return analyze(push, info, Limits(), cwd=str(repo.path)).values


def test_file_age_is_the_mean_days_since_each_changed_file_first_appeared(repo: Repo) -> None:
    repo.commit({"src/old.py": lines(5)}, "add old", at=T0)
    repo.commit({"src/young.py": lines(5)}, "add young", at=T0 + 30 * DAY)
    base = repo.commit({"README.md": "x\n"}, "docs", at=T0 + 35 * DAY)
    repo.commit({"src/old.py": lines(6), "src/young.py": lines(6)}, "touch both", at=T0 + 40 * DAY)
    values = push_features(repo, base)
    assert values["file_age_days"] == pytest.approx((40 + 10) / 2)
    assert values["days_since_file_change"] == pytest.approx((40 + 10) / 2)


def test_recent_experience_counts_fewer_commits_than_all_experience(repo: Repo) -> None:
    author = "Long Timer <long@example.com>"
    for i in range(4):  # a year ago
        repo.commit({f"src/m{i}.py": lines(3)}, f"old work {i}", author=author, at=T0 + i * DAY)
    for i in range(2):  # last week
        repo.commit({f"src/n{i}.py": lines(3)}, f"new work {i}", author=author, at=T0 + (365 + i) * DAY)
    base = repo.head()
    repo.commit({"src/n0.py": lines(4)}, "today", author=author, at=T0 + 367 * DAY)
    values = push_features(repo, base)
    assert values["author_exp"] == 6
    assert values["author_rexp"] is not None and 0 < values["author_rexp"] < values["author_exp"], values
