"""Getting outcomes in: record one, import a file of them, compute the features of their ranges.

Outcomes are stored first (one transaction per command, so a bad file writes
nothing), features second (resumable: a build without features is simply
picked up by the next run).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from itertools import islice
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence

from ci_risk_hook.errors import EXIT_BLOCKED, EXIT_USAGE, CiRiskError
from ci_risk_hook.features.analysis import analyze
from ci_risk_hook.features.extract import Limits
from ci_risk_hook.git import repo as git
from ci_risk_hook.git.ranges import PushRange
from ci_risk_hook.mining.backfill import SCHEMA_VERSION
from ci_risk_hook.outcomes.records import BuildRecord, ci_job
from ci_risk_hook.outcomes.store import Store, StoreError, open_existing, open_store, remember, store_for


class CaptureError(CiRiskError):
    """The outcome cannot be recorded as asked (unknown commit, unidentifiable repository)."""

    exit_code = EXIT_BLOCKED


class Target(NamedTuple):
    store: Store
    repo_id: int
    info: git.RepoInfo


class Reading(NamedTuple):
    """A reading command's store and this repository in it: `repo_id` None when the store does not know it yet."""

    store: Store
    repo_id: int | None
    info: git.RepoInfo
    root: str


def _root_commit(info: git.RepoInfo, cwd: str | None, identity: tuple[str, str] | None) -> str:
    root = identity[0] if identity else git.root_commit(info, cwd)
    if root is None:
        raise CaptureError(
            "cannot identify this repository: shallow clone or no commits yet "
            "(fetch full history with `git fetch --unshallow`, or set CI_RISK_REPO to its root commit)"
        )
    return root


def open_for_repo(
    db: str | None,
    cwd: str | None = None,
    *,
    records: bool = False,
    identity: tuple[str, str] | None = None,
) -> Target:
    """Open (or create) the store and this repository's row in it (added if new), identified by its root commit.

    Without `db` it is the store this repository records into (see `store_for`). A command that
    `records` outcomes notes its store in the git dir for the hook. `identity` (root commit, name) is
    given by a caller that found it otherwise (a shallow CI clone: `ci.identity`).
    """
    info = git.repo_info(cwd)
    root = _root_commit(info, cwd, identity)
    url = store_for(info.common_dir, db)
    store = open_store(url)
    try:
        repo_id = store.repository_id(root, (identity[1] if identity else "") or git.repo_name(info))
    except StoreError:
        store.close()
        raise
    if records:
        remember(info.common_dir, url)
    return Target(store, repo_id, info)


def open_for_reading(db: str | None, cwd: str | None = None) -> Reading:
    """The store a reading command reads, and this repository's id in it, writing nothing to find them.

    A store that is not there is refused (`open_existing`); a repository it does not know is no error
    (its history is empty) and is not added: only recording adds a repository.
    """
    info = git.repo_info(cwd)
    root = _root_commit(info, cwd, None)
    store = open_existing(store_for(info.common_dir, db))
    try:
        repo_id = store.find_repository(root)
    except StoreError:
        store.close()
        raise
    return Reading(store, repo_id, info, root)


class ImportSummary(NamedTuple):
    recorded: int
    new: int
    unknown_commits: int
    unknown_examples: list[str]


BATCH_ROWS = 5000  # outcomes resolved and written at a time: memory stays flat, whatever the file's size


