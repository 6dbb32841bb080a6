"""The outcomes history: CI results, the features of their ranges, and labels from git.

One schema and one code path for SQLite (the default: one file, nothing to
run) and PostgreSQL (a team's shared history). SQL is written once with `?`
placeholders; the PostgreSQL connection translates them. Migrations are
numbered, each applied in its own transaction and recorded in
`schema_migrations`; concurrent first runs serialise on a lock.

File names, authors and branches arrive as git's name keys (`git.decode_name`):
valid text without NUL or surrogates, which both databases hold as is; file
lists are JSON with non-ASCII escaped, so a key reads back identical.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

from .outcomes import FAIL, PASS, BuildRecord

DEFAULT_FILE = "history.sqlite"
_PG_LOCK_KEY = 0x63692D7269736B  # "ci-risk": serialises concurrent migrations


class StoreError(Exception):
    """The history store cannot be opened or used; the message says which file or server."""


_TYPES = {
    "sqlite": {"pk": "INTEGER PRIMARY KEY", "bigint": "INTEGER", "real": "REAL"},
    "postgresql": {"pk": "BIGSERIAL PRIMARY KEY", "bigint": "BIGINT", "real": "DOUBLE PRECISION"},
}

MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "repositories, builds, build and commit features, labels", (
        """CREATE TABLE repositories(
            id {pk}, root_commit TEXT NOT NULL UNIQUE, name TEXT NOT NULL DEFAULT '',
            created_at {bigint} NOT NULL)""",
        """CREATE TABLE builds(
            id {pk}, repo_id {bigint} NOT NULL REFERENCES repositories(id),
            commit_sha TEXT NOT NULL, base_sha TEXT, branch TEXT,
            status TEXT NOT NULL CHECK (status IN ('pass', 'fail')), raw_status TEXT NOT NULL DEFAULT '',
            started_at {bigint}, finished_at {bigint}, duration_s {real},
            source TEXT NOT NULL, job_id TEXT NOT NULL DEFAULT '', attempt INTEGER NOT NULL DEFAULT 1,
            flaky INTEGER NOT NULL DEFAULT 0, known_commit INTEGER NOT NULL DEFAULT 1,
            recorded_at {bigint} NOT NULL,
            UNIQUE (repo_id, commit_sha, source, job_id, attempt))""",
        "CREATE INDEX builds_repo_time ON builds(repo_id, started_at)",
        "CREATE INDEX builds_repo_finished ON builds(repo_id, finished_at)",
        "CREATE INDEX builds_repo_branch_finished ON builds(repo_id, branch, finished_at)",
        "CREATE INDEX builds_repo_commit ON builds(repo_id, commit_sha)",
        """CREATE TABLE build_features(
            build_id {bigint} PRIMARY KEY REFERENCES builds(id) ON DELETE CASCADE,
            schema_version TEXT NOT NULL, author TEXT, files TEXT NOT NULL, features TEXT NOT NULL,
            computed_at {bigint} NOT NULL)""",
        """CREATE TABLE commit_features(
            repo_id {bigint} NOT NULL REFERENCES repositories(id), commit_sha TEXT NOT NULL,
            committed_at {bigint} NOT NULL, author TEXT, schema_version TEXT NOT NULL, features TEXT NOT NULL,
            PRIMARY KEY (repo_id, commit_sha))""",
        """CREATE TABLE commit_labels(
            repo_id {bigint} NOT NULL REFERENCES repositories(id), commit_sha TEXT NOT NULL,
            source TEXT NOT NULL, evidence TEXT NOT NULL, lines INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (repo_id, commit_sha, source))""",
        """CREATE TABLE backfill_state(
            repo_id {bigint} NOT NULL REFERENCES repositories(id), key TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (repo_id, key))""",
    )),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class Build(NamedTuple):
    id: int
    commit: str
    base: str | None
    branch: str | None
    status: str
    raw_status: str
    started_at: int | None
    finished_at: int | None
    duration_s: float | None
    source: str
    job_id: str
    attempt: int
    flaky: bool
    known_commit: bool


_BUILD_COLUMNS = ("id, commit_sha, base_sha, branch, status, raw_status, started_at, finished_at, duration_s, "
                  "source, job_id, attempt, flaky, known_commit")


def _build(row: Sequence[Any]) -> Build:
    return Build(int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10],
                 int(row[11]), bool(row[12]), bool(row[13]))


class PriorBuild(NamedTuple):
    """What the history features need of an earlier build."""

    commit: str
    branch: str | None
    failed: bool
    started_at: int
    finished_at: int
    author: str | None
    files: frozenset[str]


POINTER = os.path.join("ci-risk", "store")


def remember(common_dir: str, url: str) -> None:
    """Note in the git dir which store this repository records into, for the hook (never a password).

    Only commands that record outcomes call this: a command that merely reads
    a store must not take the hook's build history somewhere else.
    """
    text = redact(url) if "://" in url else os.path.abspath(url)
    if remembered(common_dir) == text:
        return
    path = os.path.join(common_dir, POINTER)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    except OSError:
        pass


def remembered(common_dir: str) -> str | None:
    try:
        with open(os.path.join(common_dir, POINTER), encoding="utf-8") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def store_for(common_dir: str, given: str | None = None) -> str:
    """The store a command uses: the one given (`--db`), else `CI_RISK_DB`, else the one this
    repository records into (its pointer), else the user's default store."""
    return given or os.environ.get("CI_RISK_DB") or remembered(common_dir) or default_url()


