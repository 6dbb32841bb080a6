"""The history store on a real SQLite file and on the real PostgreSQL server.

PostgreSQL tests run when CI_RISK_TEST_POSTGRES_URL is set (`.ci/run` sets
it to this machine's server) and are skipped, with that reason shown,
otherwise. Each test gets its own PostgreSQL schema, dropped afterwards.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from ci_risk_hook.outcomes.records import BuildRecord
from ci_risk_hook.outcomes.store import SCHEMA_VERSION, StoreError, open_store
from testing.postgres import PG_URL, fresh_schema

SHA = [f"{i:040x}" for i in range(1, 100)]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "history.sqlite")
        return
    with fresh_schema() as url:
        yield url


def build(i: int, status: str = "pass", **kw: object) -> BuildRecord:
    fields = dict(
        commit=SHA[i], status=status, source="csv", branch="main", started_at=1_000 + 100 * i, duration_s=50.0
    )
    fields.update(kw)
    return BuildRecord(**fields)  # type: ignore[arg-type]


def test_migrations_are_recorded_and_applied_once(store_url: str) -> None:
    store = open_store(store_url)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.migrate() == []  # nothing pending on a second look
    rows = store.execute("SELECT version, description FROM schema_migrations").fetchall()
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    store.close()
    again = open_store(store_url)
    assert again.schema_version() == SCHEMA_VERSION
    again.close()


def test_outcomes_are_idempotent_per_commit_source_job_attempt(store_url: str) -> None:
    store = open_store(store_url)
    repo = store.repository_id("a" * 40, "demo")
    assert store.repository_id("a" * 40, "demo") == repo
    assert store.add_builds(repo, [build(1), build(2, "fail")]) == 2
    assert store.add_builds(repo, [build(1), build(2, "fail")]) == 0
    assert store.add_builds(repo, [build(2, "fail", attempt=2)]) == 1
    assert len(store.builds(repo)) == 3
    store.close()


def test_a_rerun_that_passes_marks_the_failure_flaky(store_url: str) -> None:
    store = open_store(store_url)
    repo = store.repository_id("b" * 40)
    store.add_builds(repo, [build(3, "fail", job_id="77", attempt=1)])
    assert not store.builds(repo)[0].flaky
    store.add_builds(repo, [build(3, "pass", job_id="77", attempt=2)])
    flaky = {(b.attempt, b.status): b.flaky for b in store.builds(repo)}
    assert flaky == {(1, "fail"): True, (2, "pass"): False}
    assert store.counts(repo) == [("csv", "fail", 1, 1), ("csv", "pass", 1, 0)]
    store.close()


def test_prior_builds_are_those_finished_before_oldest_first(store_url: str) -> None:
    store = open_store(store_url)
    repo = store.repository_id("c" * 40)
    store.add_builds(
        repo, [build(i, "fail" if i % 3 == 0 else "pass", branch="main" if i % 2 else "dev") for i in range(1, 30)]
    )
    now = 1_000 + 100 * 20  # build 20 starts now; build 19 finished at 1950
    prior = store.prior_builds(repo, now, "main", limit=5)
    assert [p.started_at for p in prior] == sorted(p.started_at for p in prior)
    assert all(p.finished_at <= now for p in prior)
    assert max(p.started_at for p in prior) == 1_000 + 100 * 19
    on_main = [p for p in prior if p.branch == "main"]
    assert len(on_main) == 10  # the 20 latest on the branch, of which ten exist before now
    store.close()


def test_the_build_before_another_on_its_branch_and_pages_of_builds_without_features(store_url: str) -> None:
    """What the feature phase of a large import reads instead of every build at once."""
    store = open_store(store_url)
    repo = store.repository_id("e" * 40)
    plan = [
        build(1),
        build(2, started_at=1_300),
        build(3, branch="dev"),
        build(4),
        build(5, started_at=None),
        build(6, branch=None),
        build(7, branch=None),
        build(2, job_id="rerun"),
    ]
    store.add_builds(repo, plan, [record.commit != SHA[4] for record in plan])
    rows = {(b.commit, b.job_id): b for b in store.builds(repo)}
    previous = {
        f"{SHA.index(commit)}{job}": store.previous_commit_on_branch(repo, b) for (commit, job), b in rows.items()
    }
    assert previous == {
        "1": None,  # the first on main
        "2": None,  # started at 1,300, after its own rerun (1,200): no range of its own
        "3": None,  # the first on dev
        "4": SHA[2],  # a commit this clone lacks still has a build before it...
        "5": SHA[2],  # ...but is nobody's previous build; 5 has no start: recorded later than all
        "6": None,
        "7": SHA[6],  # no branch is a branch of its own
        "2rerun": SHA[1],  # started at 1,200: after build 1 (1,100)
    }
    pending = store.count_builds_without_features(repo)
    assert pending == 7  # the unknown commit never gets features
    seen, after = [], 0
    while page := store.builds_without_features(repo, after_id=after, limit=3):
        seen += [b.id for b in page]
        after = page[-1].id
        store.set_build_features([(page[0].id, "v", None, [], {})])
    assert len(seen) == 7 and seen == sorted(seen)
    assert store.count_builds_without_features(repo) == 7 - 3  # one written per page
    store.close()


def test_flaky_failures_marked_over_the_whole_repository_in_one_statement(store_url: str) -> None:
    store = open_store(store_url)
    repo = store.repository_id("f" * 40)
    other = store.repository_id("9" * 40)
    with store.transaction():
        store.upsert_builds(repo, [build(1, "fail"), build(2, "fail"), build(1, "pass", job_id="2")])
        store.upsert_builds(other, [build(2, "pass")])
    store.mark_flaky(repo)
    assert {(b.commit, b.status): b.flaky for b in store.builds(repo)} == {
        (SHA[1], "fail"): True,
        (SHA[2], "fail"): False,
        (SHA[1], "pass"): False,
    }
    store.close()


WRITER = textwrap.dedent("""
    import sys
    from ci_risk_hook.outcomes.records import BuildRecord
    from ci_risk_hook.outcomes.store import open_store
    url, worker = sys.argv[1], int(sys.argv[2])
    store = open_store(url)
    repo = store.repository_id("d" * 40, "concurrent")
    for i in range(250):
        sha = f"{worker:08x}{i:032x}"
        store.add_builds(repo, [BuildRecord(commit=sha, status="pass" if i % 4 else "fail", source="record",
                                            job_id=str(worker), started_at=i)])
    store.close()
