"""`record --ci` / `run --ci`: the job's outcome under the CI system's ids; reruns update, new attempts add."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from testing.postgres import fresh_schema
from testing.repos import Repo, shallow_clone
from testing.repos import run_cli as run


def github(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, before: str, after: str, attempt: str = "1") -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"before": before, "after": after}))
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REF_NAME": "main",
        "GITHUB_RUN_ID": "900",
        "GITHUB_RUN_ATTEMPT": attempt,
        "GITHUB_JOB": "tests",
        "GITHUB_REPOSITORY": "owner/upstream",
    }.items():
        monkeypatch.setenv(name, value)


def rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT commit_sha, branch, status, job_id, attempt, source FROM builds ORDER BY id"
        ).fetchall()


def test_record_ci_is_idempotent_per_attempt_in_a_shallow_clone(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.sqlite"
    monkeypatch.setenv("CI_RISK_DB", str(db))
    clone = shallow_clone(upstream, tmp_path / "clone", "main")
    clone.git("checkout", "-q", "--detach")  # as CI checkouts are
    tip = upstream.head()
    github(monkeypatch, tmp_path, upstream.git("rev-parse", "main~1"), tip)
    monkeypatch.chdir(clone.path)
    code, out, err = run(["record", "--ci", "--status", "success"], capsys)
    assert code == 0, err
    assert "GitHub Actions job 900/tests attempt 1" in out and "(new)" in out
    code, out, err = run(["record", "--ci", "--status", "failure"], capsys)  # the same step again: same row
    assert code == 0 and "already recorded: updated" in out
    assert rows(db) == [(tip, "main", "fail", "900/tests", 1, "record")]
    github(monkeypatch, tmp_path, upstream.git("rev-parse", "main~1"), tip, attempt="2")
    code, out, err = run(["record", "--ci", "--status", "success"], capsys)
    assert code == 0 and "(new)" in out
    assert [r[2:5] for r in rows(db)] == [("fail", "900/tests", 1), ("pass", "900/tests", 2)]
    with sqlite3.connect(db) as conn:  # the CI slug names the repository: later shallow runs find it by it
        assert conn.execute("SELECT name FROM repositories").fetchall() == [("owner/upstream",)]


def test_a_later_shallow_run_finds_the_repository_by_its_slug_without_fetching(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.sqlite"
    monkeypatch.setenv("CI_RISK_DB", str(db))
    github(monkeypatch, tmp_path, upstream.git("rev-parse", "main~1"), upstream.head())
    monkeypatch.chdir(upstream.path)
    assert run(["record", "--ci", "--status", "success"], capsys)[0] == 0
    clone = shallow_clone(upstream, tmp_path / "clone", "main")
    monkeypatch.chdir(clone.path)
    monkeypatch.setenv("CI_RISK_DEEPEN_BUDGET", "0")  # no time to unshallow: only the slug can identify it
    monkeypatch.setenv("GITHUB_RUN_ID", "901")
    code, out, err = run(["record", "--ci", "--status", "failure"], capsys)
    assert code == 0, err
    assert clone.git("rev-parse", "--is-shallow-repository") == "true"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM repositories").fetchone() == (1,)
    assert len(rows(db)) == 2


def test_gitlab_status_from_after_script_and_cancelled_is_not_an_outcome(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.sqlite"
    monkeypatch.setenv("CI_RISK_DB", str(db))
    monkeypatch.chdir(upstream.path)
    for name, value in {
        "GITLAB_CI": "true",
        "CI_COMMIT_SHA": upstream.head(),
        "CI_COMMIT_REF_NAME": "main",
        "CI_PIPELINE_ID": "3",
        "CI_JOB_ID": "30",
        "CI_JOB_STATUS": "failed",
        "CI_JOB_STARTED_AT": "2026-01-01T10:00:00Z",
    }.items():
        monkeypatch.setenv(name, value)
    code, out, err = run(["record", "--ci"], capsys)
    assert code == 0 and "failed from CI_JOB_STATUS" in out, err
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status, job_id, started_at FROM builds").fetchall() == [
            ("fail", "3/30", 1767261600)
        ]
    monkeypatch.setenv("CI_JOB_STATUS", "canceled")
    monkeypatch.setenv("CI_JOB_ID", "31")
    code, out, _ = run(["record", "--ci"], capsys)
    assert code == 0 and "not recorded" in out and len(rows(db)) == 1


def test_record_ci_needs_a_status_where_the_system_gives_none(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    github(monkeypatch, tmp_path, upstream.git("rev-parse", "main~1"), upstream.head())
    monkeypatch.chdir(upstream.path)
    code, _, err = run(["record", "--ci"], capsys)
    assert code == 2 and "--status" in err


def test_run_ci_records_into_postgresql_with_its_measured_duration(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with fresh_schema() as url:
        import psycopg

        monkeypatch.setenv("CI_RISK_DB", url)
        github(monkeypatch, tmp_path, upstream.git("rev-parse", "main~1"), upstream.head())
        monkeypatch.chdir(upstream.path)
        code, _, err = run(["run", "--ci", "--", "sh", "-c", "exit 4"], capsys)
        assert code == 4 and "900/tests attempt 1" in err
        code, _, err = run(["run", "--ci", "--", "true"], capsys)  # the same job again: the same row
        assert code == 0 and "already recorded: updated" in err
        with psycopg.connect(url) as conn:
            found = conn.execute(
                "SELECT status, job_id, attempt, branch, duration_s IS NOT NULL FROM builds"
            ).fetchall()
        assert found == [("pass", "900/tests", 1, "main", True)]


def test_matrix_legs_keep_their_own_rows_with_job_id(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """GitHub gives every leg of a matrix the same GITHUB_JOB: --job-id tells them apart."""
    db = tmp_path / "store.sqlite"
    monkeypatch.setenv("CI_RISK_DB", str(db))
    github(monkeypatch, tmp_path, upstream.git("rev-parse", "main~1"), upstream.head())
    monkeypatch.chdir(upstream.path)
    for leg, status in (("tests-3.9", "success"), ("tests-3.12", "failure")):
        code, out, err = run(["record", "--ci", "--status", status, "--job-id", leg], capsys)
        assert code == 0, err
    assert [r[2:5] for r in rows(db)] == [("pass", "900/tests-3.9", 1), ("fail", "900/tests-3.12", 1)]
    code, _, err = run(["record", "--ci", "--status", "success", "--commit", "HEAD~1"], capsys)
    assert code == 2 and "no --commit/--base" in err


def test_status_words_of_each_ci_system() -> None:
    from ci_risk_hook.ci.detect import CiEnvError
    from ci_risk_hook.ci.job import status_of

    assert status_of("UNSTABLE", {}) == ("fail", "UNSTABLE from --status")  # Jenkins: tests failed
    assert status_of("ABORTED", {})[0] is None
    assert status_of(None, {"AGENT_JOBSTATUS": "SucceededWithIssues"}) == (
        "pass",
        "SucceededWithIssues from AGENT_JOBSTATUS",
    )
    assert status_of("failure", {"CI_JOB_STATUS": "success"})[0] == "fail"  # the option wins
    with pytest.raises(CiEnvError, match="CI_JOB_STATUS: unknown status"):
        status_of(None, {"CI_JOB_STATUS": "\x1b[31mgreen?"})


@pytest.mark.parametrize("started", ["not-a-time", "2999-01-01T00:00:00Z"])
def test_a_bad_ci_job_started_at_costs_the_duration_not_the_outcome(
    started: str, upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """after_script is the last chance to record the job: a malformed or future start is left out, said so."""
    db = tmp_path / "store.sqlite"
    monkeypatch.setenv("CI_RISK_DB", str(db))
    monkeypatch.chdir(upstream.path)
    for name, value in {
        "GITLAB_CI": "true",
        "CI_COMMIT_SHA": upstream.head(),
        "CI_COMMIT_REF_NAME": "main",
        "CI_PIPELINE_ID": "4",
        "CI_JOB_ID": "40",
        "CI_JOB_STATUS": "failed",
        "CI_JOB_STARTED_AT": started,
    }.items():
        monkeypatch.setenv(name, value)
    code, out, err = run(["record", "--ci"], capsys)
    assert code == 0, err
    assert "duration unknown" in out and "CI_JOB_STARTED_AT ignored" in out
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status, job_id, started_at, duration_s FROM builds").fetchall() == [
            ("fail", "4/40", None, None)
        ]
