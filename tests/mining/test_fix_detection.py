"""Which commits SZZ takes as fixes, and the issue-date and candidate bounds on what they blame (issue 12, fix 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ci_risk_hook.mining import labels
from testing.repos import Repo

T0 = 1_600_000_000
DAY = 86_400


def blamed(repo: Repo, **kwargs: Any) -> tuple[dict[str, tuple[str, ...]], labels.SzzStats]:
    """{labelled subject: fix subjects}, and the stats."""
    names = dict(line.split(" ", 1) for line in repo.git("log", "--format=%H %s").splitlines())
    result = labels.szz(str(repo.path), **kwargs)
    return {names[lb.commit]: tuple(names[e] for e in lb.evidence) for lb in result.labels}, result.stats


def with_a_change(repo: Repo, message: str) -> None:
    repo.commit({"src/app.py": "a = 1\nb = 2\n"}, "add values", at=T0)
    repo.commit({"src/app.py": "a = 1\nb = 3\n"}, message, at=T0 + DAY)


@pytest.mark.parametrize(
    "message",
    [
        "Update app\n\nMerge branch 'patch-1' of github.com:someone/app",
        "Tune b\n\nTested the patch on a bug-free machine; no regression.",
        "Apply patch from Bob",
        "ZOOKEEPER-12: make b configurable",  # an issue key alone says nothing of its kind
        "Tune b\n\nCloses #4",  # closing an issue may finish a feature
    ],
)
def test_words_in_the_body_or_a_bare_issue_key_do_not_make_a_fix(repo: Repo, message: str) -> None:
    with_a_change(repo, message)
    assert blamed(repo)[0] == {}


@pytest.mark.parametrize(
    "message",
    [
        "Fix b for empty input",
        "Handle b crashes",
        "Tune b\n\nFixes #4",
        "Tune b\n\nThis fixes ZOOKEEPER-12 as reported.",
    ],
)
def test_a_fix_in_the_subject_or_fixes_an_issue_in_the_message(repo: Repo, message: str) -> None:
    with_a_change(repo, message)
    assert blamed(repo)[0] == {"add values": (message.split("\n")[0],)}


def test_with_a_tracker_fixes_are_the_commits_linked_to_bug_reports(repo: Repo) -> None:
    repo.commit({"src/app.py": "a = 1\nb = 2\nc = 3\n"}, "add values", at=T0)
    repo.commit({"src/app.py": "a = 1\nb = 3\nc = 3\n"}, "ZOOKEEPER-12: make b right", at=T0 + 2 * DAY)
    repo.commit({"src/app.py": "a = 1\nb = 3\nc = 4\n"}, "ZOOKEEPER-13: fix c for the new API", at=T0 + 3 * DAY)
    repo.commit({"src/app.py": "a = 2\nb = 3\nc = 4\n"}, "Bug in a", at=T0 + 4 * DAY)
    bugs = {"ZOOKEEPER-12": T0 + DAY}  # 13 is an improvement in the tracker; "Bug in a" names no issue
    found, _ = blamed(repo, bugs=bugs)
    assert found == {"add values": ("Bug in a", "ZOOKEEPER-12: make b right")}


@pytest.mark.parametrize(
    "subject",
    [
        "https://issues.apache.org/jira/browse/AMQ-12",  # ActiveMQ's usual subject: the report's address
        "fix for: https://issues.apache.org/jira/browse/AMQ-12 - b off by one",
    ],
)
def test_a_tracker_link_to_the_bug_report_names_its_key(repo: Repo, subject: str) -> None:
    with_a_change(repo, subject)
    assert labels.issue_keys(subject) == ["AMQ-12"]
    assert blamed(repo, bugs={"AMQ-12": T0 + DAY // 2})[0] == {"add values": (subject,)}


def test_a_key_inside_another_path_is_not_the_commits_own(repo: Repo) -> None:
    assert labels.issue_keys("Bump docs/ABC-12 page and org/app#4") == []


def test_lines_changed_after_the_bug_was_reported_are_not_blamed(repo: Repo) -> None:
    repo.commit({"src/app.py": "a = 1\nb = 2\n"}, "add values", at=T0)
    repo.commit({"src/app.py": "a = 1\nb = 5\n"}, "retune b", at=T0 + 10 * DAY)
    repo.commit({"src/app.py": "a = 3\nb = 6\n"}, "ABC-7 repair a and b", at=T0 + 20 * DAY)
    found, stats = blamed(repo, bugs={"ABC-7": T0 + 5 * DAY})
    assert found == {"add values": ("ABC-7 repair a and b",)}
    assert stats.lines_skipped_issue_date == 1, stats
    found, _ = blamed(repo, bugs={"ABC-7": T0 + 15 * DAY})
    assert set(found) == {"add values", "retune b"}


def test_a_fix_blaming_more_commits_than_the_cap_labels_none(repo: Repo) -> None:
    repo.commit({"src/app.py": "a = 1\nb = 2\nc = 3\n"}, "add a", at=T0)
    repo.commit({"src/app.py": "a = 1\nb = 20\nc = 3\n"}, "tune b", at=T0 + DAY)
    repo.commit({"src/app.py": "a = 1\nb = 20\nc = 30\n"}, "tune c", at=T0 + 2 * DAY)
    repo.commit({"src/app.py": "a = 9\nb = 9\nc = 9\n"}, "Fix everything", at=T0 + 3 * DAY)
    found, stats = blamed(repo, max_candidates=2)
    assert found == {} and stats.fixes_skipped_candidates == 1 and stats.lines_blamed == 0, stats
    found, stats = blamed(repo)
    assert set(found) == {"add a", "tune b", "tune c"} and stats.fixes_skipped_candidates == 0


def test_a_tracker_export_is_read_with_dates_and_numbers(tmp_path: Path) -> None:
    export = tmp_path / "bugs.csv"
    export.write_text(
        "key,created\nZOOKEEPER-12,2020-09-13T12:26:40Z\nzookeeper-13,1600000000\n#7,2020-09-13\n\n12,0\n"
    )
    assert labels.load_bug_issues(str(export)) == {
        "ZOOKEEPER-12": T0,
        "ZOOKEEPER-13": T0,
        "#7": 1599955200,
        "#12": 0,
    }
    export.write_text("key,created\nABC-1,yesterday-ish\n")
    with pytest.raises(labels.BugIssuesError, match=r"bugs.csv:2: REPORTED"):
        labels.load_bug_issues(str(export))


APP = "def area(w, h):\n    return w * h\n\n\ndef name():\n    return 'app'\n\n\ndef size():\n    return 3\n"


@pytest.mark.parametrize(
    "old, new",
    [("src/app.py", "src/core.py"), ('src/we"ird\\name.py', "src/core.py"), ("src/naïve dir/app.py", 'src/a "b".py')],
)
def test_a_fix_that_renames_the_file_it_repairs_blames_the_lines_under_the_old_name(
    repo: Repo, old: str, new: str
) -> None:
    repo.commit({old: APP}, "add app", at=T0)
    repo.commit({"src/other.py": "x = 1\n"}, "unrelated", at=T0 + DAY)
    (repo.path / new).parent.mkdir(parents=True, exist_ok=True)
    repo.git("mv", old, new)
    repo.commit({new: APP.replace("w * h", "abs(w * h)")}, "Fix area for negative sizes", at=T0 + 2 * DAY)
    assert blamed(repo)[0] == {"add app": ("Fix area for negative sizes",)}


def test_a_pure_rename_in_a_fix_blames_no_one(repo: Repo) -> None:
    repo.commit({"src/app.py": APP, "src/b.py": "b = 1\n"}, "add app", at=T0)
    repo.git("mv", "src/app.py", "src/core.py")
    repo.commit({"src/b.py": "b = 2\n"}, "Fix b and move app", at=T0 + DAY)
    assert blamed(repo)[0] == {"add app": ("Fix b and move app",)}
    assert blamed(repo)[1].files_blamed == 1
