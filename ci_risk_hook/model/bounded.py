"""The CI training table of many repositories, read in bounded memory.

`dataset.ci_table` holds every build of a repository, its features and a
training row per build as Python objects: about 380 MiB per 100,000 builds,
so an organisation's history (millions of builds) does not fit. Here:

- **Sample, stratified by repository and time.** At most `max_rows` builds are
  predicted rows. Each repository gets a share proportional to its labelled
  builds (largest remainders), so the organisation model sees each repository
  as often as it builds; within a repository the sample is systematic in start
  order (one build out of each run of n/q consecutive builds), so every period
  of its history is represented and the newest builds, which validation and
  calibration use, are never left out. Deterministic: no seed, the same store
  gives the same rows. The selection is made by the database (ROW_NUMBER), so
  the features of builds that are not sampled never leave it.
- **Stream.** Each repository's builds arrive in finish order through a
  server-side cursor and feed the same windows `ci_table` keeps (the latest
  200 builds, the latest 20 per branch); nothing else of them is kept.
- **Compact arrays.** Rows go straight into preallocated float32 arrays.

With `max_rows` at least the number of labelled builds the table equals
`ci_table`'s (in float32): tests check it.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any, Generator, NamedTuple, Sequence

import numpy as np

from ci_risk_hook.features.extract import (
    BRANCH_WINDOW,
    FEATURE_NAMES,
    TOUCHED_WINDOW,
    push_features,
    store_features,
)
from ci_risk_hook.model.dataset import DEMO_FEATURES, DatasetError, Table, _DemoEncoder, _vector
from ci_risk_hook.outcomes.records import FAIL
from ci_risk_hook.outcomes.store import PriorBuild, Store

DEFAULT_MAX_ROWS = 200_000
FETCH_ROWS = 5_000  # rows per round trip of a stream


class Share(NamedTuple):
    repo_id: int
    labelled: int  # builds with features and a start time
    quota: int  # how many of them are sampled


def shares(store: Store, repo_ids: Sequence[int], max_rows: int) -> list[Share]:
    """Each repository's quota: proportional to its labelled builds, the remainders to the largest fractions."""
    wanted = set(repo_ids)
    counts = {
        int(r[0]): int(r[1])
        for r in store.execute(
            """SELECT b.repo_id, COUNT(*) FROM builds b JOIN build_features f ON f.build_id = b.id
               WHERE b.started_at IS NOT NULL GROUP BY b.repo_id"""
        ).fetchall()
        if int(r[0]) in wanted
    }
    total = sum(counts.values())
    if total <= max_rows:
        return [Share(r, counts.get(r, 0), counts.get(r, 0)) for r in repo_ids]
    exact = {r: counts.get(r, 0) * max_rows / total for r in repo_ids}
    quota = {r: int(v) for r, v in exact.items()}
    for r in sorted(repo_ids, key=lambda r: (quota[r] - exact[r], r))[: max_rows - sum(quota.values())]:
        quota[r] += 1
    return [Share(r, counts.get(r, 0), quota[r]) for r in repo_ids]


_BUILD = "b.id, b.commit_sha, b.branch, b.status, b.started_at, b.finished_at, f.author, f.files"

# The sampled builds of one repository, oldest start first: row rn of n is kept when (rn*q)/n steps up.
_SAMPLED = f"""SELECT {_BUILD}, f.features
    FROM (SELECT b.id, ROW_NUMBER() OVER (ORDER BY b.started_at, b.id) AS rn
          FROM builds b JOIN build_features f ON f.build_id = b.id
          WHERE b.repo_id = ? AND b.started_at IS NOT NULL) s
    JOIN builds b ON b.id = s.id JOIN build_features f ON f.build_id = s.id
    WHERE (s.rn * ?) / ? > ((s.rn - 1) * ?) / ?
    ORDER BY b.started_at, b.id"""

# Every build of one repository in finish order: what the history windows are fed with.
_FINISHED = f"""SELECT {_BUILD} FROM builds b LEFT JOIN build_features f ON f.build_id = b.id
    WHERE b.repo_id = ? ORDER BY b.finished_at, b.id"""


