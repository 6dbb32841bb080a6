"""Range -> features: read the commits, bring the history index up to date, extract.

Shared by the gate (one push), and later by backfill and training, so every
caller computes features the same way.
"""

from __future__ import annotations

import time
from typing import Callable

from ci_risk_hook import paths
from ci_risk_hook.features.extract import FeatureResult, Limits, extract
from ci_risk_hook.features.history_index import BudgetExceeded, HistoryIndex, HistoryIndexError, IndexBusy
from ci_risk_hook.git import repo as git
from ci_risk_hook.git.ranges import PushRange


def analyze(
    push_range: PushRange,
    info: git.RepoInfo,
    limits: Limits,
    progress: Callable[[int], None] | None = None,
    cwd: str | None = None,
    index_budget: float | None = None,
) -> FeatureResult:
    """Read the range's commits, bring the history index up to date, compute features.

    With `index_budget` (seconds: the push path) indexing stops when the time
    is up, or does not start while another process builds; history features
    are then unknown for this range, and the notes say why.
    """
    commits = list(git.iter_commits(push_range.rev_args(), cwd, max_count=limits.max_commits + 1))
    truncated = len(commits) > limits.max_commits
    commits = commits[: limits.max_commits]
    history_known = not info.is_shallow
    index: HistoryIndex | None = None
    extra_notes: list[str] = []
    if history_known and commits:
        # The budget is for indexing; the push's own commits above are read whatever it is.
        deadline = None if index_budget is None else time.monotonic() + index_budget
        try:
            index = HistoryIndex(
                paths.index_file(info.common_dir), cwd, identities=git.mailmap_fingerprint(info.toplevel)
            )
        except HistoryIndexError as exc:
            # history_known stays True: the history exists, only the index is unusable (not a shallow clone).
            extra_notes.append(f"{exc}; history features unknown")
        if index is not None:
            in_range = {c.sha for c in commits}
            boundary = [p for c in commits for p in c.parents if p not in in_range]
            unknown_because = _cover(index, boundary, progress, deadline, index_budget)
            if unknown_because is not None:
                extra_notes.append(unknown_because)
                index.close()
                index = None
    try:
        result = extract(
            commits,
            index,
            shallow_commits=info.shallow_commits,
            history_known=history_known,
            truncated=truncated,
            limits=limits,
        )
    finally:
        if index is not None:
            index.close()
    result.notes.extend(extra_notes)
    return result


def _cover(
    index: HistoryIndex,
    boundary: list[str],
    progress: Callable[[int], None] | None,
    deadline: float | None,
    budget: float | None,
) -> str | None:
    """Bring the index up to these commits; a note if its history features must stay unknown, else None."""
    try:
        index.ensure_covers(boundary, progress, deadline=deadline)
    except BudgetExceeded as exc:
        return f"history features unknown: indexing this repository's history takes more than {budget:g} s; {exc}"
    except IndexBusy as exc:
        return f"history features unknown: {exc}; the next push will use it"
    except OSError as exc:
        return f"history features unknown: cannot lock the history index ({exc})"
    except git.GitError as exc:
        return f"history features unknown: the history index could not be updated ({exc})"
    return None
