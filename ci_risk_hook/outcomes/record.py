"""Getting outcomes in: record one, import a file of them, compute the features of their ranges.

Outcomes are stored first (one transaction per command, so a bad file writes
nothing), features second (resumable: a build without features is simply
picked up by the next run).
"""
from __future__ import annotations

import os
from typing import Callable, Mapping, NamedTuple, Sequence

from ci_risk_hook.errors import EXIT_BLOCKED, CiRiskError
from ci_risk_hook.git import repo as git
from ci_risk_hook.features.analysis import analyze
from ci_risk_hook.mining.backfill import SCHEMA_VERSION
from ci_risk_hook.features.extract import Limits
from ci_risk_hook.outcomes.records import BuildRecord
from ci_risk_hook.git.ranges import PushRange
from ci_risk_hook.outcomes.store import Build, Store, StoreError, default_url, open_store, remember


class CaptureError(CiRiskError):
    """The outcome cannot be recorded as asked (unknown commit, unidentifiable repository)."""

    exit_code = EXIT_BLOCKED


class Target(NamedTuple):
    store: Store
    repo_id: int
    info: git.RepoInfo


def open_for_repo(db: str | None, cwd: str | None = None) -> Target:
    """Open the store and this repository's row in it, identified by its root commit."""
    info = git.repo_info(cwd)
    root = git.root_commit(info, cwd)
    if root is None:
        raise CaptureError(
            "cannot identify this repository: shallow clone or no commits yet "
            "(fetch full history with `git fetch --unshallow`, or set CI_RISK_REPO to its root commit)"
        )
    store = open_store(db)
    try:
        repo_id = store.repository_id(root, git.repo_name(info))
    except StoreError:
        store.close()
        raise
    remember(info.common_dir, db or default_url())
    return Target(store, repo_id, info)


class ImportSummary(NamedTuple):
    recorded: int
    new: int
    unknown_commits: int
    unknown_examples: list[str]


def store_records(target: Target, records: Sequence[BuildRecord], cwd: str | None = None) -> ImportSummary:
    """Store outcomes in one transaction; commits unknown here are kept, counted and reported."""
    resolved = git.resolve_commits([r.commit for r in records], cwd)
    normalised: list[BuildRecord] = []
    known: list[bool] = []
    unknown: list[str] = []
    for r in records:
        sha = resolved.get(r.commit)
        if sha is None:
            unknown.append(r.commit)
            normalised.append(r)
            known.append(False)
        else:
            base = resolved.get(r.base) if r.base else None
            normalised.append(r._replace(commit=sha, base=base or r.base))
            known.append(True)
    new = target.store.add_builds(target.repo_id, normalised, known)
    return ImportSummary(len(records), new, len(unknown), unknown[:5])


def compute_build_features(
    target: Target,
    cwd: str | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    batch: int = 200,
) -> int:
    """Features for every build that has none yet; returns how many were computed.

    A build's range runs from its recorded base, else from the previous
    build's commit on the same branch (the push before it), else from its
    commit's first parent.
    """
    pending = target.store.builds_without_features(target.repo_id)
    if not pending:
        return 0
    previous = _previous_on_branch(target.store.builds(target.repo_id))
    limits = Limits()
    rows: list[tuple[int, str, str | None, Sequence[str], dict[str, float | None]]] = []
    done = 0
    for build in pending:
        base = build.base or previous.get(build.id)
        push_range = PushRange(tip=build.commit, exclude=(base,) if base and base != build.commit else ())
        try:
            if not push_range.exclude:
                push_range = _first_parent_range(build.commit, cwd)
            result = analyze(push_range, target.info, limits, cwd=cwd)
        except git.GitError:
            continue  # the commit or its base vanished since it was recorded; try again next time
        files = sorted({p for paths in result.facts.paths_by_category.values() for p in paths})
        rows.append((build.id, SCHEMA_VERSION, result.facts.author_email or None, files, result.values))
        done += 1
        if len(rows) >= batch:
            target.store.set_build_features(rows)
            rows = []
        if progress is not None:
            progress(done, len(pending))
    target.store.set_build_features(rows)
    return done


def _first_parent_range(commit: str, cwd: str | None) -> PushRange:
    try:
        parent = git.run(["rev-parse", "--verify", "--quiet", f"{commit}^1"], cwd).decode().strip()
    except git.GitError:
        return PushRange(tip=commit)  # a root commit: the range is the commit itself
    return PushRange(tip=commit, exclude=(parent,))


def _previous_on_branch(builds: Sequence[Build]) -> dict[int, str]:
    """For each build, the commit of the known build before it on the same branch."""
    last: dict[str | None, str] = {}
    previous: dict[int, str] = {}
    for b in builds:
        if b.branch in last and last[b.branch] != b.commit:
            previous[b.id] = last[b.branch]
        if b.known_commit:
            last[b.branch] = b.commit
    return previous


# -- one outcome, from `ci-risk record` and `ci-risk run` ---------------------

# (job id variable, attempt variable) of each CI system, so reruns of one job are told apart
CI_JOB_VARIABLES = (("GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT"), ("CI_JOB_ID", None), ("TRAVIS_JOB_ID", None),
                    ("BUILD_ID", None))


def ci_job(env: Mapping[str, str] | None = None) -> tuple[str, int]:
    """Job id and attempt from the CI system's own variables ("" and 1 outside CI)."""
    env = os.environ if env is None else env
    for job_var, attempt_var in CI_JOB_VARIABLES:
        if env.get(job_var):
            attempt = env.get(attempt_var or "", "1")
            return env[job_var], int(attempt) if attempt.isdigit() else 1
    return "", 1


class Recorded(NamedTuple):
    record: BuildRecord
    new: bool


def record_outcome(db: str | None, status: str, commit: str, *, base: str | None = None, branch: str | None = None,
                   source: str = "record", job_id: str | None = None, attempt: int | None = None,
                   started_at: int | None = None, duration: float | None = None,
                   finished_at: int | None = None) -> Recorded:
    """Store one CI outcome for `commit` (job and attempt default to the CI system's) and compute its features."""
    target = open_for_repo(db)
    try:
        sha = git.resolve_commits([commit]).get(commit)
        if sha is None:
            raise CaptureError(f"not a commit: {commit}")
        ci_job_id, ci_attempt = ci_job()
        record = BuildRecord(
            commit=sha, status=status, source=source, raw_status=status,
            branch=git.short_branch(branch) or git.current_branch(target.info), started_at=started_at,
            finished_at=finished_at, duration_s=duration, base=base,
            job_id=job_id if job_id is not None else ci_job_id,
            attempt=attempt if attempt is not None else ci_attempt,
        )
        summary = store_records(target, [record])
        compute_build_features(target)
    finally:
        target.store.close()
    return Recorded(record, bool(summary.new))
