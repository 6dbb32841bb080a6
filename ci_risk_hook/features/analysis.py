"""Range -> features: read the commits, bring the history index up to date, extract.

Shared by the gate (one push), and later by backfill and training, so every
caller computes features the same way.
"""
from __future__ import annotations

from typing import Callable

from ci_risk_hook.git import repo as git
from ci_risk_hook.features.extract import FeatureResult, Limits, extract
from ci_risk_hook.features.history_index import HistoryIndex, IndexError_, default_path
from ci_risk_hook.git.ranges import PushRange


def analyze(
    push_range: PushRange,
    info: git.RepoInfo,
    limits: Limits,
    progress: Callable[[int], None] | None = None,
    cwd: str | None = None,
) -> FeatureResult:
    """Read the range's commits, bring the history index up to date, compute features."""
    commits = list(git.iter_commits(push_range.rev_args(), cwd, max_count=limits.max_commits + 1))
    truncated = len(commits) > limits.max_commits
    commits = commits[: limits.max_commits]
    history_known = not info.is_shallow
    index: HistoryIndex | None = None
    extra_notes: list[str] = []
    if history_known and commits:
        try:
            index = HistoryIndex(default_path(info.common_dir), cwd)
        except IndexError_ as exc:
            extra_notes.append(f"{exc}; history features unknown (delete the file or run `ci-risk index --rebuild`)")
            history_known = False
        if index is not None:
            in_range = {c.sha for c in commits}
            boundary = [p for c in commits for p in c.parents if p not in in_range]
            try:
                index.ensure_covers(boundary, progress)
            except git.GitError as exc:
                extra_notes.append(f"history index not updated ({exc}); history features use what was indexed")
    try:
        result = extract(commits, index, shallow_commits=info.shallow_commits, history_known=history_known,
                         truncated=truncated, limits=limits)
    finally:
        if index is not None:
            index.close()
    result.notes.extend(extra_notes)
    return result
