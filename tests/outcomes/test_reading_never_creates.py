"""Commands that only read the history store write nothing to it: no store, no tables, no repository row.

A mistyped `--db` used to answer "no history" from a new empty SQLite file and leave the file behind; an empty
PostgreSQL database got ci-risk's tables from a reading command; a store that did not know the repository got a
row for it. The dashboard showed an empty page for a store that was not there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from ci_risk_hook.outcomes.store import open_store
from testing.postgres import fresh_schema
from testing.repos import Repo
from testing.repos import run_cli as run

READERS = [
    ["history"],
    ["monitor"],
    ["backtest"],
    ["train", "--out", "model.json"],
    ["retrain"],
    ["retrain", "--all-repos", "--out", "model.json"],
    ["report", "--out", "charts"],
    ["dashboard", "--host", "256.0.0.1"],  # were the store accepted, the bad address would end it: no server
]
NOT_THERE = "no history store there (reading commands never create one; `record` or `import` do)"


def refusal(where: object) -> str:
    return f"Error: {where}: {NOT_THERE}\n"


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_reading_command_refuses_a_store_that_is_not_there_and_creates_none(
    project: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    absent = tmp_path / "typo" / "history.sqlite"
    code, out, err = run([*command, "--db", str(absent)], capsys)
    assert code == 1, (out, err)
    assert err == refusal(absent)
    assert not absent.exists() and not absent.parent.exists()


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_reading_command_refuses_an_empty_file_and_leaves_it_empty(
    project: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    code, out, err = run([*command, "--db", str(empty)], capsys)
    assert (code, err) == (1, refusal(empty)), out
    assert empty.read_bytes() == b"" and sorted(p.name for p in tmp_path.iterdir() if "empty" in p.name) == [
        "empty.sqlite"
    ]


def tables(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        return sorted(r[0] for r in rows)


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_reading_command_refuses_an_empty_postgresql_database_and_creates_no_table(
    project: Repo, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    with fresh_schema() as url:
        code, out, err = run([*command, "--db", url], capsys)
        assert code == 1, (out, err)
        assert err.startswith("Error: postgresql://") and err.endswith(f": {NOT_THERE}\n"), err
        assert tables(url) == []


@pytest.fixture(params=["sqlite", "postgresql"])
def other_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A ci-risk store holding another repository's history only."""
    if request.param == "sqlite":
        url = str(tmp_path / "other" / "history.sqlite")
        yield from _with_other_repository(url)
    else:
        with fresh_schema() as url:
            yield from _with_other_repository(url)


def _with_other_repository(url: str) -> Iterator[str]:
    store = open_store(url)
    try:
        store.repository_id("f" * 40, "someone-else")
    finally:
        store.close()
    yield url


def repositories(url: str) -> list[str]:
    store = open_store(url, create=False)
    try:
        return [r[1] for r in store.repositories()]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("command", "code", "said"),
    [
        (["history"], 0, "total"),
        (["monitor", "--format", "json"], 0, '"predictions": 0'),
        (["backtest"], 1, "no labelled history"),
        (["train", "--out", "model.json"], 1, "no labelled history"),
        (["retrain"], 1, "no labelled history"),
        (["report", "--out", "charts"], 1, "no recorded history to report on"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_a_reading_command_reads_an_unknown_repository_as_empty_history_and_adds_no_row(
    project: Repo,
    other_store: str,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    code: int,
    said: str,
) -> None:
    got, out, err = run([*command, "--db", other_store], capsys)
    assert got == code, (out, err)
    assert said in out + err
    assert "holds no history of this repository (root commit " in err and "yet: `record` or `import` adds it" in err
    assert repositories(other_store) == ["f" * 40]


def test_history_of_an_unknown_repository_is_empty_in_every_format(
    project: Repo, other_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["history", "--format", "json", "--db", other_store], capsys)
    assert code == 0 and json.loads(out) == {"counts": [], "labels": {}, "builds": []}
    code, out, _ = run(["history", "--format", "csv", "--db", other_store], capsys)
    assert code == 0 and out.count("\n") == 1  # the header only
    assert repositories(other_store) == ["f" * 40]


def test_the_dashboard_refuses_a_store_it_cannot_read_instead_of_an_empty_page(
    project: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"not a database" * 100)
    code, out, err = run(["dashboard", "--host", "256.0.0.1", "--db", str(corrupt)], capsys)
    assert code == 1 and "is not a usable SQLite database" in err and "cannot listen" not in err, (out, err)


def test_the_same_command_reads_the_store_once_one_is_recorded(
    project: Repo, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["record", "--status", "pass", "--commit", "HEAD"], capsys)[0] == 0  # the default store: created
    code, out, err = run(["history"], capsys)
    assert code == 0, err
    assert db.exists()


def test_scoring_a_push_reads_an_empty_postgresql_database_without_creating_its_tables(
    project: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_schema() as url:
        monkeypatch.setenv("CI_RISK_DB", url)
        code, out, err = run(["check", "--from", "HEAD~1", "--to", "HEAD"], capsys)
        assert code == 0, (out, err)
        assert "build history unavailable" in out + err and NOT_THERE in out + err
        assert tables(url) == []


def test_monitor_leaves_the_pending_predictions_of_an_unknown_repository_pending_and_adds_no_row(
    project: Repo, other_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`monitor` moved this clone's pending predictions in, and added the repository row they needed: a reading
    command wrote a repository into a store that did not know it. They stay pending for the next writer."""
    from ci_risk_hook.outcomes import spool
    from ci_risk_hook.outcomes.store import Prediction

    git_dir = project.path / ".git"
    row = Prediction(project.head(), None, "main", 0.5, "warn", "warn", "f" * 64, 0.3, 0.8, "hook", "", "a@b.c", 1)
    spool.append(str(git_dir), [row])  # a push's own prediction, as the push leaves it
    pending = (git_dir / "ci-risk" / "predictions-pending.jsonl").read_bytes()
    code, out, err = run(["monitor", "--format", "json", "--db", other_store], capsys)
    assert code == 0, (out, err)
    assert '"predictions": 0' in out and "holds no history of this repository" in err
    assert repositories(other_store) == ["f" * 40]
    assert (git_dir / "ci-risk" / "predictions-pending.jsonl").read_bytes() == pending
    # The next writer moves them in, into the repository it records.
    assert run(["record", "--status", "pass", "--commit", "HEAD", "--db", other_store], capsys)[0] == 0
    assert run(["monitor", "--format", "json", "--db", other_store], capsys)[0] == 0
    assert not (git_dir / "ci-risk" / "predictions-pending.jsonl").exists()
    store = open_store(other_store, create=False)
    try:
        assert [r[0] for r in store.execute("SELECT commit_sha FROM predictions").fetchall()] == [project.head()]
    finally:
        store.close()
