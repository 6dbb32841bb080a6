"""The feature schema and the one code path that computes it.

The hook, the CI gate, backfill and training all call `extract`, so a model
is always scored on features computed exactly as it was trained on. Unknown
values are None (a shallow clone has no trustworthy author history; the
history-store features stay unknown until outcomes are recorded), never a
made-up zero.
"""

from __future__ import annotations

import math
import posixpath
import re
from typing import Iterable, NamedTuple, Protocol, Sequence

from ci_risk_hook.features import categories
from ci_risk_hook.features.history_index import AuthorHistory, FileHistory, subsystem_of
from ci_risk_hook.git import repo as git

DAY = 86400.0


class HistorySource(Protocol):
    """What came before a range: the SQLite history index, or backfill's streaming twin."""

    def file_histories(self, paths: Sequence[str], before: int) -> dict[str, FileHistory]: ...
    def distinct_prior(self, paths: Sequence[str], before: int) -> tuple[int, int]: ...
    def author_history(self, email: str, subsystems: Sequence[str], before: int) -> AuthorHistory: ...


class PriorBuildLike(Protocol):
    """An earlier build as the store returns it (store.PriorBuild)."""

    @property
    def branch(self) -> str | None: ...
    @property
    def failed(self) -> bool: ...
    @property
    def started_at(self) -> int: ...
    @property
    def author(self) -> str | None: ...
    @property
    def files(self) -> frozenset[str]: ...


class Feature(NamedTuple):
    name: str
    group: str
    doc: str


def _f(name: str, group: str, doc: str) -> Feature:
    return Feature(name, group, doc)


SCHEMA: tuple[Feature, ...] = (
    # size and spread of the range (Kamei et al. 2013)
    _f("n_commits", "size", "commits in the range"),
    _f("n_merges", "size", "merge commits in the range"),
    _f("nf", "size", "files changed (NF)"),
    _f("nd", "size", "distinct directories changed (ND)"),
    _f("ns", "size", "distinct top-level subsystems changed (NS)"),
    _f("la", "size", "lines added (LA), summed over the range's commits"),
    _f("ld", "size", "lines deleted (LD)"),
    _f("entropy", "size", "Shannon entropy in bits of the changed lines over files (Entropy)"),
    # what is touched: files by primary category
    *(_f(f"files_{c}", "touched", f"files that are {categories.LABELS[c]}") for c in categories.CATEGORIES),
    # history of the touched files before the range
    _f("new_files", "file_history", "changed files with no earlier change"),
    _f("file_age_days", "file_history", "mean days since each changed file first appeared"),
    _f("days_since_file_change", "file_history", "mean days since each changed file was last changed (AGE)"),
    _f("nuc", "file_history", "distinct earlier commits that changed these files (NUC)"),
    _f("ndev", "file_history", "distinct earlier authors of these files (NDEV)"),
    _f("lt", "file_history", "lines in the changed files before the range (LT)"),
    # the author (of the range's newest commit)
    _f("author_exp", "author", "the author's earlier commits in this repository (EXP)"),
    _f("author_rexp", "author", "the author's earlier commits, each weighted 1/(its age in whole years + 1) (REXP)"),
    _f("author_sexp", "author", "the author's earlier commits in these subsystems (SEXP)"),
    _f("author_first_commit", "author", "1 if the author has no earlier commit here"),
    _f("author_tenure_days", "author", "days since the author's first commit here"),
    # the messages
    _f("msg_fix", "message", "commits whose subject speaks of a fix or bug"),
    _f("msg_revert", "message", "revert commits"),
    _f("msg_wip", "message", "WIP, tmp, fixup! or squash! commits"),
    # where the push goes: known to the hook, to CI and to every recorded build, outcomes or not
    _f("branch_mainline", "push", "1 if the push goes to a mainline branch (main, master, trunk, develop, dev)"),
    # filled from the outcomes history store; unknown until outcomes are recorded
    _f("prev_build_failed", "history_store", "1 if the previous build on this branch failed"),
    _f("fail_rate_last5", "history_store", "failure rate of the last 5 builds"),
    _f("fail_rate_last20", "history_store", "failure rate of the last 20 builds"),
    _f("builds_since_failure", "history_store", "builds since the last failure"),
    _f("hours_since_prev_build", "history_store", "hours since the previous build"),
    _f("prev_any_failed", "history_store", "1 if the latest finished build on any branch failed"),
    _f("fail_rate_any_last5", "history_store", "failure rate of the latest 5 finished builds on any branch"),
    _f("touched_files_fail_rate", "history_store", "failure rate of earlier builds touching these files"),
    _f("author_fail_rate", "history_store", "failure rate of the author's recent builds"),
    _f("fail_streak", "history_store", "consecutive failed builds ending with the previous one on this branch"),
    _f("hours_since_failure", "history_store", "hours since the latest failed build on this branch started"),
    _f(
        "fixes_last_failure",
        "history_store",
        "share of the latest failed build's files (this branch) that this push touches again",
    ),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in SCHEMA)