def default_url() -> str:
    env = os.environ.get("CI_RISK_DB")
    if env:
        return env
    from .config import user_data_dir

    return os.path.join(user_data_dir(), DEFAULT_FILE)


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without a password, for messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


class Store:
    """A connection to the history store. Use `open_store`; close when done."""

    def __init__(self, conn: Any, dialect: str, where: str) -> None:
        self.conn = conn
        self.dialect = dialect
        self.where = where
        self.depth = 0

    # -- plumbing ----------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        try:
            return self.conn.execute(self._sql(sql), params)
        except Exception as exc:
            raise self._error(exc) from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        try:
            if self.dialect == "postgresql":
                with self.conn.cursor() as cur:
                    cur.executemany(self._sql(sql), rows)
            else:
                self.conn.executemany(sql, rows)
        except Exception as exc:
            raise self._error(exc) from exc

    def _error(self, exc: Exception) -> StoreError:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreError(f"{self.where}: {first}")

    def transaction(self) -> "_Transaction":
        return _Transaction(self)

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - closing a broken connection must not mask the real error
            pass

    # -- schema ------------------------------------------------------------

    def schema_version(self) -> int:
        try:
            row = self.conn.execute(self._sql("SELECT MAX(version) FROM schema_migrations")).fetchone()
        except Exception:  # noqa: BLE001 - no table yet
            return 0
        return int(row[0] or 0)

    def migrate(self) -> list[int]:
        """Apply pending migrations, one transaction each; return the versions applied."""
        applied: list[int] = []
        types = _TYPES[self.dialect]
        for version, description, statements in MIGRATIONS:
            with self.transaction():
                if self.dialect == "postgresql":
                    self.execute("SELECT pg_advisory_xact_lock(?)", (_PG_LOCK_KEY,))
                self.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations("
                    f"version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at {types['bigint']} NOT NULL)"
                )
                done = self.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone()
                if done:
                    continue
                for statement in statements:
                    self.execute(statement.format(**types))
                self.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, description, int(time.time())))
                applied.append(version)
        return applied

    # -- repositories ------------------------------------------------------

    def repository_id(self, root_commit: str, name: str = "") -> int:
        with self.transaction():
            row = self.execute("SELECT id FROM repositories WHERE root_commit = ?", (root_commit,)).fetchone()
            if row:
                return int(row[0])
            self.execute(
                "INSERT INTO repositories(root_commit, name, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (root_commit, name, int(time.time())),
            )
            row = self.execute("SELECT id FROM repositories WHERE root_commit = ?", (root_commit,)).fetchone()
            return int(row[0])

    def repositories(self) -> list[tuple[int, str, str]]:
        """(id, root commit, name) of every repository in the store."""
        return [(int(r[0]), r[1], r[2]) for r in self.execute("SELECT id, root_commit, name FROM repositories ORDER BY id").fetchall()]

    def find_repository(self, root_commit: str) -> int | None:
        row = self.execute("SELECT id FROM repositories WHERE root_commit = ?", (root_commit,)).fetchone()
        return None if row is None else int(row[0])

    # -- builds ------------------------------------------------------------

    def add_builds(self, repo_id: int, records: Sequence[BuildRecord], known: Sequence[bool] | None = None) -> int:
        """Insert or update outcomes in one transaction; returns how many were new.

        Idempotent per (repository, commit, source, job, attempt): the same
        outcome recorded twice is one row, its latest values kept. A commit
        that has both failed and passed has its failures marked flaky.
        """
        now = int(time.time())
        with self.transaction():
            before = self._build_count(repo_id)
            rows = []
            for i, r in enumerate(records):
                # Always a finish time, so "finished before" is one indexed range scan.
                finished = r.finished_at
                if finished is None and r.started_at is not None and r.duration_s is not None:
                    finished = int(r.started_at + r.duration_s)
                if finished is None:
                    finished = r.started_at if r.started_at is not None else now
                is_known = True if known is None else known[i]
                rows.append((repo_id, r.commit, r.base, r.branch, r.status, r.raw_status or r.status, r.started_at,
                             finished, r.duration_s, r.source, r.job_id, r.attempt, int(is_known), now))
            self.executemany(
                """INSERT INTO builds(repo_id, commit_sha, base_sha, branch, status, raw_status, started_at,
                       finished_at, duration_s, source, job_id, attempt, known_commit, recorded_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (repo_id, commit_sha, source, job_id, attempt) DO UPDATE SET
                       status = excluded.status, raw_status = excluded.raw_status, base_sha = excluded.base_sha,
                       branch = excluded.branch, started_at = excluded.started_at,
                       finished_at = excluded.finished_at, duration_s = excluded.duration_s,
                       known_commit = excluded.known_commit, recorded_at = excluded.recorded_at""",
                rows,
            )
            self._mark_flaky(repo_id, {r.commit for r in records})
            return self._build_count(repo_id) - before

    def _build_count(self, repo_id: int) -> int:
        return int(self.execute("SELECT COUNT(*) FROM builds WHERE repo_id = ?", (repo_id,)).fetchone()[0])

    def _mark_flaky(self, repo_id: int, commits: set[str]) -> None:
        rows = [(repo_id, c, repo_id, c, PASS) for c in commits]
        self.executemany(
            """UPDATE builds SET flaky = 1
               WHERE repo_id = ? AND commit_sha = ? AND status = 'fail' AND flaky = 0
                 AND EXISTS (SELECT 1 FROM builds p WHERE p.repo_id = ? AND p.commit_sha = ? AND p.status = ?)""",
            rows,
        )

    def builds(self, repo_id: int, *, source: str | None = None, limit: int | None = None) -> list[Build]:
        sql = f"SELECT {_BUILD_COLUMNS} FROM builds WHERE repo_id = ?"
        params: list[Any] = [repo_id]
        if source is not None:
            sql += " AND source = ?"
            params.append(source)
        sql += " ORDER BY COALESCE(started_at, recorded_at), id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_build(r) for r in self.execute(sql, params).fetchall()]

    def builds_without_features(self, repo_id: int) -> list[Build]:
        rows = self.execute(
            f"""SELECT {', '.join('b.' + c.strip() for c in _BUILD_COLUMNS.split(','))} FROM builds b
                LEFT JOIN build_features f ON f.build_id = b.id
                WHERE b.repo_id = ? AND b.known_commit = 1 AND f.build_id IS NULL
                ORDER BY COALESCE(b.started_at, b.recorded_at), b.id""",
            (repo_id,),
        ).fetchall()
        return [_build(r) for r in rows]

    def set_build_features(self, rows: Sequence[tuple[int, str, str | None, Sequence[str], dict[str, float | None]]]) -> None:
        """Rows of (build id, schema version, author, files, features)."""
        now = int(time.time())
        with self.transaction():
            self.executemany(
                """INSERT INTO build_features(build_id, schema_version, author, files, features, computed_at)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (build_id) DO UPDATE SET schema_version = excluded.schema_version,
                       author = excluded.author, files = excluded.files, features = excluded.features,
                       computed_at = excluded.computed_at""",
                [(b, v, a, json.dumps(list(f)), json.dumps(x), now) for b, v, a, f, x in rows],
            )

    def build_features(self, repo_id: int) -> dict[int, tuple[str | None, list[str], dict[str, float | None]]]:
        rows = self.execute(
            """SELECT f.build_id, f.author, f.files, f.features FROM build_features f
               JOIN builds b ON b.id = f.build_id WHERE b.repo_id = ?""",
            (repo_id,),
        ).fetchall()
        return {int(r[0]): (r[1], json.loads(r[2]), json.loads(r[3])) for r in rows}

    def prior_builds(self, repo_id: int, before: int, branch: str | None, limit: int = 200) -> list[PriorBuild]:
        """Builds finished by `before` (same second included): the latest `limit` plus the latest 20 on `branch`.

        Oldest first. A build stored without a finish time finished, for
        this purpose, when it started (or, lacking both, when recorded).
        """
        base = """SELECT b.id, b.commit_sha, b.branch, b.status, COALESCE(b.started_at, b.finished_at),
                         b.finished_at, f.author, f.files
                  FROM builds b LEFT JOIN build_features f ON f.build_id = b.id
                  WHERE b.repo_id = ? AND b.finished_at <= ?"""
        order = " ORDER BY b.finished_at DESC, b.id DESC LIMIT ?"
        rows = {r[0]: r for r in self.execute(base + order, (repo_id, before, limit)).fetchall()}
        if branch is not None:
            for r in self.execute(base + " AND b.branch = ?" + order, (repo_id, before, branch, 20)).fetchall():
                rows.setdefault(r[0], r)
        result = [
            PriorBuild(r[1], r[2], r[3] == FAIL, int(r[4]), int(r[5]), r[6], frozenset(json.loads(r[7]) if r[7] else ()))
            for r in rows.values()
        ]
        result.sort(key=lambda b: (b.finished_at, b.started_at))
        return result

    def counts(self, repo_id: int | None = None) -> list[tuple[str, str, int, int]]:
        """(source, status, builds, flaky) totals."""
        sql = "SELECT source, status, COUNT(*), SUM(flaky) FROM builds"
        params: tuple[Any, ...] = ()
        if repo_id is not None:
            sql += " WHERE repo_id = ?"
            params = (repo_id,)
        sql += " GROUP BY source, status ORDER BY source, status"
        return [(r[0], r[1], int(r[2]), int(r[3] or 0)) for r in self.execute(sql, params).fetchall()]

    # -- backfill ----------------------------------------------------------

    def commit_features_known(self, repo_id: int) -> set[str]:
        rows = self.execute("SELECT commit_sha FROM commit_features WHERE repo_id = ?", (repo_id,)).fetchall()
        return {r[0] for r in rows}

    def add_commit_features(self, repo_id: int, rows: Sequence[tuple[str, int, str | None, str, dict[str, float | None]]]) -> None:
        """Rows of (sha, committed_at, author, schema version, features); one transaction."""
        with self.transaction():
            self.executemany(
                """INSERT INTO commit_features(repo_id, commit_sha, committed_at, author, schema_version, features)
                   VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (repo_id, commit_sha) DO NOTHING""",
                [(repo_id, sha, t, a, v, json.dumps(x)) for sha, t, a, v, x in rows],
            )

    def commit_features(self, repo_id: int) -> Iterator[tuple[str, int, str | None, dict[str, float | None]]]:
        rows = self.execute(
            "SELECT commit_sha, committed_at, author, features FROM commit_features WHERE repo_id = ? ORDER BY committed_at",
            (repo_id,),
        ).fetchall()
        for sha, t, author, features in rows:
            yield sha, int(t), author, json.loads(features)

    def set_labels(self, repo_id: int, source: str, labels: Sequence[tuple[str, Sequence[str], int]]) -> None:
        """Replace one source's labels: rows of (commit, evidence shas, lines)."""
        with self.transaction():
            self.execute("DELETE FROM commit_labels WHERE repo_id = ? AND source = ?", (repo_id, source))
            self.executemany(
                "INSERT INTO commit_labels(repo_id, commit_sha, source, evidence, lines) VALUES (?, ?, ?, ?, ?)",
                [(repo_id, c, source, " ".join(e), n) for c, e, n in labels],
            )

    def labels(self, repo_id: int) -> list[tuple[str, str, str, int]]:
        rows = self.execute(
            "SELECT commit_sha, source, evidence, lines FROM commit_labels WHERE repo_id = ? ORDER BY commit_sha, source",
            (repo_id,),
        ).fetchall()
        return [(r[0], r[1], r[2], int(r[3])) for r in rows]

    def state(self, repo_id: int, key: str) -> str | None:
        row = self.execute("SELECT value FROM backfill_state WHERE repo_id = ? AND key = ?", (repo_id, key)).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, repo_id: int, key: str, value: str) -> None:
        with self.transaction():
            self.execute(
                """INSERT INTO backfill_state(repo_id, key, value) VALUES (?, ?, ?)
                   ON CONFLICT (repo_id, key) DO UPDATE SET value = excluded.value""",
                (repo_id, key, value),
            )


