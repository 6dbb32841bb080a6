"""A per-repository index of who changed which file when, for fast history features.

Walking `git log -- <files>` on every push costs seconds on a large
repository; this SQLite file answers "how old is this file, who has touched
it, how experienced is this author" with indexed look-ups. It is filled once
from one streaming `git log --numstat` pass and then only with commits it has
not seen. Facts are always asked "before time t", so the same index serves a
push (t = its first commit) and backfill (t = each historical commit).

Paths, subsystems and e-mails are stored as git's name keys (`git.decode_name`):
plain text that maps one-to-one to the bytes git printed, so a file whose
name is not UTF-8 has one row and is found again by the next push.
"""
from __future__ import annotations

import os
import sqlite3
import time as _time
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence

from . import git

# 2: names stored as name keys (version 1 held other spellings of non-UTF-8
# names and backslashes); an older index is a cache of the old keys, rebuilt.
SCHEMA_VERSION = "2"
_OLDER_VERSIONS = ("1",)
MAX_TIPS = 50
_BATCH = 2000
_SQL_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS authors(id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS paths(id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, subsystem TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS commits(
    id INTEGER PRIMARY KEY, sha TEXT UNIQUE NOT NULL, author_id INTEGER NOT NULL,
    time INTEGER NOT NULL, n_parents INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS commits_author_time ON commits(author_id, time);
CREATE TABLE IF NOT EXISTS changes(
    path_id INTEGER NOT NULL, time INTEGER NOT NULL, commit_id INTEGER NOT NULL,
    author_id INTEGER NOT NULL, added INTEGER, deleted INTEGER,
    PRIMARY KEY(path_id, time, commit_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commit_subsystems(
    author_id INTEGER NOT NULL, subsystem TEXT NOT NULL, time INTEGER NOT NULL, commit_id INTEGER NOT NULL,
    PRIMARY KEY(author_id, subsystem, time, commit_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tips(sha TEXT PRIMARY KEY, added_at REAL NOT NULL);
"""


class IndexError_(Exception):
    """The index file is unreadable; it is a cache, so callers may rebuild it."""


def subsystem_of(path: str) -> str:
    """Top-level directory, the Kamei et al. notion of a subsystem."""
    head, sep, _ = path.partition("/")
    return head if sep else "(root)"


class FileHistory(NamedTuple):
    path: str
    first_time: int
    last_time: int
    changes: int
    lines: int  # net lines added over its history: its size, for text files


class AuthorHistory(NamedTuple):
    commits: int
    first_time: int | None
    recent_commits: int
    subsystem_commits: int


def default_path(common_dir: str) -> str:
    override = os.environ.get("CI_RISK_INDEX_DIR")
    base = override if override else os.path.join(common_dir, "ci-risk")
    return os.path.join(base, "history-index.sqlite")


class HistoryIndex:
    def __init__(self, path: str, cwd: str | None = None) -> None:
        self.path = path
        self.cwd = cwd
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        try:
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            version = self._meta("schema_version")
            if version in _OLDER_VERSIONS:
                version = self._drop_older()
            if version is None:
                self.db.executescript(_SCHEMA)
                self.db.execute("INSERT OR REPLACE INTO meta VALUES('schema_version', ?)", (SCHEMA_VERSION,))
            elif version != SCHEMA_VERSION:
                raise IndexError_(f"history index {path} has schema {version}, expected {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise IndexError_(f"history index {path} is unreadable: {exc}") from exc

    def close(self) -> None:
        self.db.close()

    def _drop_older(self) -> str | None:
        """Empty an index of an older schema; the version found under the write lock (None once emptied).

        Checked again under the lock, so a second process never empties what the first has rebuilt.
        """
        with self._transaction():
            version = self._meta("schema_version")
            if version in _OLDER_VERSIONS:
                for (table,) in self.db.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'").fetchall():
                    self.db.execute(f'DROP TABLE "{table}"')
                version = None
        return version

    def _meta(self, key: str) -> str | None:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return None if row is None else str(row[0])

    # -- filling -----------------------------------------------------------

    def known(self, shas: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(shas)):
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self.db.execute(f"SELECT sha FROM commits WHERE sha IN ({marks})", chunk))
        return found

    def commit_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM commits").fetchone()[0])

    def ensure_covers(self, shas: Sequence[str], progress: Callable[[int], None] | None = None) -> int:
        """Index every ancestor of these commits that is not indexed yet; return how many were added."""
        missing = [sha for sha in dict.fromkeys(shas) if sha and sha not in self.known([sha])]
        if not missing:
            return 0
        if progress is not None and self.db.execute("SELECT 1 FROM commits LIMIT 1").fetchone() is not None:
            progress = None  # an update of a built index is quick: no need to announce it
        tips = [r[0] for r in self.db.execute("SELECT sha FROM tips ORDER BY added_at DESC LIMIT ?", (MAX_TIPS,))]
        rev_args = [*missing]
        if tips:
            rev_args += ["--ignore-missing", "--not", *tips]
        added = self.add_commits(git.iter_commits(rev_args, self.cwd), progress)
        now = _time.time()
        with self._transaction():
            self.db.executemany("INSERT OR REPLACE INTO tips VALUES(?, ?)", [(sha, now) for sha in missing])
            self.db.execute(
                "DELETE FROM tips WHERE sha NOT IN (SELECT sha FROM tips ORDER BY added_at DESC LIMIT ?)", (MAX_TIPS,)
            )
        return added

    def add_commits(self, commits: Iterable[git.Commit], progress: Callable[[int], None] | None = None) -> int:
        """Insert commits in batches, each batch one transaction, skipping known ones."""
        added = 0
        batch: list[git.Commit] = []
        for commit in commits:
            batch.append(commit)
            if len(batch) >= _BATCH:
                added += self._insert_batch(batch)
                batch = []
                if progress is not None:
                    progress(added)
        if batch:
            added += self._insert_batch(batch)
            if progress is not None:
                progress(added)
        return added

    def _transaction(self) -> "_Transaction":
        return _Transaction(self.db)

    def _ids(self, table: str, column: str, values: set[str], extra: Callable[[str], tuple[str, ...]] | None = None) -> dict[str, int]:
        ids: dict[str, int] = {}
        todo = list(values)
        for chunk in _chunks(todo):
            marks = ",".join("?" * len(chunk))
            ids.update(self.db.execute(f"SELECT {column}, id FROM {table} WHERE {column} IN ({marks})", chunk))
        new = [v for v in todo if v not in ids]
        if new:
            if extra is None:
                self.db.executemany(f"INSERT INTO {table}({column}) VALUES(?)", [(v,) for v in new])
            else:
                self.db.executemany(f"INSERT INTO {table} VALUES(NULL, ?, ?)", [(v, *extra(v)) for v in new])
            for chunk in _chunks(new):
                marks = ",".join("?" * len(chunk))
                ids.update(self.db.execute(f"SELECT {column}, id FROM {table} WHERE {column} IN ({marks})", chunk))
        return ids

    def _insert_batch(self, batch: list[git.Commit]) -> int:
        with self._transaction():
            present = self.known(c.sha for c in batch)
            fresh = [c for c in batch if c.sha not in present]
            if not fresh:
                return 0
            authors = self._ids("authors", "email", {c.author_email for c in fresh})
            paths = self._ids("paths", "path", {f.path for c in fresh for f in c.files}, lambda p: (subsystem_of(p),))
            self.db.executemany(
                "INSERT INTO commits(sha, author_id, time, n_parents) VALUES(?, ?, ?, ?)",
                [(c.sha, authors[c.author_email], c.time, len(c.parents)) for c in fresh],
            )
            commit_ids = self._ids("commits", "sha", {c.sha for c in fresh})
            change_rows = []
            subsystem_rows = []
            for c in fresh:
                cid = commit_ids[c.sha]
                aid = authors[c.author_email]
                for f in c.files:
                    change_rows.append((paths[f.path], c.time, cid, aid, f.added, f.deleted))
                for sub in {subsystem_of(f.path) for f in c.files}:
                    subsystem_rows.append((aid, sub, c.time, cid))
            self.db.executemany("INSERT OR IGNORE INTO changes VALUES(?, ?, ?, ?, ?, ?)", change_rows)
            self.db.executemany("INSERT OR IGNORE INTO commit_subsystems VALUES(?, ?, ?, ?)", subsystem_rows)
            return len(fresh)

    # -- asking ------------------------------------------------------------

    def file_histories(self, paths: Sequence[str], before: int) -> dict[str, FileHistory]:
        result: dict[str, FileHistory] = {}
        for chunk in _chunks(list(paths)):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"""SELECT p.path, MIN(c.time), MAX(c.time), COUNT(*),
                           SUM(COALESCE(c.added, 0) - COALESCE(c.deleted, 0))
                    FROM paths p JOIN changes c ON c.path_id = p.id AND c.time < ?
                    WHERE p.path IN ({marks}) GROUP BY p.path""",
                [before, *chunk],
            )
            for path, first, last, count, lines in rows:
                result[path] = FileHistory(path, int(first), int(last), int(count), max(0, int(lines or 0)))
        return result

    def distinct_prior(self, paths: Sequence[str], before: int) -> tuple[int, int]:
        """(distinct commits, distinct authors) that touched any of these paths before `before`."""
        ids = self._path_ids(paths)
        if not ids:
            return 0, 0
        # One IN list of integer ids: a join through a temp table of path
        # strings is 20x slower on a hot file set.
        marks = ",".join("?" * len(ids))
        row = self.db.execute(
            f"""SELECT COUNT(DISTINCT commit_id), COUNT(DISTINCT author_id) FROM changes
                WHERE path_id IN ({marks}) AND time < ?""",
            [*ids, before],
        ).fetchone()
        return int(row[0]), int(row[1])

    def _path_ids(self, paths: Sequence[str]) -> list[int]:
        ids: list[int] = []
        for chunk in _chunks(list(paths)):
            marks = ",".join("?" * len(chunk))
            ids.extend(int(r[0]) for r in self.db.execute(f"SELECT id FROM paths WHERE path IN ({marks})", chunk))
        return ids

    def author_history(self, email: str, subsystems: Sequence[str], before: int, recent_days: int = 90) -> AuthorHistory:
        row = self.db.execute("SELECT id FROM authors WHERE email=?", (email.lower(),)).fetchone()
        if row is None:
            return AuthorHistory(0, None, 0, 0)
        aid = int(row[0])
        count, first = self.db.execute(
            "SELECT COUNT(*), MIN(time) FROM commits WHERE author_id=? AND time < ?", (aid, before)
        ).fetchone()
        recent = self.db.execute(
            "SELECT COUNT(*) FROM commits WHERE author_id=? AND time >= ? AND time < ?",
            (aid, before - recent_days * 86400, before),
        ).fetchone()[0]
        sub_count = 0
        if subsystems:
            marks = ",".join("?" * len(subsystems))
            sub_count = self.db.execute(
                f"""SELECT COUNT(DISTINCT commit_id) FROM commit_subsystems
                    WHERE author_id=? AND subsystem IN ({marks}) AND time < ?""",
                [aid, *subsystems, before],
            ).fetchone()[0]
        return AuthorHistory(int(count), None if first is None else int(first), int(recent), int(sub_count))


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _SQL_CHUNK):
        yield items[start:start + _SQL_CHUNK]
