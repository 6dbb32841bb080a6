"""Concurrent first runs against one PostgreSQL database migrate once, in turn (the advisory lock), every time.

Eight racing writers catch a missing lock only when the race happens to
interleave. Here the interleaving is forced: the test holds the lock as a
migrator caught mid-way, and only lets go once ci-risk is seen waiting.
"""

from __future__ import annotations

import threading
import time
from typing import Iterator

import pytest

from ci_risk_hook.outcomes.store import _PG_LOCK_KEY, SCHEMA_VERSION, open_store
from testing.postgres import fresh_schema


@pytest.fixture
def fresh_schema_url() -> Iterator[str]:
    with fresh_schema("ci_risk_lock") as url:
        yield url


def test_a_second_migrator_waits_for_the_first_and_then_migrates_once(fresh_schema_url: str) -> None:
    import psycopg

    other = psycopg.connect(fresh_schema_url)  # a transaction, as a migrator in another process would hold
    other.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_KEY,))
    other.execute(
        "CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
        "applied_at BIGINT NOT NULL)"
    )
    outcome: dict[str, object] = {}
    # Its own name on the server: another test process migrating meanwhile waits for the same lock.
    application = f"ci-risk-lock-test-{other.info.backend_pid}"

    def first_run() -> None:
        try:
            store = open_store(f"{fresh_schema_url}&application_name={application}")
            outcome["version"] = store.schema_version()
            store.close()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    runner = threading.Thread(target=first_run)
    runner.start()
    try:
        waited = False
        deadline = time.monotonic() + 60
        with psycopg.connect(fresh_schema_url, autocommit=True) as watcher:
            while time.monotonic() < deadline and runner.is_alive():
                waiting = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = %s",
                    (application,),
                ).fetchone()
                if waiting and waiting[0]:
                    waited = True
                    break
                time.sleep(0.05)
        assert waited, f"ci-risk did not wait for the migration in progress: {outcome}"
    finally:
        other.commit()
        other.close()
        runner.join(60)
    assert "error" not in outcome, f"the second migrator failed instead of waiting its turn: {outcome.get('error')}"
    assert outcome["version"] == SCHEMA_VERSION
    store = open_store(fresh_schema_url)
    versions = [r[0] for r in store.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()]
    store.close()
    assert versions == list(range(1, SCHEMA_VERSION + 1))
