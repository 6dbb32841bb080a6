"""Training tables from the history store, in time order.

The build-history features of each build are computed here with the same
`store_features` and the same window (the latest 200 builds plus the latest
20 on its branch) that the hook uses, but only from builds that *finished
before this one started*: a model must never learn from the future.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any, Sequence

import numpy as np

from ci_risk_hook.errors import EXIT_BLOCKED, CiRiskError
from ci_risk_hook.features.extract import (
    BRANCH_WINDOW,
    FEATURE_NAMES,
    TOUCHED_WINDOW,
    push_features,
    store_features,
)
from ci_risk_hook.outcomes.store import PriorBuild, Store

DEMO_FEATURES = ("demo_author", "demo_extension", "demo_changes")


class Table:
    """One row per labelled build (or commit), oldest first (a plain class: it has a length of its own)."""

    __slots__ = ("X", "y", "started", "finished", "parrot", "demo", "commits", "branches", "source")

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        started: np.ndarray,
        finished: np.ndarray,
        parrot: np.ndarray,
        demo: np.ndarray,
        commits: list[str],
        branches: list[str | None],
        source: str,
    ) -> None:
        self.X = X  # features in FEATURE_NAMES order, NaN = unknown
        self.y = y  # 1 = CI failed (or fix-inducing)
        self.started = started  # seconds since the epoch
        self.finished = finished
        self.parrot = parrot  # 1 if the previous build on the branch failed (the baseline's prediction)
        self.demo = demo  # the original demo's features: author, file extension, change count
        self.commits = commits
        self.branches = branches
        self.source = source  # "ci" or "szz"

    def with_features(self, X: np.ndarray) -> "Table":
        return Table(
            X, self.y, self.started, self.finished, self.parrot, self.demo, self.commits, self.branches, self.source
        )

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: Sequence[int] | np.ndarray) -> "Table":
        idx = np.asarray(index, dtype=int)
        return Table(
            self.X[idx],
            self.y[idx],
            self.started[idx],
            self.finished[idx],
            self.parrot[idx],
            self.demo[idx],
            [self.commits[i] for i in idx],
            [self.branches[i] for i in idx],
            self.source,
        )


class DatasetError(CiRiskError):
    """Not enough labelled history to learn from."""

    exit_code = EXIT_BLOCKED


def _vector(values: dict[str, Any]) -> list[float]:
    return [np.nan if values.get(name) is None else float(values[name]) for name in FEATURE_NAMES]


class _DemoEncoder:
    """The seed demo's inputs as numbers: author id by first appearance, dominant extension id, churn."""

    def __init__(self) -> None:
        self.authors: dict[str, int] = {}
        self.extensions: dict[str, int] = {}

    def encode(self, author: str | None, files: Sequence[str], values: dict[str, Any]) -> list[float]:
        author_id = self.authors.setdefault(author or "", len(self.authors))
        exts = [os.path.splitext(f)[1].lower() for f in files]
        dominant = max(set(exts), key=exts.count) if exts else ""
        ext_id = self.extensions.setdefault(dominant, len(self.extensions))
        churn = float((values.get("la") or 0) + (values.get("ld") or 0))
        return [float(author_id), float(ext_id), churn]


