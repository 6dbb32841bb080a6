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

import itertools
import json
import math
import os
import re
import sqlite3
import stat
import time
from contextlib import contextmanager
from typing import Any, Generator, Iterable, Iterator, NamedTuple, Sequence

from ci_risk_hook import paths
from ci_risk_hook.errors import EXIT_BLOCKED, CiRiskError
from ci_risk_hook.features.extract import BRANCH_WINDOW, TOUCHED_WINDOW
from ci_risk_hook.outcomes import authors
from ci_risk_hook.outcomes.records import FAIL, PASS, BuildRecord, ScoredFailure

_CURSOR_IDS = itertools.count()
_PG_LOCK_KEY = 0x63692D7269736B  # "ci-risk": serialises concurrent migrations


class StoreError(CiRiskError):
    """The history store cannot be opened or used; the message says which file or server.

    The message is redacted here, once for every caller: it is printed, and
    it may quote a URL or a driver's text that holds a password.
    """

    exit_code = EXIT_BLOCKED

    def __init__(self, message: str) -> None:
        super().__init__(redact_message(message))


class AuthorModeError(StoreError):
    """The store's author mode and this process's hashing setting or key disagree (the connection itself worked)."""


_TYPES = {
    "sqlite": {"pk": "INTEGER PRIMARY KEY", "bigint": "INTEGER", "real": "REAL"},
    "postgresql": {"pk": "BIGSERIAL PRIMARY KEY", "bigint": "BIGINT", "real": "DOUBLE PRECISION"},
}

MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "repositories, builds, build and commit features, labels",
        (
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
        ),
    ),
    (
        2,
        "index: the build before another on its branch, in one look-up",
        ("CREATE INDEX builds_repo_branch_order ON builds(repo_id, branch, (COALESCE(started_at, recorded_at)), id)",),
    ),
    (
        3,
        "store metadata: how authors are held (plain, or the fingerprint of the key hashing them)",
        ("CREATE TABLE IF NOT EXISTS store_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",),
    ),
    (
        4,
        "predictions: what the hook, check and check --ci said about each push, for `ci-risk monitor`",
        (
            """CREATE TABLE IF NOT EXISTS predictions(
            id {pk}, repo_id {bigint} NOT NULL REFERENCES repositories(id),
            commit_sha TEXT NOT NULL, base_sha TEXT, branch TEXT, score {real} NOT NULL,
            decision TEXT NOT NULL, mode TEXT NOT NULL, model_sha256 TEXT NOT NULL DEFAULT '',
            warn_at {real} NOT NULL, block_at {real} NOT NULL,
            place TEXT NOT NULL CHECK (place IN ('hook', 'manual', 'ci')), ci_run TEXT NOT NULL DEFAULT '',
            author TEXT, predicted_at {bigint} NOT NULL)""",
            # Unique: the hook's spool may be moved in twice (a push that exited mid-move) and must count once.
            """CREATE UNIQUE INDEX IF NOT EXISTS predictions_once
            ON predictions(repo_id, commit_sha, place, predicted_at, ci_run)""",
            "CREATE INDEX IF NOT EXISTS predictions_repo_time ON predictions(repo_id, predicted_at)",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
PREDICTIONS_FROM = 4  # the migration that added `predictions`
SCORED_FAILURES_SCAN = 5  # scored_failures looks at most this many times `limit` latest failures: a push's bound
SQLITE_BULK_CACHE_KB = 64 * 1024
READABLE_FROM = 1  # the oldest schema a reader can query as it is (later: indexes, metadata, `predictions`)
AUTHOR_MODE = "author_ids"  # the store_meta key: authors.PLAIN or the fingerprint of the hashing key


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


_BUILD_COLUMNS = (
    "id, commit_sha, base_sha, branch, status, raw_status, started_at, finished_at, duration_s, "
    "source, job_id, attempt, flaky, known_commit"
)


def _build(row: Sequence[Any]) -> Build:
    return Build(
        int(row[0]),
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        int(row[11]),
        bool(row[12]),
        bool(row[13]),
    )


class PriorBuild(NamedTuple):
    """What the history features need of an earlier build."""

    commit: str
    branch: str | None
    failed: bool
    started_at: int
    finished_at: int
    author: str | None
    files: frozenset[str]


class Prediction(NamedTuple):
    """One recorded prediction: what the gate said about a range, where and when (a row of `predictions`)."""

    commit: str  # the range's tip
    base: str | None
    branch: str | None
    score: float
    decision: str  # pass | warn | block
    mode: str  # warn | block | observe
    model_sha256: str
    warn_at: float
    block_at: float
    place: str  # hook | manual | ci
    ci_run: str  # the CI run id, "" outside CI
    author: str | None
    predicted_at: int


_PREDICTION_COLUMNS = (
    "commit_sha, base_sha, branch, score, decision, mode, model_sha256, warn_at, block_at, place, ci_run, author, "
    "predicted_at"
)


def remember(common_dir: str, url: str) -> None:
    """Note in the git dir which store this repository records into, for the hook (never a password).

    Only commands that record outcomes call this: a command that merely reads
    a store must not take the hook's build history somewhere else.
    """
    text = redact(url) if "://" in url else os.path.abspath(url)
    if remembered(common_dir) == text:
        return
    path = paths.store_pointer(common_dir)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    except OSError:
        pass


def remembered(common_dir: str) -> str | None:
    try:
        with open(paths.store_pointer(common_dir), encoding="utf-8") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def store_for(common_dir: str, given: str | None = None) -> str:
    """The store a command uses: the one given (`--db`), else `CI_RISK_DB`, else the one this
    repository records into (its pointer), else the user's default store."""
    return given or os.environ.get(paths.DB_ENV) or remembered(common_dir) or default_url()


def default_url() -> str:
    """CI_RISK_DB, else `db` in the user's config file, else the user data directory (never a repository's file)."""
    env = os.environ.get(paths.DB_ENV)
    if env:
        return env
    from ci_risk_hook.config import ConfigError, user_setting

    try:
        configured = user_setting("db")
    except ConfigError as exc:
        raise StoreError(str(exc)) from None
    return str(configured) if configured else paths.default_store_file()


def exists(url: str) -> bool:
    """Whether the store is there to be written without creating it: a server, or an existing file."""
    if is_postgres(url):
        return True
    path = url[len("sqlite:///") - 1 :] if url.startswith("sqlite:///") else url
    return os.path.isfile(os.path.abspath(os.path.expanduser(path)))


def not_there(where: str) -> StoreError:
    """What a reading command says of a store that is not there: no file, or a file or database without ci-risk's
    tables (an empty PostgreSQL database, an empty file)."""
    return StoreError(f"{where}: no history store there (reading commands never create one; `record` or `import` do)")


def open_existing(url: str, *, create: bool = True) -> Store:
    """A reading command's store (history, monitor, train, backtest, report...): one that is not there is refused.

    Reading never creates a store: a mistyped `--db` would otherwise answer "no history" from a new empty
    file and leave it behind, and an empty PostgreSQL database would get ci-risk's tables. An existing
    store is opened as a writer's (upgraded, predictions moved in); `create=False` opens an SQLite file
    for reading only (the dashboard).
    """
    if not exists(url):
        raise not_there(url)
    return open_store(url, create=create, existing=True)


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


# libpq connection parameters that hold a secret (in a URL's query or a key=value string).
_SECRET_PARAMS = frozenset({"password", "sslpassword"})
_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*://"


def _url_patterns(stop: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(userinfo, query) patterns; `stop` lists what ends a URL quoted in a message (nothing for a whole URL).

    The userinfo is read as libpq reads it (up to the last "@" before the
    path) or, for a password with a raw "/", as the user meant it (a ":",
    then anything up to the last "@" before the query).
    """
    userinfo = re.compile(rf"(?P<scheme>{_SCHEME})(?P<userinfo>[^{stop}/]*|[^{stop}?#@]*:[^{stop}?#]*)@")
    query = re.compile(rf"(?P<head>{_SCHEME}[^{stop}?]*)\?(?P<query>[^{stop}#]*)")
    return userinfo, query


_WHOLE_URL = _url_patterns("")  # a URL on its own may hold anything, spaces included
_QUOTED_URL = _url_patterns("\\s'\"")
_KEY_VALUE_SECRET = re.compile(r"(?P<ssl>ssl)?password\s*=\s*(?:'(?:[^'\\]|\\.)*'?|[^\s'\"]*)", re.IGNORECASE)
_LIBPQ_KEY_VALUE = re.compile(r"\s*(host|hostaddr|port|dbname|user|password|service|sslmode|passfile)\s*=")


def _without_password(match: re.Match[str]) -> str:
    user = match["userinfo"].split(":", 1)[0]
    return f"{match['scheme']}{user}@" if user else match["scheme"]


def _is_secret_param(param: str) -> bool:
    from urllib.parse import unquote  # libpq decodes parameter names too: %70assword is password

    return unquote(param.split("=", 1)[0]).lower() in _SECRET_PARAMS


def _without_secret_params(match: re.Match[str]) -> str:
    kept = [p for p in match["query"].split("&") if not _is_secret_param(p)]
    return match["head"] + ("?" + "&".join(kept) if kept else "")


def _redact(text: str, patterns: tuple[re.Pattern[str], re.Pattern[str]]) -> str:
    userinfo, query = patterns
    text = userinfo.sub(_without_password, text)
    text = query.sub(_without_secret_params, text)
    return _KEY_VALUE_SECRET.sub(lambda m: f"{m['ssl'] or ''}password=***", text)


def redact(url: str) -> str:
    """A store URL (or libpq key=value string) without its passwords, for messages and `remember`.

    A URL loses the password of its userinfo and its `password`/`sslpassword`
    parameters, so it still connects with ~/.pgpass or PGPASSWORD; in
    key=value text the secret becomes `***`.
    """
    return _redact(url, _WHOLE_URL)


def redact_message(text: str) -> str:
    """`redact` for every URL and key=value secret quoted anywhere in a message (URLs end at a space)."""
    return _redact(text, _QUOTED_URL)


def _secrets(url: str) -> list[str]:
    """The passwords in a URL: as written, decoded, and the pieces libpq splits a raw "@" or "/" into."""
    from urllib.parse import unquote

    found: list[str] = []
    match = _WHOLE_URL[0].match(url)
    if match and ":" in match["userinfo"]:
        password = match["userinfo"].split(":", 1)[1]
        found.append(password)
        found += [piece for piece in re.split(r"[@/]", password) if len(piece) >= 3]
    after = url[match.end() :] if match else url
    query = after.split("?", 1)[1] if "?" in after else ""
    found += [p.split("=", 1)[1] for p in query.split("&") if "=" in p and _is_secret_param(p)]
    found += [unquote(s) for s in found]
    return sorted({s for s in found if s}, key=len, reverse=True)


def _driver_message(exc: BaseException, url: str) -> str:
    """The first line of a driver's error without the URL's passwords: libpq quotes hosts, ports, bad tokens."""
    text = str(exc).strip().split("\n", 1)[0] if str(exc).strip() else type(exc).__name__
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    match = _WHOLE_URL[0].match(url)
    if match and "@" in match["userinfo"]:  # "pass@word@host": libpq's host is "word@host"
        tail = match["userinfo"].rsplit("@", 1)[1]
        text = text.replace(f"{tail}@", "***@")
    return text


class Store:
    """A connection to the history store. Use `open_store`; close when done."""

    def __init__(self, conn: Any, dialect: str, where: str, read_only: bool = False) -> None:
        self.conn = conn
        self.dialect = dialect
        self.where = where
        self.depth = 0
        self.read_only = read_only  # a SQLite file opened for reading: its file or directory cannot be written
        self.author_id: authors.AuthorId = authors.hasher(None)  # author -> what the store holds (see authors)
        self.author_mode: str | None = None  # as recorded in store_meta, once known

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
        if self.read_only and "readonly" in first:
            first = "cannot write: the file or its directory is read-only"
        return StoreError(f"{self.where}: {first}")

    def for_bulk_work(self) -> None:
        """A larger page cache (SQLITE_BULK_CACHE_KB) for an import of millions of rows.

        With SQLite's default 2 MB, every insert into the six indexes of a large
        builds table goes back to the operating system for its pages: a 600,000-row
        import took 89 s instead of 62 s, most of the difference system time.
        """
        if self.dialect == "sqlite":
            self.execute(f"PRAGMA cache_size = -{SQLITE_BULK_CACHE_KB}")

    def for_a_quick_write(self) -> None:
        """Commit without waiting for the disk: the push's predictions (a few rows, best effort).

        A commit that must reach the disk costs an fsync (3-15 ms on the benchmark
        machine) inside the push. Without it the row survives the process but not
        a power cut: SQLite in WAL mode with synchronous=NORMAL stays consistent,
        and PostgreSQL without synchronous_commit loses at most the last moments.
        """
        if self.dialect == "sqlite":
            self.execute("PRAGMA synchronous = NORMAL")
        else:
            self.execute("SET synchronous_commit TO OFF")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One consistent view of the store for a long reader (several streams), taking no write lock."""
        self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if self.dialect == "postgresql" else "BEGIN")
        try:
            yield
        finally:
            self.execute("COMMIT")

    def stream(self, sql: str, params: Sequence[Any] = (), size: int = 10_000) -> Generator[Sequence[Any], None, None]:
        """Rows of a query a batch at a time: a server-side cursor in PostgreSQL (inside `snapshot`).

        A plain cursor would make the driver hold every row of the result at once:
        millions of builds where training needs a window of a few hundred.
        """
        if self.dialect == "postgresql":
            cursor = self.conn.cursor(name=f"ci_risk_stream_{next(_CURSOR_IDS)}")
            cursor.itersize = size
        else:
            cursor = self.conn.cursor()
        try:
            cursor.execute(self._sql(sql), params)
            while True:
                rows = cursor.fetchmany(size)
                if not rows:
                    break
                yield from rows
        except Exception as exc:
            raise self._error(exc) from exc
        finally:
            cursor.close()

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

    # -- metadata and authors ----------------------------------------------

    def meta(self, key: str) -> str | None:
        try:
            row = self.conn.execute(self._sql("SELECT value FROM store_meta WHERE key = ?"), (key,)).fetchone()
        except Exception:  # noqa: BLE001 - a read-only store older than the table: nothing recorded
            return None
        return None if row is None else str(row[0])

    def _claim(self, key: str, value: str) -> str:
        """Record `value` unless another writer recorded one first; returns what the store holds."""
        with self.transaction():
            self.execute("INSERT INTO store_meta(key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value))
            return str(self.execute("SELECT value FROM store_meta WHERE key = ?", (key,)).fetchone()[0])

    def _has_plain_authors(self) -> bool:
        for table in ("build_features", "commit_features"):
            if self.execute(f"SELECT 1 FROM {table} WHERE author IS NOT NULL LIMIT 1").fetchone():
                return True
        return False

    def configure_authors(self, hash_requested: bool) -> None:
        """Hash authors as the store's recorded mode says; refuse to mix hashed and plain identities.

        A store records its mode with its first author (`--hash-authors`: the key's
        fingerprint; otherwise plain). From then on every writer and reader must agree:
        a hashed store needs the same key to be read or written, a plain one refuses
        `--hash-authors`. Raises StoreError with one line.
        """
        try:
            key = authors.key_from_env()
        except ValueError as exc:
            raise AuthorModeError(str(exc)) from None
        mode = self.meta(AUTHOR_MODE)
        if mode is None and hash_requested:
            if key is None:
                raise AuthorModeError(f"--hash-authors needs the hashing key in {authors.KEY_ENV}")
            if self._has_plain_authors():
                mode = authors.PLAIN
            elif not self.read_only:
                mode = self._claim(AUTHOR_MODE, authors.fingerprint(key))
        if mode == authors.PLAIN and hash_requested:
            raise AuthorModeError(
                f"{self.where} holds author e-mails unhashed: --hash-authors cannot be mixed into it (use a new store)"
            )
        if mode is not None and mode != authors.PLAIN:
            if key is None:
                raise AuthorModeError(f"{self.where} holds hashed authors: set {authors.KEY_ENV} to their key")
            if authors.fingerprint(key) != mode:
                raise AuthorModeError(
                    f"{self.where}: {authors.KEY_ENV} is not the key this store's authors were hashed with "
                    f"(the store's key has fingerprint {mode})"
                )
        if hash_requested or (mode is not None and mode != authors.PLAIN):
            self.author_id = authors.hasher(key)
        self.author_mode = mode

    def _authors_for_writing(self, given: Iterable[str | None]) -> None:
        """Before the first author is written unhashed: record the store as plain, unless it is hashed already."""
        if self.author_mode is not None or not any(given):
            return
        if self.author_id(_PROBE) != _PROBE:  # hashing, but the store was not claimed (a read-only open)
            return
        mode = self._claim(AUTHOR_MODE, authors.PLAIN)
        if mode != authors.PLAIN:
            raise StoreError(
                f"{self.where} holds hashed authors: write with --hash-authors and its key in {authors.KEY_ENV}"
            )
        self.author_mode = mode

    # -- repositories ------------------------------------------------------

    def repository_id(self, root_commit: str, name: str = "") -> int:
        known = self.find_repository(root_commit)  # first without a write lock: a read-only store can answer it
        if known is not None:
            return known
        with self.transaction():
            self.execute(
                "INSERT INTO repositories(root_commit, name, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (root_commit, name, int(time.time())),
            )
            row = self.execute("SELECT id FROM repositories WHERE root_commit = ?", (root_commit,)).fetchone()
            return int(row[0])

    def repositories(self) -> list[tuple[int, str, str]]:
        """(id, root commit, name) of every repository in the store."""
        return [
            (int(r[0]), r[1], r[2])
            for r in self.execute("SELECT id, root_commit, name FROM repositories ORDER BY id").fetchall()
        ]

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
        with self.transaction():
            new = self.upsert_builds(repo_id, records, known)
            self.mark_flaky(repo_id, {r.commit for r in records})
            return new

    def upsert_builds(self, repo_id: int, records: Sequence[BuildRecord], known: Sequence[bool] | None = None) -> int:
        """`add_builds` without the flaky marks, for one batch of a larger transaction: how many rows were new.

        As the INSERT itself says: a count before and after, in PostgreSQL, would also count the row another
        session committed while this one waited on it (both `record`s of one job would say "new").
        """
        now = int(time.time())
        rows = []
        for i, r in enumerate(records):
            # Always a finish time, so "finished before" is one indexed range scan.
            finished = r.finished_at
            if finished is None and r.started_at is not None and r.duration_s is not None:
                finished = int(r.started_at + r.duration_s)
            if finished is None:
                finished = r.started_at if r.started_at is not None else now
            is_known = True if known is None else known[i]
            rows.append(
                (
                    repo_id,
                    r.commit,
                    r.base,
                    r.branch,
                    r.status,
                    r.raw_status or r.status,
                    r.started_at,
                    finished,
                    r.duration_s,
                    r.source,
                    r.job_id,
                    r.attempt,
                    int(is_known),
                    now,
                )
            )
        sql = """INSERT INTO builds(repo_id, commit_sha, base_sha, branch, status, raw_status, started_at,
                       finished_at, duration_s, source, job_id, attempt, known_commit, recorded_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (repo_id, commit_sha, source, job_id, attempt) DO UPDATE SET
                     status = excluded.status, raw_status = excluded.raw_status, base_sha = excluded.base_sha,
                     branch = excluded.branch, started_at = excluded.started_at,
                     finished_at = excluded.finished_at, duration_s = excluded.duration_s,
                     known_commit = excluded.known_commit, recorded_at = excluded.recorded_at"""
        with self.transaction():
            if self.dialect == "postgresql":
                return self._inserted_postgres(sql + " RETURNING (xmax = 0)", rows)
            # SQLite: BEGIN IMMEDIATE holds the only write lock, so nobody else's row lands in between.
            before = self.build_count(repo_id)
            self.executemany(sql, rows)
            return self.build_count(repo_id) - before

    def _inserted_postgres(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        """Run an upsert that returns `xmax = 0` per row (true for a row inserted, false for one updated)."""
        if not rows:
            return 0
        inserted = 0
        try:
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows, returning=True)
                while True:
                    row = cur.fetchone()
                    inserted += bool(row and row[0])
                    if not cur.nextset():
                        break
        except Exception as exc:
            raise self._error(exc) from exc
        return inserted

    def build_count(self, repo_id: int) -> int:
        return int(self.execute("SELECT COUNT(*) FROM builds WHERE repo_id = ?", (repo_id,)).fetchone()[0])

    def mark_flaky(self, repo_id: int, commits: set[str] | None = None) -> None:
        """Mark failures of a commit that also passed: of these commits, or (None) of the whole repository.

        The whole repository is one statement, for a large import: per commit, a
        commit built thousands of times would be looked at again for every batch.
        """
        if commits is None:
            self.execute(
                """UPDATE builds SET flaky = 1
                   WHERE repo_id = ? AND status = 'fail' AND flaky = 0
                     AND EXISTS (SELECT 1 FROM builds p
                                 WHERE p.repo_id = builds.repo_id AND p.commit_sha = builds.commit_sha
                                   AND p.status = ?)""",
                (repo_id, PASS),
            )
            return
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

    # `+b.repo_id`: not an index term, so SQLite walks the builds in id order instead of
    # taking an index on repo_id and sorting millions of rows for every page.
    _WITHOUT_FEATURES = """FROM builds b WHERE +b.repo_id = ? AND b.known_commit = 1
                           AND NOT EXISTS (SELECT 1 FROM build_features f WHERE f.build_id = b.id{})"""

    @classmethod
    def _without_features(cls, repo_id: int, schema_version: str | None) -> tuple[str, list[Any]]:
        """The FROM clause and its parameters; features of another schema version (an older ci-risk's) count as none."""
        if schema_version is None:
            return cls._WITHOUT_FEATURES.format(""), [repo_id]
        return cls._WITHOUT_FEATURES.format(" AND f.schema_version = ?"), [repo_id, schema_version]

    def count_builds_without_features(self, repo_id: int, schema_version: str | None = None) -> int:
        sql, params = self._without_features(repo_id, schema_version)
        return int(self.execute("SELECT COUNT(*) " + sql, params).fetchone()[0])

    def builds_without_features(
        self, repo_id: int, after_id: int = 0, limit: int = 1000, schema_version: str | None = None
    ) -> list[Build]:
        """One page, by id: builds of known commits without features (of `schema_version`); page on with the last id."""
        columns = ", ".join("b." + c.strip() for c in _BUILD_COLUMNS.split(","))
        sql, params = self._without_features(repo_id, schema_version)
        rows = self.execute(
            f"SELECT {columns} {sql} AND b.id > ? ORDER BY b.id LIMIT ?", [*params, after_id, limit]
        ).fetchall()
        return [_build(r) for r in rows]

    def previous_commit_on_branch(self, repo_id: int, build: Build) -> str | None:
        """The commit of the last known build before this one on its branch, unless it is this build's own commit.

        "Before" is the order of `builds`: start (else recording) time, then id.
        """
        branch = "b.branch IS NULL" if build.branch is None else "b.branch = ?"
        key = self.execute("SELECT COALESCE(started_at, recorded_at) FROM builds WHERE id = ?", (build.id,)).fetchone()
        if key is None:
            return None
        row = self.execute(
            f"""SELECT b.commit_sha FROM builds b
                WHERE b.repo_id = ? AND {branch}
                  AND COALESCE(b.started_at, b.recorded_at) <= ?
                  AND NOT (COALESCE(b.started_at, b.recorded_at) = ? AND b.id >= ?)
                  AND b.known_commit = 1
                ORDER BY COALESCE(b.started_at, b.recorded_at) DESC, b.id DESC LIMIT 1""",
            [repo_id] + ([] if build.branch is None else [build.branch]) + [key[0], key[0], build.id],
        ).fetchone()
        if row is None or row[0] == build.commit:
            return None
        return str(row[0])

    def set_build_features(
        self, rows: Sequence[tuple[int, str, str | None, Sequence[str], dict[str, float | None]]]
    ) -> None:
        """Rows of (build id, schema version, author, files, features); authors hashed when the store says so."""
        now = int(time.time())
        self._authors_for_writing(r[2] for r in rows)
        with self.transaction():
            self.executemany(
                """INSERT INTO build_features(build_id, schema_version, author, files, features, computed_at)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (build_id) DO UPDATE SET schema_version = excluded.schema_version,
                       author = excluded.author, files = excluded.files, features = excluded.features,
                       computed_at = excluded.computed_at""",
                [(b, v, self.author_id(a), json.dumps(list(f)), json.dumps(x), now) for b, v, a, f, x in rows],
            )

    def build_features(self, repo_id: int) -> dict[int, tuple[str | None, list[str], dict[str, float | None]]]:
        rows = self.execute(
            """SELECT f.build_id, f.author, f.files, f.features FROM build_features f
               JOIN builds b ON b.id = f.build_id WHERE b.repo_id = ?""",
            (repo_id,),
        ).fetchall()
        return {int(r[0]): (r[1], json.loads(r[2]), json.loads(r[3])) for r in rows}

    def prior_builds(
        self, repo_id: int, before: int, branch: str | None, limit: int = TOUCHED_WINDOW
    ) -> list[PriorBuild]:
        """Builds finished by `before` (same second included).

        The latest `limit`, plus the latest BRANCH_WINDOW on `branch`.

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
            for r in self.execute(
                base + " AND b.branch = ?" + order, (repo_id, before, branch, BRANCH_WINDOW)
            ).fetchall():
                rows.setdefault(r[0], r)
        try:
            result = [
                PriorBuild(
                    r[1], r[2], r[3] == FAIL, int(r[4]), int(r[5]), r[6], frozenset(json.loads(r[7]) if r[7] else ())
                )
                for r in rows.values()
            ]
        except (TypeError, ValueError, OverflowError) as exc:  # a hand-edited SQLite file may hold text anywhere
            raise StoreError(f"a build row holds what no ci-risk writes ({exc})") from None
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

    # -- predictions -------------------------------------------------------

    def add_predictions(self, repo_id: int, rows: Sequence[Prediction]) -> None:
        """Append what the gate said (one transaction); authors hashed when the store hashes them.

        A row already recorded (same commit, place, time and CI run) is not added again.
        """
        self._authors_for_writing(r.author for r in rows)
        with self.transaction():
            self.executemany(
                """INSERT INTO predictions(repo_id, commit_sha, base_sha, branch, score, decision, mode, model_sha256,
                       warn_at, block_at, place, ci_run, author, predicted_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
                [(repo_id, *r[:11], self.author_id(r.author), r.predicted_at) for r in rows],
            )

    def scored_failures(self, repo_id: int, before: int, limit: int) -> list[ScoredFailure]:
        """The latest `limit` failed builds finished by `before` whose commit a gate scored before the build
        started, with that score (the latest such): what the adaptive recall cut learns from. Oldest first.

        A score no gate writes (NaN, outside [0, 1]) leaves its build out, as `predictions` does.
        """
        if self.schema_version() < PREDICTIONS_FROM:
            return []
        rows = self.execute(
            """SELECT started, finished, score FROM (
                   SELECT COALESCE(b.started_at, b.finished_at) AS started, b.finished_at AS finished, b.id AS id,
                          (SELECT p.score FROM predictions p
                           WHERE p.repo_id = b.repo_id AND p.commit_sha = b.commit_sha
                             AND p.predicted_at <= COALESCE(b.started_at, b.finished_at)
                           ORDER BY p.predicted_at DESC, p.id DESC LIMIT 1) AS score
                   FROM builds b WHERE b.repo_id = ? AND b.status = ? AND b.finished_at <= ?
                   ORDER BY b.finished_at DESC, b.id DESC LIMIT ?) scored
               WHERE score IS NOT NULL ORDER BY finished DESC, id DESC LIMIT ?""",
            (repo_id, FAIL, before, SCORED_FAILURES_SCAN * limit, limit),
        ).fetchall()
        kept = []
        for started, finished, score in rows:
            try:  # a hand-edited SQLite file may hold text anywhere
                failure = ScoredFailure(float(score), int(started), int(finished))
            except (TypeError, ValueError, OverflowError):
                continue
            if math.isfinite(failure.score) and 0.0 <= failure.score <= 1.0:
                kept.append(failure)
        return kept[::-1]

    def predictions(self, repo_id: int) -> list[Prediction]:
        """Every recorded prediction of the repository, oldest first; none in a store older than the table.

        A row with a score or threshold no gate writes (NaN, infinite, outside [0, 1]: written by hand or
        by a foreign tool) is left out, as the pending file's reader leaves such a line out.
        """
        if self.schema_version() < PREDICTIONS_FROM:
            return []
        rows = self.execute(
            f"SELECT {_PREDICTION_COLUMNS} FROM predictions WHERE repo_id = ? ORDER BY predicted_at, id", (repo_id,)
        ).fetchall()
        return [
            Prediction(
                r[0],
                r[1],
                r[2],
                float(r[3]),
                r[4],
                r[5],
                r[6],
                float(r[7]),
                float(r[8]),
                r[9],
                r[10],
                r[11],
                int(r[12]),
            )
            for r in rows
            if all(isinstance(x, (int, float)) and math.isfinite(x) and 0.0 <= x <= 1.0 for x in (r[3], r[7], r[8]))
        ]

    def build_authors(self, repo_id: int) -> dict[str, str]:
        """commit -> author as the store holds it (from build or commit features), where known."""
        found: dict[str, str] = {}
        for sql in (
            "SELECT commit_sha, author FROM commit_features WHERE repo_id = ? AND author IS NOT NULL",
            """SELECT b.commit_sha, f.author FROM builds b JOIN build_features f ON f.build_id = b.id
               WHERE b.repo_id = ? AND f.author IS NOT NULL""",
        ):
            found.update((r[0], r[1]) for r in self.execute(sql, (repo_id,)).fetchall())
        return found

    # -- backfill ----------------------------------------------------------

    def commit_features_known(self, repo_id: int, schema_version: str | None = None) -> set[str]:
        """Commits with stored features (of `schema_version`: others are to be computed again and replaced)."""
        sql = "SELECT commit_sha FROM commit_features WHERE repo_id = ?"
        params: list[Any] = [repo_id]
        if schema_version is not None:
            sql += " AND schema_version = ?"
            params.append(schema_version)
        rows = self.execute(sql, params).fetchall()
        return {r[0] for r in rows}

    def add_commit_features(
        self, repo_id: int, rows: Sequence[tuple[str, int, str | None, str, dict[str, float | None]]]
    ) -> None:
        """Rows of (sha, committed_at, author, schema version, features); one transaction; authors as stored."""
        self._authors_for_writing(r[2] for r in rows)
        with self.transaction():
            self.executemany(
                """INSERT INTO commit_features(repo_id, commit_sha, committed_at, author, schema_version, features)
                   VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (repo_id, commit_sha) DO UPDATE SET
                       committed_at = excluded.committed_at, author = excluded.author,
                       schema_version = excluded.schema_version, features = excluded.features""",
                [(repo_id, sha, t, self.author_id(a), v, json.dumps(x)) for sha, t, a, v, x in rows],
            )

    def commit_features(self, repo_id: int) -> Iterator[tuple[str, int, str | None, dict[str, float | None]]]:
        rows = self.execute(
            "SELECT commit_sha, committed_at, author, features FROM commit_features "
            "WHERE repo_id = ? ORDER BY committed_at",
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
            "SELECT commit_sha, source, evidence, lines FROM commit_labels "
            "WHERE repo_id = ? ORDER BY commit_sha, source",
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


_PROBE = "probe@ci-risk.invalid"


_WAIT_S = {"sqlite": 60.0, "postgresql": 10.0}  # for commands; the push passes its own, shorter budget


def open_store(
    url: str | None = None,
    *,
    create: bool = True,
    timeout: float | None = None,
    hash_authors: bool | None = None,
    migrate: bool = True,
    existing: bool = False,
) -> Store:
    """Open (and migrate) the store at `url`: a PostgreSQL URL, `sqlite:///path`, or a file path.

    `timeout` (seconds) bounds waiting for a locked SQLite file or a
    PostgreSQL server to connect; commands wait longer by default.
    `hash_authors` (default: CI_RISK_HASH_AUTHORS, for writers) asks for keyed
    author hashes; a store already hashed is read and written hashed anyway.
    `migrate=False` (the push, which writes its predictions but must never run
    a schema upgrade) leaves an older schema as it is, as a reader does. `existing` (`open_existing`) refuses
    a database without ci-risk's tables before anything is written to it.
    """
    store = _open(url, create, timeout, migrate, existing)
    try:
        if hash_authors is None:
            hash_authors = create and _hash_authors_setting()
        store.configure_authors(hash_authors)
    except StoreError:
        store.close()
        raise
    return store


def _hash_authors_setting() -> bool:
    """The `hash_authors` setting: its environment variable, else the user's config file."""
    from ci_risk_hook.config import ConfigError, env_setting, user_setting

    try:
        value = env_setting("hash_authors")
        return bool(user_setting("hash_authors") if value is None else value)
    except ConfigError as exc:
        raise StoreError(str(exc)) from None


def _open(url: str | None, create: bool, timeout: float | None, migrate: bool = True, existing: bool = False) -> Store:
    url = url or default_url()
    if _LIBPQ_KEY_VALUE.match(url) and not os.path.exists(url):
        # Not a file name: opening it as one would create a SQLite file named after the password.
        raise StoreError("a libpq key=value connection string is not supported here: use a postgresql:// URL")
    if is_postgres(url):
        return _open_postgres(url, _WAIT_S["postgresql"] if timeout is None else timeout, migrate, existing)
    path = url[len("sqlite:///") - 1 :] if url.startswith("sqlite:///") else url
    wait = _WAIT_S["sqlite"] if timeout is None else timeout
    return _open_sqlite(os.path.abspath(os.path.expanduser(path)), create, wait, migrate, existing)


def _open_sqlite(path: str, create: bool, timeout: float, migrate: bool = True, existing: bool = False) -> Store:
    """A writer's connection (created and migrated as needed), else a reader's.

    A reader (`create=False`: the hook, the dashboard) never creates, migrates
    or writes; and a store whose file or directory cannot be written still opens
    for reading, for any command, so reads work there (writes then fail with one line).
    """
    exists = os.path.exists(path)
    if not exists and not create:
        raise StoreError(f"{path}: no history recorded yet")
    if exists and not stat.S_ISREG(os.stat(path).st_mode):  # SQLite would wait forever on a FIFO's other end
        raise StoreError(f"{path} is not a regular file (a directory, FIFO or device): not a history store")
    if not create or (exists and not _writable(path)):
        return _open_sqlite_read_only(path, None, timeout, existing)
    if not exists:
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{path}: cannot create its directory ({exc.strerror or exc})") from None
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.OperationalError as exc:
        if exists:  # e.g. the -shm file WAL needs cannot be created in a read-only directory
            return _open_sqlite_read_only(path, exc, timeout, existing)
        raise StoreError(f"{path}: cannot create ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a usable SQLite database ({exc}); it was left untouched") from None
    if existing and not tables:  # an empty file: WAL mode and the migrations below would write to it
        conn.close()
        raise not_there(path)
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
    _check_version(store, migrate)
    return store


def _writable(path: str) -> bool:
    """Whether a writer could work here: the file and its directory (for the -wal and -shm files)."""
    return os.access(path, os.W_OK) and os.access(os.path.dirname(path) or ".", os.W_OK)


def _open_sqlite_read_only(path: str, cause: Exception | None, timeout: float, existing: bool = False) -> Store:
    """Open for reading only; `cause` is why a writer's open failed, reported if this fails too.

    `mode=ro` reads a WAL database when its -shm file exists or can be made. In a
    read-only directory without one, `immutable` is the only way in, and it is safe
    only if no writer is at work: then there is no -wal file with content either.
    """
    from urllib.parse import quote

    uri = "file:" + quote(path, errors="surrogateescape")  # a non-UTF-8 path keeps its bytes
    attempts = [uri + "?mode=ro"]
    wal = path + "-wal"
    directory_read_only = not os.access(os.path.dirname(path) or ".", os.W_OK)
    if directory_read_only and (not os.path.exists(wal) or os.path.getsize(wal) == 0):
        attempts.append(uri + "?mode=ro&immutable=1")
    error: Exception | None = cause
    for attempt in attempts:
        conn = None
        try:
            conn = sqlite3.connect(attempt, uri=True, timeout=timeout, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.OperationalError as exc:
            if conn is not None:
                conn.close()
            error = error or exc
            continue
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            raise StoreError(f"{path} is not a usable SQLite database ({exc}); it was left untouched") from None
        if "schema_migrations" not in tables:
            conn.close()
            if existing and not tables:
                raise not_there(path)
            raise StoreError(f"{path} is an SQLite database but not a ci-risk history; it was left untouched")
        store = Store(conn, "sqlite", path, read_only=True)
        _check_version(store)
        return store
    raise StoreError(f"{path}: cannot be opened, even for reading ({error}); it was left untouched")


def _open_postgres(url: str, timeout: float, migrate: bool = True, existing: bool = False) -> Store:
    try:
        import psycopg
    except ImportError:
        raise StoreError("PostgreSQL needs the psycopg package: pip install 'ci-risk[postgres]'") from None
    try:
        # Whole seconds, and libpq waits at least 2: the push bounds its own wait below that.
        conn = psycopg.connect(url, connect_timeout=max(1, math.ceil(timeout)), autocommit=True)
    except Exception as exc:  # noqa: BLE001 - psycopg raises several kinds; all mean "cannot connect"
        raise StoreError(f"{redact(url)}: cannot connect ({_driver_message(exc, url)})") from None
    store = Store(conn, "postgresql", redact(url))
    _check_version(store, migrate, existing)
    return store


def _check_version(store: Store, migrate: bool = True, existing: bool = False) -> None:
    version = store.schema_version()
    if version == 0 and existing:  # a database without ci-risk's tables: a reader does not create them
        store.close()
        raise not_there(store.where)
    if version > SCHEMA_VERSION:
        store.close()
        raise StoreError(
            f"{store.where} has schema version {version}; this ci-risk knows {SCHEMA_VERSION}: upgrade ci-risk"
        )
    if version < SCHEMA_VERSION and (store.read_only or not migrate):
        if version < READABLE_FROM:
            store.close()
            why = "is read-only" if store.read_only else "is not upgraded here"
            raise StoreError(f"{store.where} has schema version {version} and {why}: it cannot be upgraded")
        return  # read as it is: the migrations since only add indexes, metadata and tables readers check for
    if version < SCHEMA_VERSION:
        store.migrate()