""")


def test_eight_processes_record_concurrently(store_url: str, tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [
        subprocess.Popen([sys.executable, str(script), store_url, str(w)], stderr=subprocess.PIPE) for w in range(8)
    ]
    errors = [(p.wait(), p.stderr.read().decode() if p.stderr else "") for p in procs]
    assert all(code == 0 for code, _ in errors), errors
    store = open_store(store_url)
    repo = store.repository_id("d" * 40)
    assert len(store.builds(repo)) == 2000
    assert len({b.commit for b in store.builds(repo)}) == 2000
    store.close()


def test_a_corrupt_database_file_is_reported_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    garbage = b"SQLite format 3\x00" + os.urandom(3000)
    path.write_bytes(garbage)
    with pytest.raises(StoreError, match="left untouched"):
        open_store(str(path))
    assert path.read_bytes() == garbage


def test_someone_elses_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices(id INTEGER)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a ci-risk history"):
        open_store(str(path))
    assert path.read_bytes() == before


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    open_store(str(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', 0)")
    with pytest.raises(StoreError, match="upgrade ci-risk"):
        open_store(str(path))


def test_unreachable_postgres_is_one_clear_line() -> None:
    with pytest.raises(StoreError) as info:
        open_store("postgresql://nobody:secret@127.0.0.1:1/none")
    message = str(info.value)
    assert "cannot connect" in message and "secret" not in message and "\n" not in message


def _unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _hostile_urls() -> list[str]:
    """Passwords in every place libpq takes one; PASSWORD-n marks what must never be shown.

    `{port}` is filled in by the test: a port chosen at collection would name each test differently in
    every pytest-xdist worker, and the workers must collect the same tests.
    """
    return [
        "postgresql://dev:PASSWORD-1@127.0.0.1:{port}/x",
        "postgresql://dev@127.0.0.1:{port}/x?sslmode=disable&password=PASSWORD-2&application_name=ci",
        "postgres://127.0.0.1:{port}/x?sslpassword=PASSWORD-3&%70assword=PASSWORD-4",
        "postgresql://dev:PASS@WORD-5@127.0.0.1:{port}/x",  # a raw "@": libpq's host becomes "WORD-5@127..."
        "postgresql://dev:PASS/WORD-6@127.0.0.1:{port}/x",  # a raw "/": libpq's port becomes "PASS"
        "postgresql://dev:PASSWORD-7%zz@127.0.0.1:{port}/x",  # libpq quotes the bad token
        "postgresql://dev:PASSWORD-8@[::1/x",  # libpq quotes the whole URL
        "postgresql://dev:PASS WORD-9@127.0.0.1:{port}/x",  # libpq quotes a value with a raw space
        "postgresql://dev@127.0.0.1:{port}/x?password=PASS WORD-10",
    ]


@pytest.mark.parametrize("url", _hostile_urls())
def test_an_unreachable_postgres_never_shows_a_password(url: str) -> None:
    with pytest.raises(StoreError) as info:
        open_store(url.format(port=_unused_port()))
    message = str(info.value)
    assert "PASS" not in message and "WORD-" not in message and "\n" not in message, message
    assert "cannot connect" in message, message


def test_a_real_server_refusing_the_login_never_shows_a_password() -> None:
    if not PG_URL:
        pytest.skip("PostgreSQL tests need CI_RISK_TEST_POSTGRES_URL")
    from urllib.parse import urlsplit

    server = urlsplit(PG_URL)
    url = f"postgresql://no_such_role_ci_risk:PASSWORD-1@{server.hostname}:{server.port or 5432}/x?password=PASSWORD-2"
    with pytest.raises(StoreError) as info:
        open_store(url)
    message = str(info.value)
    assert "no_such_role_ci_risk" in message and "PASSWORD" not in message, message


def test_commands_and_the_hook_print_store_urls_without_passwords(tmp_path: Path) -> None:
    from testing.repos import make_repo

    repo = make_repo(tmp_path / "repo")
    repo.commit({"a.py": "a\n"})
    repo.commit({"b.py": "b\n"}, "second")
    ci_risk = str(Path(sys.executable).parent / "ci-risk")
    env = {**os.environ, "CI_RISK_DB": _hostile_urls()[1]}
    for args in (
        ["history"],
        ["record", "--status", "pass"],
        ["history", "--db", "host=127.0.0.1 password=PASSWORD-9"],
    ):
        proc = subprocess.run([ci_risk, *args], cwd=repo.path, capture_output=True, text=True, env=env)
        assert proc.returncode == 1, (args, proc.stderr)
        assert "PASSWORD" not in proc.stdout + proc.stderr, (args, proc.stdout + proc.stderr)
    assert not list(repo.path.glob("host=*")), "a libpq key=value string must not become a SQLite file"
    check = subprocess.run(
        [ci_risk, "check", "--from", "HEAD~1"], cwd=repo.path, capture_output=True, text=True, env=env
    )
    assert check.returncode == 0 and "PASSWORD" not in check.stdout + check.stderr, check.stdout + check.stderr
    assert "build history unavailable (postgresql://dev@127.0.0.1:" in check.stdout, check.stdout
    assert "/x?sslmode=disable&application_name=ci: cannot connect" in check.stdout, check.stdout


def test_the_remembered_store_holds_no_password(tmp_path: Path) -> None:
    if not PG_URL:
        pytest.skip("PostgreSQL tests need CI_RISK_TEST_POSTGRES_URL")
    from ci_risk_hook.outcomes.store import remember, remembered

    separator = "&" if "?" in PG_URL else "?"
    remember(str(tmp_path), f"{PG_URL}{separator}password=PASSWORD-1&sslpassword=PASSWORD-2&connect_timeout=5")
    kept = remembered(str(tmp_path))
    assert kept == f"{PG_URL}{separator}connect_timeout=5"
    import psycopg

    psycopg.connect(kept, autocommit=True).close()  # still reaches the same server


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u@h:5432/db"),
        ("postgresql://u:p w@h/db", "postgresql://u@h/db"),
        (
            "postgresql://h/db?sslmode=require&password=pw&application_name=x",
            "postgresql://h/db?sslmode=require&application_name=x",
        ),
        ("postgresql://h/db?password=pw", "postgresql://h/db"),
        ("postgres://:pw@h/", "postgres://h/"),
        ("host=h password=pw port=1", "host=h password=*** port=1"),
        ("host=h password = 'p w\\' x' port=1", "host=h password=*** port=1"),
        ("host=h sslpassword=pw", "host=h sslpassword=***"),
        ("/home/me/history.sqlite", "/home/me/history.sqlite"),
        ("postgresql://h:5432/db?application_name=a@b", "postgresql://h:5432/db?application_name=a@b"),
    ],
)
def test_redact_removes_passwords_from_urls_and_key_value_strings(url: str, shown: str) -> None:
    from ci_risk_hook.outcomes.store import redact

    assert redact(url) == shown


def test_redact_message_finds_every_quoted_url() -> None:
    from ci_risk_hook.outcomes.store import redact_message

    text = "a postgresql://u:pw@h/db b 'postgres://x:y@z?password=q' c host=h password='a b' d user@example.com"
    assert redact_message(text) == "a postgresql://u@h/db b 'postgres://x@z' c host=h password=*** d user@example.com"
    assert str(StoreError("postgresql://u:pw@h/db: cannot connect")) == "postgresql://u@h/db: cannot connect"