class _Rows:
    """Preallocated float32 columns, filled a row at a time."""

    def __init__(self, capacity: int) -> None:
        self.X = np.empty((capacity, len(FEATURE_NAMES)), dtype=np.float32)
        self.demo = np.empty((capacity, len(DEMO_FEATURES)), dtype=np.float32)
        self.y = np.empty(capacity, dtype=np.int8)
        self.started = np.empty(capacity, dtype=np.int64)
        self.finished = np.empty(capacity, dtype=np.int64)
        self.parrot = np.empty(capacity, dtype=np.float32)
        self.commits: list[str] = []
        self.branches: list[str | None] = []
        self.n = 0

    def table(self) -> Table:
        n = self.n
        order = np.argsort(self.started[:n], kind="stable")  # as dataset.concat orders several repositories
        return Table(
            self.X[:n][order],
            self.y[:n][order],
            self.started[:n][order],
            self.finished[:n][order],
            self.parrot[:n][order],
            self.demo[:n][order],
            [self.commits[i] for i in order],
            [self.branches[i] for i in order],
            "ci",
        )


def _prior(row: Sequence[Any]) -> PriorBuild:
    _, commit, branch, status, started, finished, author, files = row[:8]
    return PriorBuild(
        commit,
        branch,
        status == FAIL,
        int(started or finished or 0),
        int(finished or 0),
        author,
        frozenset(json.loads(files) if files else ()),
    )


def _repository(store: Store, share: Share, out: _Rows) -> None:
    """Append one repository's sampled rows, replaying its history windows as `ci_table` does."""
    if share.quota == 0:
        return
    n, q = share.labelled, share.quota
    finished: Generator[Sequence[Any], None, None] = store.stream(_FINISHED, (share.repo_id,), FETCH_ROWS)
    pending = next(finished, None)
    recent: deque[PriorBuild] = deque(maxlen=TOUCHED_WINDOW)
    on_branch: dict[str | None, deque[PriorBuild]] = {}
    demo = _DemoEncoder()
    for row in store.stream(_SAMPLED, (share.repo_id, q, n, q, n), FETCH_ROWS):
        start = int(row[4])
        while pending is not None and int(pending[5] or 0) < start:
            prior = _prior(pending)
            recent.append(prior)
            on_branch.setdefault(prior.branch, deque(maxlen=BRANCH_WINDOW)).append(prior)
            pending = next(finished, None)
        author, files, values = row[6], json.loads(row[7]), json.loads(row[8])
        window = {id(p): p for p in recent}
        for p in on_branch.get(row[2], ()):
            window[id(p)] = p
        prior_list = sorted(window.values(), key=lambda p: (p.finished_at, p.started_at))
        merged = dict(values)
        merged.update(store_features(prior_list, row[2], files, author, start))
        merged.update(push_features(row[2]))
        k = out.n
        out.X[k] = _vector(merged)
        out.demo[k] = demo.encode(author, files, merged)
        out.y[k] = 1 if row[3] == FAIL else 0
        out.started[k] = start
        out.finished[k] = int(row[5]) if row[5] is not None else start
        out.parrot[k] = 1.0 if merged.get("prev_build_failed") == 1.0 else 0.0
        out.commits.append(row[1])
        out.branches.append(row[2])
        out.n += 1
    finished.close()


def sampled_ci_table(store: Store, repo_ids: Sequence[int], max_rows: int = DEFAULT_MAX_ROWS) -> Table:
    """The CI table of these repositories, at most `max_rows` rows, in bounded memory (see the module)."""
    with store.snapshot():  # counts and rows from one view: a writer at work cannot push the sample past its size
        plan = shares(store, repo_ids, max_rows)
        out = _Rows(sum(s.quota for s in plan))
        for share in plan:
            _repository(store, share, out)
    if out.n == 0:
        raise DatasetError("no labelled history: record or import CI outcomes first")
    return out.table()