def ci_table(store: Store, repo_id: int) -> Table:
    """Real CI outcomes with the features of their ranges and of the builds before them."""
    builds = store.builds(repo_id)
    features = store.build_features(repo_id)
    by_finish = sorted(builds, key=lambda b: (b.finished_at or 0, b.id))
    recent: deque[PriorBuild] = deque(maxlen=TOUCHED_WINDOW)
    on_branch: dict[str | None, deque[PriorBuild]] = {}
    demo = _DemoEncoder()
    rows: list[list[float]] = []
    demo_rows: list[list[float]] = []
    y: list[int] = []
    started: list[int] = []
    finished: list[int] = []
    parrot: list[float] = []
    commits: list[str] = []
    branches: list[str | None] = []
    j = 0
    # A build with no start time cannot be placed in time: it may inform later builds, never be predicted.
    ordered = sorted(
        (b for b in builds if b.id in features and b.started_at is not None), key=lambda b: (b.started_at or 0, b.id)
    )
    for b in ordered:
        start = b.started_at if b.started_at is not None else (b.finished_at or 0)
        while j < len(by_finish) and (by_finish[j].finished_at or 0) < start:
            done = by_finish[j]
            author, files, _ = features.get(done.id, (None, [], {}))
            prior = PriorBuild(
                done.commit,
                done.branch,
                done.status == "fail",
                done.started_at or done.finished_at or 0,
                done.finished_at or 0,
                author,
                frozenset(files),
            )
            recent.append(prior)
            on_branch.setdefault(done.branch, deque(maxlen=BRANCH_WINDOW)).append(prior)
            j += 1
        author, files, values = features[b.id]
        window = {id(p): p for p in recent}
        for p in on_branch.get(b.branch, ()):
            window[id(p)] = p
        prior_list = sorted(window.values(), key=lambda p: (p.finished_at, p.started_at))
        merged = dict(values)
        merged.update(store_features(prior_list, b.branch, files, author, start))
        merged.update(push_features(b.branch))
        rows.append(_vector(merged))
        demo_rows.append(demo.encode(author, files, merged))
        y.append(1 if b.status == "fail" else 0)
        started.append(start)
        finished.append(b.finished_at if b.finished_at is not None else start)
        parrot.append(1.0 if merged.get("prev_build_failed") == 1.0 else 0.0)
        commits.append(b.commit)
        branches.append(b.branch)
    return _table(rows, y, started, finished, parrot, demo_rows, commits, branches, "ci")


LABEL_NEVER_KNOWN = 2**62  # "finished" time of a label whose evidence is not in the history: never trained on


def szz_table(store: Store, repo_id: int) -> Table:
    """Commits labelled by SZZ (and reverts) from backfill: a fix-inducing commit counts as a failure.

    A commit is "finished" when its label became knowable: at its own time if
    nothing marks it, at the earliest fixing or reverting commit otherwise. A
    backtest that counted it finished at commit time would train on labels
    from fixes that did not exist yet when the predicted push happened.
    """
    evidence: dict[str, list[str]] = {}
    for sha, _, shas, _ in store.labels(repo_id):
        evidence.setdefault(sha, []).extend(shas.split())
    commit_rows = list(store.commit_features(repo_id))
    committed_at = {sha: t for sha, t, _, _ in commit_rows}
    demo = _DemoEncoder()
    rows, demo_rows, y, started, finished, commits = [], [], [], [], [], []
    for sha, t, author, values in commit_rows:
        rows.append(_vector(values))
        demo_rows.append(demo.encode(author, [], values))
        y.append(1 if sha in evidence else 0)
        started.append(t)
        finished.append(_label_known_at(t, evidence.get(sha), committed_at))
        commits.append(sha)
    n = len(y)
    return _table(rows, y, started, finished, [0.0] * n, demo_rows, commits, [None] * n, "szz")


def _label_known_at(committed: int, evidence: list[str] | None, committed_at: dict[str, int]) -> int:
    if evidence is None:
        return committed
    times = [committed_at[e] for e in evidence if e in committed_at]
    return max(committed, min(times)) if times else LABEL_NEVER_KNOWN


def _table(
    rows: list[list[float]],
    y: list[int],
    started: list[int],
    finished: list[int],
    parrot: list[float],
    demo_rows: list[list[float]],
    commits: list[str],
    branches: list[str | None],
    source: str,
) -> Table:
    width = len(FEATURE_NAMES)
    return Table(
        np.asarray(rows, dtype=float).reshape(-1, width),
        np.asarray(y, dtype=int),
        np.asarray(started, dtype=np.int64),
        np.asarray(finished, dtype=np.int64),
        np.asarray(parrot, dtype=float),
        np.asarray(demo_rows, dtype=float).reshape(-1, len(DEMO_FEATURES)),
        commits,
        branches,
        source,
    )


def concat(tables: Sequence[Table]) -> Table:
    """Several repositories' tables as one (for --all-repos and the bundled model), time-ordered."""
    if not tables:
        raise DatasetError("no tables to join")
    joined = Table(
        np.vstack([t.X for t in tables]),
        np.concatenate([t.y for t in tables]),
        np.concatenate([t.started for t in tables]),
        np.concatenate([t.finished for t in tables]),
        np.concatenate([t.parrot for t in tables]),
        np.vstack([t.demo for t in tables]),
        [c for t in tables for c in t.commits],
        [b for t in tables for b in t.branches],
        tables[0].source,
    )
    order = np.argsort(joined.started, kind="stable")
    return joined.subset(order)
