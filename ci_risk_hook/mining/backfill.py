"""Backfill: mine a repository's whole history in one streaming pass.

Every commit gets the same feature vector the hook would compute for a push
of that one commit (`features.extract`), but the file and author history
comes from `StreamingHistory`, an in-memory twin of the SQLite history index
fed in history order, instead of one SQL round trip per question: that is
what lets backfill keep pace with `git log` itself. A test holds the two
sources to the same answers.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right, insort
from typing import Callable, NamedTuple, Sequence

from ci_risk_hook.features.extract import RANGE_FEATURES, Limits, extract
from ci_risk_hook.features.history_index import YEAR, AuthorHistory, FileHistory, subsystem_of, weighted_experience
from ci_risk_hook.git import repo as git
from ci_risk_hook.outcomes.store import Store

# v2 (issue 12): renames followed, authors through .mailmap, merges' first-parent
# diffs, Kamei's REXP. Features stored under another version are computed again. Only the range's features
# count: a new push feature (computed when read) leaves the stored ones valid.
SCHEMA_VERSION = "features-v2:" + str(len(RANGE_FEATURES))
_WRITE_BATCH = 1000


class _File:
    __slots__ = ("first", "last", "lines", "lines_known", "commits", "authors")

    def __init__(self, t: int) -> None:
        self.first = t
        self.last = t
        self.lines = 0
        self.lines_known = True  # False once a change's line counts were unreadable (the index's UNKNOWN_LINES)
        self.commits: set[int] = set()
        self.authors: set[str] = set()

    def merged_into(self, other: _File | None) -> _File:
        """A new state holding this history and `other`'s (the file a rename lands on, if it had one)."""
        merged = _File(self.first)
        merged.last, merged.lines, merged.lines_known = self.last, self.lines, self.lines_known
        merged.commits, merged.authors = set(self.commits), set(self.authors)
        if other is not None:
            merged.first, merged.last = min(merged.first, other.first), max(merged.last, other.last)
            merged.lines += other.lines
            merged.lines_known = merged.lines_known and other.lines_known
            merged.commits |= other.commits
            merged.authors |= other.authors
        return merged


class _Author:
    __slots__ = ("times", "subsystems")

    def __init__(self) -> None:
        self.times: list[int] = []  # kept sorted, so "before t" is a bisection
        self.subsystems: dict[str, set[int]] = {}


class StreamingHistory:
    """Answers the history index's three questions from the commits ingested so far.

    Author questions honour `before` exactly, as the index does. File
    questions count every ingested commit: history order, which equals the
    index's `time < before` whenever committer times increase along history.
    """

    def __init__(self) -> None:
        self.files: dict[str, _File] = {}
        self.authors: dict[str, _Author] = {}
        self.count = 0

    def ingest(self, commit: git.Commit) -> None:
        self.count += 1
        cid = self.count
        t = commit.time
        author = self.authors.get(commit.author_email)
        if author is None:
            author = self.authors[commit.author_email] = _Author()
        insort(author.times, t)
        files = commit.history_files()
        for sub in {subsystem_of(f.path) for f in files}:
            author.subsystems.setdefault(sub, set()).add(cid)
        for change in files:
            state = self.files.get(change.path)
            before_rename = None if change.old_path is None else self.files.get(change.old_path)
            if before_rename is not None:
                # The file's history goes on under its new name (the index follows renames the same way).
                state = self.files[change.path] = before_rename.merged_into(state)
            if state is None:
                state = self.files[change.path] = _File(t)
            if t < state.first:
                state.first = t
            if t > state.last:
                state.last = t
            state.lines += (change.added or 0) - (change.deleted or 0)
            if commit.lines_unknown:
                state.lines_known = False
            state.commits.add(cid)
            state.authors.add(commit.author_email)

    def file_histories(self, paths: Sequence[str], before: int) -> dict[str, FileHistory]:
        result: dict[str, FileHistory] = {}
        for path in paths:
            state = self.files.get(path)
            if state is not None:
                lines = max(0, state.lines) if state.lines_known else None
                result[path] = FileHistory(path, state.first, state.last, len(state.commits), lines)
        return result

    def distinct_prior(self, paths: Sequence[str], before: int) -> tuple[int, int]:
        commits: set[int] = set()
        authors: set[str] = set()
        for path in paths:
            state = self.files.get(path)
            if state is not None:
                commits |= state.commits
                authors |= state.authors
        return len(commits), len(authors)

    def author_history(self, email: str, subsystems: Sequence[str], before: int) -> AuthorHistory:
        author = self.authors.get(email.lower())
        if author is None:
            return AuthorHistory(0, None, 0.0, 0)
        times = author.times
        end = bisect_left(times, before)
        if end == 0:
            return AuthorHistory(0, None, 0.0, 0)
        recent = weighted_experience(_by_age(times, end, before))
        touched: set[int] = set()
        for sub in subsystems:
            touched |= author.subsystems.get(sub, set())
        return AuthorHistory(end, times[0], recent, len(touched))


def _by_age(times: list[int], end: int, before: int) -> list[tuple[int, int]]:
    """(age in whole years before `before`, commits of that age) of the sorted times[:end], as the index groups."""
    counts: list[tuple[int, int]] = []
    age = 0
    newer = end
    while newer > 0:
        older = bisect_right(times, before - (age + 1) * YEAR, 0, newer)
        if newer > older:
            counts.append((age, newer - older))
        newer = older
        age += 1
    return counts


class BackfillStats(NamedTuple):
    commits_seen: int
    commits_added: int
    seconds: float
    lines_unknown: int = 0  # commits read whose line counts were unreadable (blobs missing: a partial clone)


def backfill_commits(
    store: Store,
    repo_id: int,
    cwd: str | None = None,
    *,
    rev_args: Sequence[str] = ("HEAD",),
    since: int | None = None,
    max_commits: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> BackfillStats:
    """Features for every commit of the history, oldest first; resumable.

    Commits already stored (with this SCHEMA_VERSION) are not computed
    again, but still pass through the streaming history, which needs every
    earlier commit to answer; features of an older version are replaced.
    """
    started = time.monotonic()
    known = store.commit_features_known(repo_id, SCHEMA_VERSION)
    history = StreamingHistory()
    limits = Limits()
    pending: list[tuple[str, int, str | None, str, dict[str, float | None]]] = []
    seen = added = unknown = 0
    for commit in git.iter_commits([*rev_args], cwd, extra=("--reverse", "--topo-order")):
        seen += 1
        unknown += commit.lines_unknown
        wanted = (
            commit.sha not in known
            and (since is None or commit.time >= since)
            and (max_commits is None or added < max_commits)
        )
        if wanted:
            result = extract([commit], history, limits=limits)
            pending.append((commit.sha, commit.time, commit.author_email, SCHEMA_VERSION, result.values))
            added += 1
            if len(pending) >= _WRITE_BATCH:
                store.add_commit_features(repo_id, pending)
                pending = []
                if progress is not None:
                    progress(seen)
        history.ingest(commit)
    if pending:
        store.add_commit_features(repo_id, pending)
    if progress is not None:
        progress(seen)
    return BackfillStats(seen, added, time.monotonic() - started, unknown)
