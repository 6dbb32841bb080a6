"""A fresh schema on the real PostgreSQL server for one test, dropped afterwards.

PostgreSQL tests run when CI_RISK_TEST_POSTGRES_URL is set (`.ci/run` sets it to
this machine's server) and are skipped, with that reason shown, otherwise; with
CI=true a skip fails the run.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest

PG_URL = os.environ.get("CI_RISK_TEST_POSTGRES_URL")
SKIP_REASON = "PostgreSQL tests need CI_RISK_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)"


@contextmanager
def fresh_schema(prefix: str = "ci_risk_test") -> Iterator[str]:
    """A store URL whose search_path is a new, empty schema (skips the test without a server)."""
    if not PG_URL:
        pytest.skip(SKIP_REASON)
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