BY_NAME = {f.name: f for f in SCHEMA}

FIX_RE = re.compile(r"\b(fix(e[sd])?|bugs?|bugfix|hotfix|patch(ed)?|defect|regression|broken|crash(es)?)\b", re.I)
REVERT_RE = re.compile(r"^\s*revert\b", re.I)
WIP_RE = re.compile(r"(^\s*(fixup|squash|amend)!)|\b(wip|tmp|temp|todo|xxx)\b", re.I)


class Limits(NamedTuple):
    """Bounds that keep a huge push from stalling the hook; exceeding one is reported."""

    max_commits: int = 1000
    max_history_files: int = 2000


class Facts:
    """Concrete facts behind the numbers, for reasons a person can check."""

    def __init__(self) -> None:
        self.paths_by_category: dict[str, list[str]] = {}
        self.author_email = ""
        self.subsystems: list[str] = []
        self.new_paths: list[str] = []
        self.fix_subjects: list[str] = []
        self.revert_subjects: list[str] = []
        self.wip_subjects: list[str] = []
        self.busiest_path = ""


class FeatureResult:
    def __init__(
        self, values: dict[str, float | None], facts: Facts, commits: list[str], notes: list[str] | None = None
    ) -> None:
        self.values = values
        self.facts = facts
        self.commits = commits
        self.notes = notes if notes is not None else []

    def vector(self) -> list[float | None]:
        return [self.values[name] for name in FEATURE_NAMES]


class _Aggregate:
    __slots__ = ("added", "deleted", "binary")

    def __init__(self) -> None:
        self.added: int | None = 0
        self.deleted: int | None = 0
        self.binary = False


def _entropy(churn: Iterable[int]) -> float:
    values = [c for c in churn if c > 0]
    total = float(sum(values))
    if total <= 0:
        return 0.0
    return -sum((c / total) * math.log2(c / total) for c in values)


