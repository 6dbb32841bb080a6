"""A per-repository index of who changed which file when, for fast history features.

Walking `git log -- <files>` on every push costs seconds on a large
repository; this SQLite file answers "how old is this file, who has touched
it, how experienced is this author" with indexed look-ups. It is filled once
from one streaming `git log --numstat` pass and then only with commits it has
not seen. Facts are always asked "before time t", so the same index serves a
push (t = its first commit) and backfill (t = each historical commit).

A file's history follows its renames: what was changed under its earlier
names, up to each rename, counts as its own (`_earlier_names`, bounded).
A merge adds no file history: its branch's own commits carry the changes.

Paths, subsystems and e-mails are stored as git's name keys (`git.decode_name`):
plain text that maps one-to-one to the bytes git printed, so a file whose
name is not UTF-8 has one row and is found again by the next push.

A push gives building a time budget: past it, the walk stops, the push is
scored without history features, and a detached builder finishes the walk
(`index_build`), holding the build lock so that only one process builds.
A stopped or killed walk never makes history features wrong: its commits
count as indexed only once a walk over the same targets completes.
"""

from __future__ import annotations

import os
import sqlite3
import time as _time
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence, TypeVar

from ci_risk_hook import paths
from ci_risk_hook.errors import EXIT_BLOCKED, EXIT_INTERNAL, CiRiskError
from ci_risk_hook.git import repo as git

