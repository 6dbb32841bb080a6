"""Getting outcomes in: record one, import a file of them, compute the features of their ranges.

Outcomes are stored first (one transaction per command, so a bad file writes
nothing), features second (resumable: a build without features is simply
picked up by the next run).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

from . import git
from .analysis import analyze
from .backfill import SCHEMA_VERSION
from .features import Limits
from .outcomes import BuildRecord
from .ranges import PushRange
from .store import Build, Store, StoreError, open_store, remember, store_for

class CaptureError(Exception):
    """The outcome cannot be recorded as asked (unknown commit, unidentifiable repository)."""


class Target(NamedTuple):
    store: Store
    repo_id: int
    info: git.RepoInfo


def open_for_repo(db: str | None, cwd: str | None = None, *, records: bool = False) -> Target:
    """Open the store and this repository's row in it, identified by its root commit.

    Without `db` it is the store this repository records into (see `store_for`). A command that
    `records` outcomes notes its store in the git dir for the hook; one that only reads never does.
    """
    info = git.repo_info(cwd)
    root = git.root_commit(info, cwd)
    if root is None:
        raise CaptureError(
            "cannot identify this repository: shallow clone or no commits yet "
            "(fetch full history with `git fetch --unshallow`, or set CI_RISK_REPO to its root commit)"
        )
    url = store_for(info.common_dir, db)
    store = open_store(url)
    try:
        repo_id = store.repository_id(root, git.repo_name(info))
    except StoreError:
        store.close()
        raise
    if records:
        remember(info.common_dir, url)
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