def store_records(
    target: Target,
    records: Iterable[BuildRecord],
    cwd: str | None = None,
    *,
    batch: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Store outcomes in ONE transaction, a batch at a time; commits unknown here are kept, counted and reported.

    `records` may be a stream: an error raised while reading it (a malformed row)
    rolls back everything stored before it. `progress` gets the outcomes stored so far.
    """
    store, repo_id = target.store, target.repo_id
    batch = batch or BATCH_ROWS
    store.for_bulk_work()
    recorded = unknown = 0
    examples: list[str] = []
    commits: set[str] = set()
    new = 0
    with store.transaction():
        for chunk in _batches(records, batch):
            resolved = git.resolve_commits([r.commit for r in chunk] + [r.base for r in chunk if r.base], cwd)
            normalised: list[BuildRecord] = []
            known: list[bool] = []
            for r in chunk:
                sha = resolved.get(r.commit)
                if sha is None:
                    unknown += 1
                    if len(examples) < 5:
                        examples.append(r.commit)
                    normalised.append(r)
                else:
                    base = resolved.get(r.base) if r.base else None
                    normalised.append(r._replace(commit=sha, base=base or r.base))
                known.append(sha is not None)
            new += store.upsert_builds(repo_id, normalised, known)
            recorded += len(chunk)
            if recorded <= batch:
                commits.update(r.commit for r in normalised)
            if progress is not None:
                progress(recorded)
        # One batch: look at its commits; more: one pass over the repository beats every batch's commits again.
        store.mark_flaky(repo_id, commits if recorded <= batch else None)
    return ImportSummary(recorded, new, unknown, examples)


def _batches(items: Iterable[BuildRecord], size: int) -> Iterator[list[BuildRecord]]:
    iterator = iter(items)
    while True:
        chunk = list(islice(iterator, size))
        if not chunk:
            return
        yield chunk


FEATURE_BATCH = 500  # builds whose features are written in one transaction: a kill loses at most these
RANGE_CACHE = 4096  # features of the most recent ranges: reruns and jobs of one push share their range


def compute_build_features(
    target: Target,
    cwd: str | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    batch: int | None = None,
) -> int:
    """Features for every build that has none yet; returns how many were computed.

    A build's range runs from its recorded base, else from the previous
    build's commit on the same branch (the push before it), else from its
    commit's first parent. Builds are read a page at a time and their features
    written a batch at a time, so memory does not grow with the history, and a
    run that is stopped resumes where it was: a build without features is
    picked up by the next run.
    """
    store, repo_id = target.store, target.repo_id
    batch = batch or FEATURE_BATCH
    total = store.count_builds_without_features(repo_id, SCHEMA_VERSION)
    if not total:
        return 0
    store.for_bulk_work()
    limits = Limits()
    cache: OrderedDict[tuple[str, str | None], _Computed] = OrderedDict()
    rows: list[tuple[int, str, str | None, Sequence[str], dict[str, float | None]]] = []
    done = seen = 0
    last_id = 0
    while True:
        page = store.builds_without_features(repo_id, after_id=last_id, limit=batch, schema_version=SCHEMA_VERSION)
        if not page:
            break
        last_id = page[-1].id
        for build in page:
            seen += 1
            base = build.base or store.previous_commit_on_branch(repo_id, build)
            key = (build.commit, base if base != build.commit else None)
            computed = cache.get(key)
            if computed is None:
                try:
                    computed = _compute(target, key, limits, cwd)
                except git.GitError:
                    continue  # the commit or its base vanished since it was recorded; try again next time
                cache[key] = computed
                if len(cache) > RANGE_CACHE:
                    cache.popitem(last=False)
            else:
                cache.move_to_end(key)
            rows.append((build.id, SCHEMA_VERSION, computed.author, computed.files, computed.values))
            done += 1
        store.set_build_features(rows)
        rows = []
        if progress is not None:
            progress(seen, total)
    return done


class _Computed(NamedTuple):
    author: str | None
    files: list[str]
    values: dict[str, float | None]


def _compute(target: Target, key: tuple[str, str | None], limits: Limits, cwd: str | None) -> _Computed:
    commit, base = key
    push_range = PushRange(tip=commit, exclude=(base,)) if base else _first_parent_range(commit, cwd)
    result = analyze(push_range, target.info, limits, cwd=cwd)
    files = sorted({p for paths in result.facts.paths_by_category.values() for p in paths})
    return _Computed(result.facts.author_email or None, files, result.values)


def _first_parent_range(commit: str, cwd: str | None) -> PushRange:
    try:
        parent = git.run(["rev-parse", "--verify", "--quiet", f"{commit}^1"], cwd).decode().strip()
    except git.GitError:
        return PushRange(tip=commit)  # a root commit: the range is the commit itself
    return PushRange(tip=commit, exclude=(parent,))


# -- one outcome, from `ci-risk record` and `ci-risk run` ---------------------


class CiVariableError(CiRiskError):
    """A CI system's variable holds what cannot be recorded (an attempt that is not a number): a usage error."""

    exit_code = EXIT_USAGE


class Recorded(NamedTuple):
    record: BuildRecord
    new: bool


def record_outcome(
    db: str | None,
    status: str,
    commit: str,
    *,
    base: str | None = None,
    branch: str | None = None,
    source: str = "record",
    job_id: str | None = None,
    attempt: int | None = None,
    started_at: int | None = None,
    duration: float | None = None,
    finished_at: int | None = None,
    identity: tuple[str, str] | None = None,
) -> Recorded:
    """Store one CI outcome for `commit` (job and attempt default to the CI system's) and compute its features.

    The outcome is one transaction; its features come after it, so a store that
    fails between the two keeps the outcome and says `ci-risk backfill` finishes it.
    """
    try:
        ci_job_id, ci_attempt = ci_job(os.environ, want_attempt=attempt is None)
    except ValueError as exc:
        raise CiVariableError(f"{exc}; nothing recorded") from None
    target = open_for_repo(db, records=True, identity=identity)
    try:
        if identity and identity[1]:
            from ci_risk_hook.ci.identity import name_repository

            name_repository(target.store, target.repo_id, identity[1])
        sha = git.resolve_commits([commit]).get(commit)
        if sha is None:
            raise CaptureError(f"not a commit: {commit}")
        record = BuildRecord(
            commit=sha,
            status=status,
            source=source,
            raw_status=status,
            branch=git.short_branch(branch) or git.current_branch(target.info),
            started_at=started_at,
            finished_at=finished_at,
            duration_s=duration,
            base=base,
            job_id=job_id if job_id is not None else ci_job_id,
            attempt=attempt if attempt is not None else ci_attempt,
        )
        try:
            summary = store_records(target, [record])
        except StoreError as exc:
            raise StoreError(f"{exc}; nothing recorded") from None
        try:
            compute_build_features(target)
        except StoreError as exc:
            raise StoreError(
                f"{exc}; the outcome was recorded, its features were not (`ci-risk backfill` computes them)"
            ) from None
    finally:
        target.store.close()
    return Recorded(record, bool(summary.new))