# 2: names stored as name keys (version 1 held other spellings of non-UTF-8
# names and backslashes); an older index is a cache of the old keys, rebuilt.
# 3: renames recorded (older versions saw a rename as a delete plus an add).
SCHEMA_VERSION = "3"
_OLDER_VERSIONS = ("1", "2")
# How far a file's history follows renames: at most this many earlier names
# per file, so a push's look-ups stay a few indexed queries.
MAX_RENAMED_NAMES = 8
_T = TypeVar("_T")
MAX_TIPS = 50
_BATCH = 2000
_SQL_CHUNK = 500
# An unfinished walk: its targets, and the first commit id it may have
# written. Commits from that id on lack some ancestors until it completes.
_WALK_TARGETS = "walk_targets"
_WALK_FROM_ID = "walk_from_id"
_IDENTITIES = "mailmap"  # the fingerprint of the .mailmap the authors were read through
# Set once the index's parentless commits were found to be roots of the repository, not a shallow clone's
# boundary (`_distrust_a_shallow_build`).
_WHOLE_HISTORY = "whole_history"
# A change whose line counts could not be read (its blobs are not in this clone: `git.Commit.lines_unknown`)
# is stored with this in `added` and `deleted`; a binary file's change has NULL in both. Its net lines are 0
# either way, as an older ci-risk reading the same file computes them.
UNKNOWN_LINES = -1

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
CREATE TABLE IF NOT EXISTS renames(
    new_path_id INTEGER NOT NULL, time INTEGER NOT NULL, commit_id INTEGER NOT NULL, old_path_id INTEGER NOT NULL,
    PRIMARY KEY(new_path_id, time, commit_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tips(sha TEXT PRIMARY KEY, added_at REAL NOT NULL);
"""


class HistoryIndexError(CiRiskError):
    """The index cannot be used; the message says why (a damaged cache can be rebuilt)."""

    exit_code = EXIT_BLOCKED


class IndexBusy(CiRiskError):
    """Another process is building the index, and this caller does not wait for it."""

    exit_code = EXIT_INTERNAL


class BudgetExceeded(CiRiskError):
    """The caller's time for indexing ran out; the message says whether the build goes on in the background."""

    exit_code = EXIT_INTERNAL


class _OutOfTime(Exception):
    pass


def subsystem_of(path: str) -> str:
    """Top-level directory, the Kamei et al. notion of a subsystem."""
    head, sep, _ = path.partition("/")
    return head if sep else "(root)"


class FileHistory(NamedTuple):
    path: str
    first_time: int
    last_time: int
    changes: int
    # Net lines added over its history: its size, for text files. None when a change's line counts were
    # not readable (a partial clone's missing blobs): a size made of the readable changes only would be wrong.
    lines: int | None


YEAR = 31_557_600  # seconds in a year of 365.25 days


class AuthorHistory(NamedTuple):
    commits: int
    first_time: int | None
    recent_experience: float  # Kamei's REXP: see `weighted_experience`
    subsystem_commits: int


def weighted_experience(counts_by_age: Iterable[tuple[int, int]]) -> float:
    """Kamei et al.'s REXP from (age in whole years, commits of that age): each commit weighs 1/(age + 1).

    Whole years, as Commit Guru computes it: a commit this year weighs 1, one
    made one to two years ago 1/2, and so on. Summed youngest first, so the
    index and backfill's streaming history give the same float.
    """
    return sum(count / (age + 1) for age, count in sorted(counts_by_age))


def build(
    path: str,
    tips: Sequence[str],
    progress: Callable[[int], None] | None = None,
    *,
    rebuild: bool = False,
    on_wait: Callable[[str], None] | None = None,
) -> tuple[int, int]:
    """`ci-risk index`: cover these commits fully, in the foreground; (commits added, commits indexed).

    A background builder is waited for rather than raced (`on_wait` is told
    who it is), and `rebuild` deletes the index only while holding the lock.
    """
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        lock = BuildLock(paths.index_lock(path))
        if not lock.acquire(wait=False):
            if on_wait is not None:
                on_wait(lock.holder())
            lock.acquire(wait=True)
    except OSError as exc:
        raise _unusable(path, exc) from exc
    try:
        if rebuild:
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(path + suffix):
                    os.remove(path + suffix)
        index = HistoryIndex(path)
        try:
            return index.ensure_covers(tips, progress, lock=lock), index.commit_count()
        finally:
            index.close()
    finally:
        lock.release()


def _unusable(path: str, exc: BaseException) -> HistoryIndexError:
    """The real reason the index cannot be opened: a permission or a misplaced file says so, not "corrupt"."""
    directory = os.path.dirname(path) or "."
    if os.path.lexists(directory) and not os.path.isdir(directory):
        return HistoryIndexError(f"history index unavailable: {directory} is not a directory (move it away)")
    if os.path.isdir(path):
        return HistoryIndexError(f"history index unavailable: {path} is a directory, not the index file (move it away)")
    for where, mode in ((directory, os.R_OK | os.W_OK | os.X_OK), (path, os.R_OK | os.W_OK)):
        if os.path.exists(where) and not os.access(where, mode):
            return HistoryIndexError(
                f"history index unavailable: permission denied on {where} (check its owner and permissions)"
            )
    if isinstance(exc, OSError):
        return HistoryIndexError(f"history index unavailable: {directory}: {exc.strerror or exc}")
    return HistoryIndexError(
        f"history index {path} is unreadable: {exc} (delete the file or run `ci-risk index --rebuild`)"
    )


class HistoryIndex:
    """The index of one repository.

    Authors are stored as git prints them through the repository's .mailmap
    (`git.Commit.author_email`); `identities` is that .mailmap's fingerprint
    (`git.mailmap_fingerprint`, read from `cwd`'s repository when None). An
    index built through another .mailmap holds other identities: it is
    emptied and rebuilt, as an index of an older schema is.
    """

    def __init__(self, path: str, cwd: str | None = None, identities: str | None = None) -> None:
        self.path = path
        self.cwd = cwd
        try:
            if identities is None:
                identities = git.mailmap_fingerprint(git.repo_info(cwd).toplevel)
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            version = self._meta("schema_version")
            if version in _OLDER_VERSIONS or (version == SCHEMA_VERSION and self._meta(_IDENTITIES) != identities):
                version = self._drop_stale(identities)
            if version is None:
                self.db.executescript(_SCHEMA)
                self.db.execute("INSERT OR REPLACE INTO meta VALUES('schema_version', ?)", (SCHEMA_VERSION,))
                self.db.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (_IDENTITIES, identities))
            elif version != SCHEMA_VERSION:
                raise HistoryIndexError(f"history index {path} has schema {version}, expected {SCHEMA_VERSION}")
            else:
                self._distrust_unfinished_first_build()
                self._distrust_a_shallow_build(identities)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise _unusable(path, exc) from exc

    def close(self) -> None:
        self.db.close()

    def _drop_stale(self, identities: str) -> str | None:
        """Empty an index of an older schema or other identities; the version under the write lock (None once emptied).

        Checked again under the lock, so a second process never empties what the first has rebuilt.
        """
        with self._transaction():
            version = self._meta("schema_version")
            if version in _OLDER_VERSIONS or (version == SCHEMA_VERSION and self._meta(_IDENTITIES) != identities):
                self._drop_tables()
                version = None
        return version

    def _drop_tables(self) -> None:
        """Empty the index (inside a transaction): every table goes, the schema is made again by the caller."""
        for (table,) in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
        ).fetchall():
            self.db.execute(f'DROP TABLE "{table}"')

    def _distrust_a_shallow_build(self, identities: str) -> None:
        """Rebuild an index whose parentless commits have parents in the repository: it was built in a shallow clone.

        ci-risk 0.1.0 let `ci-risk index` build in a shallow clone: the boundary commits went in as
        roots, and once the clone was unshallowed every walk added only commits newer than the index's
        tips, so file ages, earlier commits and author experience came from the few commits of the
        shallow clone, silently. Checked once per index, in a clone that is not shallow (where a
        boundary commit still looks like a root); the check is then recorded (`_WHOLE_HISTORY`).
        Under the write lock, so two processes never empty it twice.
        """
        if self._meta(_WHOLE_HISTORY) is not None:
            return
        if git.repo_info(self.cwd).is_shallow:
            return  # history features are not used in a shallow clone: checked once it is whole
        with self._transaction():
            if self._meta(_WHOLE_HISTORY) is not None:
                return
            roots = [str(r[0]) for r in self.db.execute("SELECT sha FROM commits WHERE n_parents = 0")]
            if not roots:
                return  # nothing indexed yet, or a walk still to reach the first commit: checked next time
            listed = git.run(
                ["rev-list", "--no-walk=unsorted", "--parents", "--ignore-missing", "--stdin"],
                self.cwd,
                stdin=("\n".join(roots) + "\n").encode(),
            )
            if any(len(line.split()) > 1 for line in listed.decode("ascii").splitlines()):
                self._drop_tables()
                for statement in _SCHEMA.split(";"):  # not executescript: it would commit the transaction
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute("INSERT OR REPLACE INTO meta VALUES('schema_version', ?)", (SCHEMA_VERSION,))
                self.db.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (_IDENTITIES, identities))
            else:
                self.db.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (_WHOLE_HISTORY, "1"))

    def _meta(self, key: str) -> str | None:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return None if row is None else str(row[0])

    def _distrust_unfinished_first_build(self) -> None:
        """Commits without any recorded tip come from a first build killed before it finished.

        The first release could leave one (a push interrupted while indexing);
        its commits then lacked their older history. Mark it as an unfinished
        walk of its first (newest) commit, so the next walk completes it.
        """
        if self._meta(_WALK_FROM_ID) is not None or self.db.execute("SELECT 1 FROM tips LIMIT 1").fetchone():
            return
        first = self.db.execute("SELECT sha FROM commits ORDER BY id LIMIT 1").fetchone()
        if first is not None:
            with self._transaction():
                self._set_walk([str(first[0])], from_id=1)

    # -- filling -----------------------------------------------------------

    def known(self, shas: Iterable[str]) -> set[str]:
        """Commits present in the index (their history may still be incomplete: see `covered`)."""
        found: set[str] = set()
        for chunk in _chunks(list(shas)):
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self.db.execute(f"SELECT sha FROM commits WHERE sha IN ({marks})", chunk))
        return found

    def covered(self, shas: Iterable[str]) -> set[str]:
        """Commits whose whole history is indexed.

        A walk writes the newest commits first, so those written by a walk
        that has not completed (stopped by a budget, or killed) lack older
        ancestors: history features from them would be wrong, not just partial.
        """
        # One statement per chunk, so it sees the walk marker and the commits
        # at one moment: a walk commits its marker before any of its commits.
        found: set[str] = set()
        for chunk in _chunks(list(shas)):
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in self.db.execute(
                    f"""SELECT sha FROM commits WHERE sha IN ({marks}) AND id < COALESCE(
                        (SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?), 9223372036854775807)""",
                    [*chunk, _WALK_FROM_ID],
                )
            )
        return found

    def commit_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM commits").fetchone()[0])

    def _uncovered(self, shas: Sequence[str]) -> list[str]:
        wanted = [sha for sha in dict.fromkeys(shas) if sha]
        done = self.covered(wanted) if wanted else set()
        return [sha for sha in wanted if sha not in done]

    def ensure_covers(
        self,
        shas: Sequence[str],
        progress: Callable[[int], None] | None = None,
        *,
        deadline: float | None = None,
        lock: BuildLock | None = None,
    ) -> int:
        """Index every ancestor of these commits that is not indexed yet; return how many were added.

        Without a `deadline` this waits for any other builder, then builds
        fully. With one (a `time.monotonic()` value: the push path) it never
        waits: IndexBusy when another process is building, BudgetExceeded
        when time runs out, after handing the rest to a background builder.
        `lock` is a build lock the caller already holds (that builder's).
        """
        if not self._uncovered(shas):
            return 0
        own = lock is None
        held = lock if lock is not None else BuildLock(paths.index_lock(self.path))
        if own and not held.acquire(wait=deadline is None):
            raise IndexBusy(f"the history index is being built by another process ({held.holder()})")
        try:
            missing = self._uncovered(shas)  # another builder may have covered them while we waited
            if not missing:
                return 0
            if deadline is not None:
                progress = None  # within about a second, or in the background: nothing to show
            try:
                return self._walk(missing, progress, deadline)
            except _OutOfTime:
                pass
            from ci_risk_hook.features.index_build import continue_in_background

            detail = continue_in_background(held, self.cwd, missing)
            raise BudgetExceeded(detail)
        finally:
            if own:
                held.release()

    def _walk(self, missing: list[str], progress: Callable[[int], None] | None, deadline: float | None) -> int:
        """One `git log` over the missing commits, minus what recorded tips already cover; resumes an unfinished one."""
        unfinished = self._meta(_WALK_TARGETS)
        targets = list(dict.fromkeys([*missing, *(unfinished.split() if unfinished else [])]))
        if progress is not None and self.db.execute("SELECT 1 FROM commits LIMIT 1").fetchone() is not None:
            progress = None  # an update of a built index is quick: no need to announce it
        with self._transaction():
            self._set_walk(targets, from_id=None)
        if deadline is not None and _time.monotonic() >= deadline:
            raise _OutOfTime()
        tips = [r[0] for r in self.db.execute("SELECT sha FROM tips ORDER BY added_at DESC LIMIT ?", (MAX_TIPS,))]
        # --ignore-missing: a target of a killed walk may have been garbage-collected since.
        rev_args = ["--ignore-missing", *targets]
        if tips:
            rev_args += ["--not", *tips]
        commits = git.iter_commits(rev_args, self.cwd, merge_diffs=False)
        try:
            added = self.add_commits(commits, progress, deadline)
        finally:
            close = getattr(commits, "close", None)
            if close is not None:
                close()  # stops git at once when the budget ran out
        now = _time.time()
        with self._transaction():
            self.db.executemany("INSERT OR REPLACE INTO tips VALUES(?, ?)", [(sha, now) for sha in targets])
            self.db.execute(
                "DELETE FROM tips WHERE sha NOT IN (SELECT sha FROM tips ORDER BY added_at DESC LIMIT ?)", (MAX_TIPS,)
            )
            self.db.execute("DELETE FROM meta WHERE key IN (?, ?)", (_WALK_TARGETS, _WALK_FROM_ID))
        return added

    def _set_walk(self, targets: list[str], from_id: int | None) -> None:
        """Record an unfinished walk (inside a transaction); an earlier unfinished one keeps its start."""
        if self._meta(_WALK_FROM_ID) is None:
            start = (
                from_id
                if from_id is not None
                else int(self.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM commits").fetchone()[0])
            )
            self.db.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (_WALK_FROM_ID, str(start)))
        self.db.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (_WALK_TARGETS, " ".join(targets)))

    def add_commits(
        self,
        commits: Iterable[git.Commit],
        progress: Callable[[int], None] | None = None,
        deadline: float | None = None,
    ) -> int:
        """Insert commits in batches, each batch one transaction, skipping known ones; stop at `deadline`."""
        added = 0
        batch: list[git.Commit] = []
        for commit in commits:
            if deadline is not None and _time.monotonic() >= deadline:
                raise _OutOfTime()
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

    def _ids(
        self, table: str, column: str, values: set[str], extra: Callable[[str], tuple[str, ...]] | None = None
    ) -> dict[str, int]:
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
            names = {f.path for c in fresh for f in c.history_files()} | {
                f.old_path for c in fresh for f in c.history_files() if f.old_path is not None
            }
            paths = self._ids("paths", "path", names, lambda p: (subsystem_of(p),))
            self.db.executemany(
                "INSERT INTO commits(sha, author_id, time, n_parents) VALUES(?, ?, ?, ?)",
                [(c.sha, authors[c.author_email], c.time, len(c.parents)) for c in fresh],
            )
            commit_ids = self._ids("commits", "sha", {c.sha for c in fresh})
            change_rows = []
            subsystem_rows = []
            rename_rows = []
            for c in fresh:
                cid = commit_ids[c.sha]
                aid = authors[c.author_email]
                for f in c.history_files():
                    added, deleted = (UNKNOWN_LINES, UNKNOWN_LINES) if c.lines_unknown else (f.added, f.deleted)
                    change_rows.append((paths[f.path], c.time, cid, aid, added, deleted))
                    if f.old_path is not None:
                        rename_rows.append((paths[f.path], c.time, cid, paths[f.old_path]))
                for sub in {subsystem_of(f.path) for f in c.history_files()}:
                    subsystem_rows.append((aid, sub, c.time, cid))
            self.db.executemany("INSERT OR IGNORE INTO changes VALUES(?, ?, ?, ?, ?, ?)", change_rows)
            self.db.executemany("INSERT OR IGNORE INTO commit_subsystems VALUES(?, ?, ?, ?)", subsystem_rows)
            self.db.executemany("INSERT OR IGNORE INTO renames VALUES(?, ?, ?, ?)", rename_rows)
            return len(fresh)

    # -- asking ------------------------------------------------------------

    def file_histories(self, paths: Sequence[str], before: int) -> dict[str, FileHistory]:
        """Each file's history before `before`, through its earlier names (see `_earlier_names`)."""
        result: dict[str, FileHistory] = {}
        for chunk in _chunks(list(paths)):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"""SELECT p.path, MIN(c.time), MAX(c.time), COUNT(*),
                           SUM(COALESCE(c.added, 0) - COALESCE(c.deleted, 0)), MIN(c.added) = {UNKNOWN_LINES}
                    FROM paths p JOIN changes c ON c.path_id = p.id AND c.time < ?
                    WHERE p.path IN ({marks}) GROUP BY p.path""",
                [before, *chunk],
            )
            for path, first, last, count, lines, unknown in rows:
                size = None if unknown else int(lines or 0)
                result[path] = FileHistory(path, int(first), int(last), int(count), size)
        for path, earlier in self._earlier_names(paths, before).items():
            for path_id, until in earlier:
                first, last, count, lines, unknown = self.db.execute(
                    f"""SELECT MIN(time), MAX(time), COUNT(*), SUM(COALESCE(added, 0) - COALESCE(deleted, 0)),
                              MIN(added) = {UNKNOWN_LINES}
                       FROM changes WHERE path_id = ? AND time < ?""",
                    (path_id, until),
                ).fetchone()
                if not count:
                    continue
                size = None if unknown else int(lines or 0)
                own = result.get(path)
                if own is None:
                    result[path] = FileHistory(path, int(first), int(last), int(count), size)
                else:
                    result[path] = FileHistory(
                        path,
                        min(own.first_time, int(first)),
                        max(own.last_time, int(last)),
                        own.changes + int(count),
                        None if own.lines is None or size is None else own.lines + size,
                    )
        return {path: h if h.lines is None else h._replace(lines=max(0, h.lines)) for path, h in result.items()}

    def _earlier_names(self, paths: Sequence[str], before: int) -> dict[str, list[tuple[int, int]]]:
        """For each renamed file, (path id, until) of its earlier names: what was changed under them before the rename.

        Follows renames of renames, at most MAX_RENAMED_NAMES per file. A
        name's changes count up to and including its rename's time (`until`
        is exclusive), as backfill's streaming history hands a file's history on.
        """
        ids = dict(zip(*self._path_id_map(paths)))
        result: dict[str, list[tuple[int, int]]] = {}
        # frontier: (file, path id, until) whose renames are still to be looked up
        frontier = [(path, pid, before) for path, pid in ids.items()]
        seen: dict[str, set[int]] = {path: {pid} for path, pid in ids.items()}
        while frontier:
            by_id: dict[int, list[tuple[str, int]]] = {}
            for path, pid, until in frontier:
                by_id.setdefault(pid, []).append((path, until))
            frontier = []
            rows: list[tuple[int, int, int]] = []
            for chunk in _chunks(list(by_id)):
                marks = ",".join("?" * len(chunk))
                rows += self.db.execute(
                    f"SELECT new_path_id, time, old_path_id FROM renames WHERE new_path_id IN ({marks}) AND time < ?",
                    [*chunk, before],
                ).fetchall()
            for new_id, when, old_id in rows:
                for path, until in by_id[int(new_id)]:
                    names = seen[path]
                    if when >= until or old_id in names or len(names) > MAX_RENAMED_NAMES:
                        continue
                    names.add(int(old_id))
                    result.setdefault(path, []).append((int(old_id), int(when) + 1))
                    frontier.append((path, int(old_id), int(when) + 1))
        return result

    def distinct_prior(self, paths: Sequence[str], before: int) -> tuple[int, int]:
        """(distinct commits, distinct authors) that touched these paths, or their earlier names, before `before`."""
        ids = self._path_ids(paths)
        if not ids:
            return 0, 0
        # One IN list of integer ids: a join through a temp table of path
        # strings is 20x slower on a hot file set.
        marks = ",".join("?" * len(ids))
        own = f"FROM changes WHERE path_id IN ({marks}) AND time < ?"
        earlier = [pair for pairs in self._earlier_names(paths, before).values() for pair in pairs]
        if not earlier:
            row = self.db.execute(
                f"SELECT COUNT(DISTINCT commit_id), COUNT(DISTINCT author_id) {own}", [*ids, before]
            ).fetchone()
            return int(row[0]), int(row[1])
        commits: set[int] = set()
        authors: set[int] = set()
        queries: list[tuple[str, list[int]]] = [(f"SELECT DISTINCT commit_id, author_id {own}", [*ids, before])]
        for start in range(0, len(earlier), _SQL_CHUNK // 2):
            chunk = earlier[start : start + _SQL_CHUNK // 2]
            terms = " OR ".join("(path_id = ? AND time < ?)" for _ in chunk)
            args = [value for pair in chunk for value in pair]
            queries.append((f"SELECT DISTINCT commit_id, author_id FROM changes WHERE {terms}", args))
        for sql, args in queries:
            for commit_id, author_id in self.db.execute(sql, args):
                commits.add(int(commit_id))
                authors.add(int(author_id))
        return len(commits), len(authors)

    def _path_ids(self, paths: Sequence[str]) -> list[int]:
        return self._path_id_map(paths)[1]

    def _path_id_map(self, paths: Sequence[str]) -> tuple[list[str], list[int]]:
        names: list[str] = []
        ids: list[int] = []
        for chunk in _chunks(list(paths)):
            marks = ",".join("?" * len(chunk))
            for name, pid in self.db.execute(f"SELECT path, id FROM paths WHERE path IN ({marks})", chunk):
                names.append(str(name))
                ids.append(int(pid))
        return names, ids

    def author_history(self, email: str, subsystems: Sequence[str], before: int) -> AuthorHistory:
        row = self.db.execute("SELECT id FROM authors WHERE email=?", (email.lower(),)).fetchone()
        if row is None:
            return AuthorHistory(0, None, 0.0, 0)
        aid = int(row[0])
        count, first = self.db.execute(
            "SELECT COUNT(*), MIN(time) FROM commits WHERE author_id=? AND time < ?", (aid, before)
        ).fetchone()
        recent = weighted_experience(
            (int(age), int(n))
            for age, n in self.db.execute(
                "SELECT (? - time) / ?, COUNT(*) FROM commits WHERE author_id=? AND time < ? GROUP BY 1",
                (before, YEAR, aid, before),
            )
        )
        sub_count = 0
        if subsystems:
            marks = ",".join("?" * len(subsystems))
            sub_count = self.db.execute(
                f"""SELECT COUNT(DISTINCT commit_id) FROM commit_subsystems
                    WHERE author_id=? AND subsystem IN ({marks}) AND time < ?""",
                [aid, *subsystems, before],
            ).fetchone()[0]
        return AuthorHistory(int(count), None if first is None else int(first), recent, int(sub_count))


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")


class BuildLock:
    """The right to write the index: one builder at a time, so two pushes never build twice.

    An flock on a file next to the index: the kernel frees it when its holder
    exits or is killed, so a lock file left behind is never stale, it just
    names its last holder. A push hands its lock to the background builder
    by passing the descriptor on. Where flock is missing (not POSIX, some
    network file systems) nothing is locked and nothing is built in the background.
    """

    def __init__(self, path: str, fd: int | None = None) -> None:
        self.path = path
        self.fd = fd

    def acquire(self, wait: bool) -> bool:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError:  # a file system without flock (some network mounts): build unlocked, in the foreground
            os.close(fd)
            return True
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.name_holder()
        return True

    def name_holder(self) -> None:
        """Write who holds the lock into the file, for messages (the lock itself is the flock)."""
        if self.fd is None:
            return
        text = f"pid {os.getpid()} since {_time.strftime('%H:%M:%S')}\n".encode()
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, text, 0)
        except OSError:
            pass

    def holder(self) -> str:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                return fh.read().strip() or "unknown process"
        except OSError:
            return "unknown process"

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _chunks(items: list[_T]) -> Iterator[list[_T]]:
    for start in range(0, len(items), _SQL_CHUNK):
        yield items[start : start + _SQL_CHUNK]