class _Transaction:
    """One explicit transaction; nested uses join the outer one.

    SQLite takes the write lock at BEGIN IMMEDIATE, so concurrent writers
    queue on the busy timeout instead of failing half-way; both connections
    run in autocommit mode otherwise, so reads never hold a transaction open.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.outer = False

    def __enter__(self) -> None:
        if self.store.depth == 0:
            self.outer = True
            self.store.execute("BEGIN IMMEDIATE" if self.store.dialect == "sqlite" else "BEGIN")
        self.store.depth += 1

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.store.depth -= 1
        if not self.outer:
            return
        if exc_type is None:
            self.store.execute("COMMIT")
            return
        try:
            self.store.execute("ROLLBACK")
        except StoreError:
            pass  # the failure already ended the transaction; the original error is what matters


def open_store(url: str | None = None, *, create: bool = True) -> Store:
    """Open (and migrate) the store at `url`: a PostgreSQL URL, `sqlite:///path`, or a file path."""
    url = url or default_url()
    if is_postgres(url):
        return _open_postgres(url)
    path = url[len("sqlite:///") - 1:] if url.startswith("sqlite:///") else url
    return _open_sqlite(os.path.abspath(os.path.expanduser(path)), create)


def _open_sqlite(path: str, create: bool) -> Store:
    exists = os.path.exists(path)
    if not exists and not create:
        raise StoreError(f"{path}: no history recorded yet")
    if not exists:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=60, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 60000")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a usable SQLite database ({exc}); it was left untouched") from None
    if tables and "schema_migrations" not in tables:
        conn.close()
        raise StoreError(f"{path} is an SQLite database but not a ci-risk history; it was left untouched")
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"{path}: {exc}") from None
    store = Store(conn, "sqlite", path)
    if mode != "wal":
        store.close()
        raise StoreError(f"{path}: could not switch to WAL mode (got {mode})")
    _check_version(store)
    return store


def _open_postgres(url: str) -> Store:
    try:
        import psycopg
    except ImportError:
        raise StoreError("PostgreSQL needs the psycopg package: pip install 'ci-risk[postgres]'") from None
    try:
        conn = psycopg.connect(url, connect_timeout=10, autocommit=True)
    except Exception as exc:  # noqa: BLE001 - psycopg raises several kinds; all mean "cannot connect"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"{redact(url)}: cannot connect ({first})") from None
    store = Store(conn, "postgresql", redact(url))
    _check_version(store)
    return store


def _check_version(store: Store) -> None:
    version = store.schema_version()
    if version > SCHEMA_VERSION:
        store.close()
        raise StoreError(f"{store.where} has schema version {version}; this ci-risk knows {SCHEMA_VERSION}: upgrade ci-risk")
    if version < SCHEMA_VERSION:
        store.migrate()
