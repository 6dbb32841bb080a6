"""Two `record`s of one CI job at once: only the one whose row went in says "(new)".

Under PostgreSQL the second INSERT waits for the first session's row and then
updates it; counting the builds before and after, it used to see that row
arrive too and said "(new)" as well.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ci_risk_hook.outcomes.records import BuildRecord
from ci_risk_hook.outcomes.store import open_store
from testing.postgres import fresh_schema
from testing.repos import Repo

CI_RISK = str(Path(sys.executable).parent / "ci-risk")


def waiting_on_a_lock(url: str) -> bool:
    """Whether some session of this server waits for a row lock (the second INSERT, on the first's row)."""
    import psycopg

    with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO builds%'"
        ).fetchone()
    return bool(row and row[0])


def test_a_record_that_waited_on_the_same_job_says_updated_not_new(history_repo: Repo) -> None:
    with fresh_schema() as url:
        env = {**os.environ, "CI_RISK_DB": url}
        setup = subprocess.run(  # creates the schema and this repository's row
            [CI_RISK, "record", "--status", "pass", "--commit", "HEAD~1"], cwd=history_repo.path, env=env
        )
        assert setup.returncode == 0
        tip = history_repo.head()
        first = open_store(url)
        try:
            (repo_id,) = [r[0] for r in first.repositories()]
            with first.transaction():  # the first `record` of the job, its row written and not yet committed
                first.upsert_builds(repo_id, [BuildRecord(commit=tip, status="fail", source="record")])
                second = subprocess.Popen(
                    [CI_RISK, "record", "--status", "pass", "--commit", tip],
                    cwd=history_repo.path,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                while not waiting_on_a_lock(url):  # the second INSERT now waits for this row (a condition, no timing)
                    assert second.poll() is None, second.communicate()
                    time.sleep(0.05)  # between looks, not a limit
            out, err = second.communicate(timeout=120)  # a hang guard only
        finally:
            first.close()
        assert second.returncode == 0, err
        assert "(already recorded: updated)" in out, out
        check = open_store(url, create=False)
        try:
            assert [b.status for b in check.builds(repo_id) if b.commit == tip] == ["pass"]
        finally:
            check.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upsert_counts_the_rows_it_inserted(backend: str, tmp_path: Path) -> None:
    def count(url: str) -> None:
        store = open_store(url)
        try:
            repo_id = store.repository_id("r" * 40)
            builds = [BuildRecord(commit=c * 40, status="pass", source="import") for c in "abc"]
            assert store.upsert_builds(repo_id, builds) == 3
            again = [builds[0]._replace(status="fail"), BuildRecord(commit="d" * 40, status="pass", source="import")]
            assert store.upsert_builds(repo_id, again) == 1
        finally:
            store.close()

    if backend == "sqlite":
        count(str(tmp_path / "history.sqlite"))
    else:
        with fresh_schema() as url:
            count(url)