def extract(
    commits: Sequence[git.Commit],
    index: HistorySource | None,
    *,
    shallow_commits: frozenset[str] = frozenset(),
    history_known: bool = True,
    truncated: bool = False,
    limits: Limits = Limits(),
) -> FeatureResult:
    """Features of a range given its commits (newest first) and the index of what came before."""
    values: dict[str, float | None] = {name: None for name in FEATURE_NAMES}
    facts = Facts()
    notes: list[str] = []
    if truncated:
        notes.append(
            f"range has more than {limits.max_commits} commits: only the newest {limits.max_commits} were read"
        )
    if not commits:
        return FeatureResult(values, facts, [], notes)

    files: dict[str, _Aggregate] = {}
    # A merge's changes are its diff against its first parent; when the
    # merged branch's own commits are in the range they already carry them.
    in_range = {c.sha for c in commits}
    counted = [c for c in commits if not (c.is_merge and any(p in in_range for p in c.parents[1:]))]
    # A file renamed within the range: its history is that of its name before the range.
    origins: dict[str, str] = {}
    for commit in reversed(counted):  # oldest first, so renames of renames resolve to the first name
        if commit.sha in shallow_commits:
            continue
        for change in commit.files:
            if change.old_path is not None:
                origins[change.path] = origins.get(change.old_path, change.old_path)
    lines_known = True
    partial_commits = 0
    for commit in counted:
        if commit.sha in shallow_commits:
            # A shallow boundary's diff is against nothing: every file looks new.
            partial_commits += 1
            continue
        if commit.lines_unknown:
            lines_known = False
        for change in commit.files:
            agg = files.setdefault(change.path, _Aggregate())
            if change.is_binary:
                if commit.lines_unknown:
                    agg.added = agg.deleted = None
                else:
                    agg.binary = True
                continue
            if agg.added is not None and agg.deleted is not None:
                agg.added += change.added or 0
                agg.deleted += change.deleted or 0
    if partial_commits:
        notes.append(f"{partial_commits} commit(s) at the shallow-clone boundary: their changes are unknown")

    n_known = len(commits) - partial_commits
    values["n_commits"] = float(len(commits))
    values["n_merges"] = float(sum(1 for c in commits if c.is_merge))
    for name, regex, bucket in (
        ("msg_fix", FIX_RE, facts.fix_subjects),
        ("msg_revert", REVERT_RE, facts.revert_subjects),
        ("msg_wip", WIP_RE, facts.wip_subjects),
    ):
        hits = [c.subject for c in commits if regex.search(c.subject)]
        bucket.extend(hits)
        values[name] = float(len(hits))

    if n_known:
        paths = list(files)
        values["nf"] = float(len(paths))
        values["nd"] = float(len({posixpath.dirname(p) for p in paths}))
        subsystems = sorted({subsystem_of(p) for p in paths})
        facts.subsystems = subsystems
        values["ns"] = float(len(subsystems))
        if lines_known:
            text = [a for a in files.values() if not a.binary]
            values["la"] = float(sum(a.added or 0 for a in text))
            values["ld"] = float(sum(a.deleted or 0 for a in text))
            values["entropy"] = _entropy((a.added or 0) + (a.deleted or 0) for a in text)
            if files:
                facts.busiest_path = max(files, key=lambda p: (files[p].added or 0) + (files[p].deleted or 0))
        by_category: dict[str, list[str]] = {}
        for path, agg in files.items():
            by_category.setdefault(categories.categorize(path, agg.binary), []).append(path)
        facts.paths_by_category = by_category
        for cat in categories.CATEGORIES:
            values[f"files_{cat}"] = float(len(by_category.get(cat, ())))

    tip = commits[0]
    facts.author_email = tip.author_email
    sizes_known = True
    if index is not None and history_known and n_known:
        sizes_known = _history_features(values, facts, commits, files, origins, index, limits, notes)
    elif not history_known:
        notes.append("history features unknown: shallow clone (run `git fetch --unshallow` for full history)")
    # One line for whatever could not be read (a partial clone's missing blobs, a damaged clone).
    if not lines_known and not sizes_known:
        notes.append("some file contents are missing from this clone: line counts and LT are unknown")
    elif not lines_known:
        notes.append("some file contents are missing from this clone: line counts are unknown")
    elif not sizes_known:
        notes.append("earlier file contents are missing from this clone: LT (the changed files' size) is unknown")
    return FeatureResult(values, facts, [c.sha for c in commits], notes)


def _history_features(
    values: dict[str, float | None],
    facts: Facts,
    commits: Sequence[git.Commit],
    files: dict[str, _Aggregate],
    origins: dict[str, str],
    index: HistorySource,
    limits: Limits,
    notes: list[str],
) -> bool:
    """Fill the history features; False when the changed files' earlier line counts were not all readable."""
    before = min(c.time for c in commits)
    paths = list(files)
    if len(paths) > limits.max_history_files:
        notes.append(f"{len(paths)} files changed: history looked up for the {limits.max_history_files} most changed")
        paths.sort(key=lambda p: -((files[p].added or 0) + (files[p].deleted or 0)))
        paths = paths[: limits.max_history_files]
    names = list(dict.fromkeys(origins.get(p, p) for p in paths))
    by_name = index.file_histories(names, before)
    histories = {p: by_name[origins.get(p, p)] for p in paths if origins.get(p, p) in by_name}
    facts.new_paths = [p for p in paths if p not in histories]
    values["new_files"] = float(len(facts.new_paths))
    if histories:
        values["file_age_days"] = sum((before - h.first_time) / DAY for h in histories.values()) / len(histories)
        values["days_since_file_change"] = sum((before - h.last_time) / DAY for h in histories.values()) / len(
            histories
        )
    else:
        values["file_age_days"] = 0.0
        values["days_since_file_change"] = 0.0
    sizes = [h.lines for h in histories.values()]
    known_sizes = [size for size in sizes if size is not None]
    values["lt"] = float(sum(known_sizes)) if len(known_sizes) == len(sizes) else None
    nuc, ndev = index.distinct_prior([n for n in names if n in by_name], before)
    values["nuc"] = float(nuc)
    values["ndev"] = float(ndev)
    author = index.author_history(facts.author_email, facts.subsystems, before)
    values["author_exp"] = float(author.commits)
    values["author_rexp"] = float(author.recent_experience)
    values["author_sexp"] = float(author.subsystem_commits)
    values["author_first_commit"] = 1.0 if author.commits == 0 else 0.0
    values["author_tenure_days"] = 0.0 if author.first_time is None else (before - author.first_time) / DAY
    return values["lt"] is not None


