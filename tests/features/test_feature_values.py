"""History features with values a reader can check by hand (each kills a named mutation in scripts/mutants.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_risk_hook.features.analysis import analyze
from ci_risk_hook.features.extract import Limits
from ci_risk_hook.git import repo as git
from ci_risk_hook.git.ranges import PushRange
from ci_risk_hook.mining.backfill import backfill_commits
from ci_risk_hook.outcomes.store import open_store
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


def test_recent_experience_weighs_each_commit_by_its_age_in_years(repo: Repo) -> None:
    """Kamei's REXP: 1/(whole years ago + 1) per earlier commit, not a count of the last 90 days."""
    author = "Long Timer <long@example.com>"
    now = T0 + 1000 * DAY
    for i in range(3):  # 2.5 years ago: 1/3 each
        repo.commit({f"src/m{i}.py": lines(3)}, f"old work {i}", author=author, at=now - 913 * DAY + i)
    for i in range(2):  # half a year ago: 1 each, but older than 90 days
        repo.commit({f"src/n{i}.py": lines(3)}, f"new work {i}", author=author, at=now - 180 * DAY + i)
    repo.commit({"src/n1.py": lines(5)}, "last week", author=author, at=now - 7 * DAY)
    base = repo.head()
    repo.commit({"src/n0.py": lines(4)}, "today", author=author, at=now)
    values = push_features(repo, base)
    assert values["author_exp"] == 6
    assert values["author_rexp"] == pytest.approx(3 * (1 / 3) + 2 + 1)


def test_backfill_weighs_experience_as_the_index_does(repo: Repo, tmp_path: Path) -> None:
    author = "Long Timer <long@example.com>"
    year = 31_557_600  # 365.25 days: a commit exactly one year before the last is of age 1
    for i, ago in enumerate((2000 * DAY, 1500 * DAY, 2 * year, 400 * DAY, year, 365 * DAY, 364 * DAY, 10 * DAY, 0)):
        repo.commit({f"src/m{i % 3}.py": lines(3 + i)}, f"work {i}", author=author, at=T0 + 3000 * DAY - ago)
    store = open_store(str(tmp_path / "h.sqlite"))
    repo_id = store.repository_id(repo.git("rev-list", "--max-parents=0", "HEAD"))
    backfill_commits(store, repo_id, cwd=str(repo.path))
    stored = {sha: values["author_rexp"] for sha, _, _, values in store.commit_features(repo_id)}
    info = git.repo_info(str(repo.path))
    for sha in repo.git("rev-list", "HEAD").split()[:-1]:
        push = PushRange(tip=sha, exclude=(sha + "^",))
        assert stored[sha] == analyze(push, info, Limits(), cwd=str(repo.path)).values["author_rexp"], sha
    store.close()