STORE_FEATURES = tuple(f.name for f in SCHEMA if f.group == "history_store")
# What the stored feature version counts. Stored rows leave the push and build-history slots empty (None):
# those are computed whenever a push is scored or a table is read, so adding a push feature never makes
# stored features stale.
RANGE_FEATURES = tuple(f.name for f in SCHEMA if f.group != "push")
# Branch names that are a repository's mainline by convention. By name, not by the remote's HEAD: the hook,
# CI, import and training must all see the same number, and a recorded build has only its branch's name.
MAINLINE_BRANCHES = frozenset({"main", "master", "trunk", "develop", "development", "dev"})


def push_features(branch: str | None) -> dict[str, float | None]:
    """Where the push goes. Side branches fail more often than the mainline (24.5 % vs 17.1 % of 57,750
    Travis push builds of 110 projects), which a repository with no recorded outcomes can use too."""
    if branch is None:
        return {"branch_mainline": None}
    return {"branch_mainline": 1.0 if branch in MAINLINE_BRANCHES else 0.0}


# How far back the build-history features look; the store fetches, and training replays, exactly these windows.
TOUCHED_WINDOW = 200  # the repository's latest builds, searched for the same files
BRANCH_WINDOW = 20  # the branch's latest builds (fail_rate_last20), fetched even when older than TOUCHED_WINDOW
AUTHOR_WINDOW = 20  # the author's latest builds


def store_features(
    prior: Sequence[PriorBuildLike],
    branch: str | None,
    files: Iterable[str],
    author: str | None,
    now: int,
) -> dict[str, float | None]:
    """Build-history features from builds that finished before `now` (oldest first).

    One function for the hook and for training, so a model learns exactly
    the numbers it will later be shown. Unknown stays None: no earlier build
    on this branch means no "previous outcome", not a pass.
    """
    values: dict[str, float | None] = {name: None for name in STORE_FEATURES}
    touched = set(files)
    on_branch = [b for b in prior if b.branch == branch] if branch is not None else []
    if on_branch:
        last = on_branch[-1]
        values["prev_build_failed"] = 1.0 if last.failed else 0.0
        last5, last20 = on_branch[-5:], on_branch[-BRANCH_WINDOW:]
        values["fail_rate_last5"] = sum(b.failed for b in last5) / len(last5)
        values["fail_rate_last20"] = sum(b.failed for b in last20) / len(last20)
        since = 0
        for b in reversed(on_branch):
            if b.failed:
                break
            since += 1
        values["builds_since_failure"] = float(since)
        values["hours_since_prev_build"] = max(0.0, (now - last.started_at) / 3600.0)
        streak = 0
        for b in reversed(on_branch):
            if not b.failed:
                break
            streak += 1
        values["fail_streak"] = float(streak)
        failed = [b for b in on_branch if b.failed]
        if failed:
            values["hours_since_failure"] = max(0.0, (now - failed[-1].started_at) / 3600.0)
            if failed[-1].files:
                # A push after a failure that touches the same files again is often its fix ("fix after a failure").
                values["fixes_last_failure"] = len(failed[-1].files & touched) / len(failed[-1].files)
    if prior:
        # A new branch has no previous build of its own; the repository's latest ones still say a lot.
        values["prev_any_failed"] = 1.0 if prior[-1].failed else 0.0
        last_any = prior[-5:]
        values["fail_rate_any_last5"] = sum(b.failed for b in last_any) / len(last_any)
    if touched:
        sharing = [b for b in prior[-TOUCHED_WINDOW:] if b.files & touched]
        if sharing:
            values["touched_files_fail_rate"] = sum(b.failed for b in sharing) / len(sharing)
    if author:
        by_author = [b for b in prior if b.author == author][-AUTHOR_WINDOW:]
        if by_author:
            values["author_fail_rate"] = sum(b.failed for b in by_author) / len(by_author)
    return values
