"""The range a CI job scores, made whole in a shallow clone: deepen only as far as needed, within a budget.

CI checkouts are shallow (actions/checkout fetches one commit; GitLab's
GIT_DEPTH is 20 or 50), so the base of the range is often missing, or the
range runs into the shallow boundary, where a commit's parents are cut off
and its diff looks like the whole tree. `prepare` fetches the commits the
range names (by id, as GitHub and GitLab allow), then deepens with
`git fetch --deepen=N`, N doubling, until no commit of the range sits on the
shallow boundary or the time budget is spent. Out of time, the range is
scored with what is known, and one note says so: history missing never fails
a job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import NamedTuple, Sequence

from ci_risk_hook.ci.detect import BRANCH, COMMIT, REMOTES, CiContext
from ci_risk_hook.git import repo as git
from ci_risk_hook.git.ranges import PushRange

FIRST_DEEPEN = 50  # commits per boundary on the first deepening; doubled each time after
ALL_BRANCHES = "+refs/heads/*:refs/remotes/{remote}/*"


class Prepared(NamedTuple):
    push_range: PushRange
    notes: list[str]  # one line each: what was fetched, what is missing
    complete: bool  # False: the range still runs into the shallow boundary


class Fetcher:
    """`git fetch` calls that share one time budget; a call still running when it ends is stopped."""

    def __init__(self, cwd: str | None, remote: str | None, budget: float, shallow: bool = True) -> None:
        self.cwd = cwd
        # `--depth=1` on a complete clone would make it shallow: only a shallow clone fetches one commit deep.
        self.one = ["--depth=1"] if shallow else []
        self.remote = remote
        self.deadline = time.monotonic() + budget
        self.started = time.monotonic()
        self.calls = 0
        self.timed_out = False

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def fetch(self, options: Sequence[str], refspecs: Sequence[str] = ()) -> bool:
        """`git fetch OPTIONS -- REMOTE REFSPECS`; True if it succeeded in time.

        The remote's name comes from the repository's config, where `--upload-pack=CMD` is a valid name:
        after `--` it can only be a name.
        """
        left = self.left()
        if self.remote is None or left <= 0:
            self.timed_out = self.timed_out or left <= 0
            return False
        self.calls += 1
        proc = subprocess.Popen(
            ["git", "fetch", "--quiet", "--no-tags", *options, "--", self.remote, *refspecs],
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=git._git_env(network=True),
            start_new_session=True,  # its helpers (ssh, remote-https, upload-pack) are stopped with it
        )
        try:
            proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()
            proc.communicate()
            return False
        return proc.returncode == 0

    def seconds(self) -> float:
        return time.monotonic() - self.started


def remote_name(cwd: str | None) -> str | None:
    """The remote to fetch from: `origin` where there is one (every CI checkout has it), else the first."""
    try:
        names = git.run(["remote"], cwd).decode("utf-8", "replace").split()
    except git.GitError:
        return None
    return "origin" if "origin" in names else (names[0] if names else None)


def _shallow_commits(info: git.RepoInfo) -> frozenset[str]:
    """Read afresh: every fetch moves the boundary."""
    try:
        with open(os.path.join(info.common_dir, "shallow"), encoding="ascii") as fh:
            return frozenset(line.strip() for line in fh if line.strip())
    except OSError:
        return frozenset()


def _has(sha: str, cwd: str | None) -> bool:
    return bool(git.existing_commits([sha], cwd))


def _resolve(rev: str, cwd: str | None) -> str | None:
    return git.resolve_commits([rev], cwd).get(rev)


def is_complete(push_range: PushRange, info: git.RepoInfo, cwd: str | None = None) -> bool:
    """No commit of the range lies on the shallow boundary (whose parents, and so whose diff, are unknown)."""
    shallow = _shallow_commits(info)
    if not shallow:
        return True
    try:
        listed = git.run(["rev-list", *push_range.rev_args(), "--"], cwd).decode("ascii").split()
    except git.GitError:
        return False
    return not shallow.intersection(listed)


def prepare(context: CiContext, info: git.RepoInfo, budget: float, cwd: str | None = None) -> Prepared:
    """The range to score for `context`, its commits fetched as far as the budget allows."""
    fetcher = Fetcher(cwd, remote_name(cwd), budget, shallow=info.is_shallow)
    notes: list[str] = []
    tip = _resolve(context.tip, cwd) if context.tip == "HEAD" else context.tip
    if tip is None or not _has(tip, cwd) and not fetcher.fetch(fetcher.one, [tip]):
        head = _resolve("HEAD", cwd)
        if head is None:
            raise git.GitError(f"the commit to score ({context.tip[:10]}) is neither here nor fetchable")
        notes.append(f"{context.tip[:10]} could not be fetched: scored the checked-out HEAD {head[:10]} instead")
        tip = head
    push_range, wants = _range(context, tip, fetcher, notes, cwd)
    tip_alone = push_range is None
    if push_range is None:  # the tip commit alone: whole once its parent is here
        push_range = PushRange(tip=tip, branch=context.branch)
    complete = _deepen(push_range, wants, tip_alone, fetcher, info, cwd)
    if tip_alone:
        push_range = _parent_range(tip, context.branch, cwd)
    if fetcher.calls:
        notes.append(
            f"shallow clone: fetched {'the' if complete else 'part of the'} history the range needs "
            f"({fetcher.calls} fetch(es), {fetcher.seconds():.1f} s)"
        )
    if not complete:
        why = (
            f"the {budget:g} s deepening budget (CI_RISK_DEEPEN_BUDGET) ran out"
            if fetcher.timed_out
            else ("the remote could not give more" if fetcher.remote else "there is no remote to fetch from")
        )
        notes.append(
            f"history incomplete: {why}; scored with the commits known, the oldest of them at the shallow "
            "boundary (their changes unknown)"
        )
    return Prepared(push_range, notes, complete)


def _range(
    context: CiContext, tip: str, fetcher: Fetcher, notes: list[str], cwd: str | None
) -> tuple[PushRange | None, list[str]]:
    """The range for the context's kind of base (None: the tip alone), and what a deepening fetch asks for."""
    remote = fetcher.remote
    if context.base_kind == COMMIT and context.base:
        if _has(context.base, cwd) or fetcher.fetch(fetcher.one, [context.base]):
            return PushRange(tip=tip, exclude=(context.base,), branch=context.branch), [tip, context.base]
        if fetcher.timed_out:
            notes.append(f"the base {context.base[:10]} was not fetched within the deepening budget: tip alone")
        else:
            notes.append(f"the base {context.base[:10]} is neither here nor on the remote (a force push?): tip alone")
    elif context.base_kind == BRANCH and context.base and remote:
        ref = f"refs/remotes/{remote}/{context.base}"
        refspec = f"+refs/heads/{context.base}:{ref}"
        if _resolve(ref, cwd) is None:
            fetcher.fetch(fetcher.one, [refspec])
        base = _resolve(ref, cwd)
        if base is not None:
            return PushRange(tip=tip, exclude=(base,), branch=context.branch), [tip, refspec]
        notes.append(f"the target branch {context.base} could not be fetched: tip alone")
    elif context.base_kind == REMOTES and remote:
        refspec = ALL_BRANCHES.format(remote=remote)
        fetcher.fetch(fetcher.one, [refspec])  # the other branches (in a shallow clone: their tips)
        own = f"{remote}/{context.branch}" if context.branch else None
        return (
            PushRange(tip=tip, exclude_remotes="", except_ref=own, branch=context.branch),
            [tip, refspec],
        )
    elif context.base_kind == REMOTES:
        notes.append("no remote to compare with: the tip commit alone")
    return None, [tip]


def _parent_range(tip: str, branch: str | None, cwd: str | None) -> PushRange:
    parent = _resolve(f"{tip}^1", cwd)
    return PushRange(tip=tip, exclude=(parent,) if parent else (), branch=branch)


def _deepen(
    push_range: PushRange, wants: list[str], tip_alone: bool, fetcher: Fetcher, info: git.RepoInfo, cwd: str | None
) -> bool:
    """Deepen (doubling) until the range is whole, the budget is spent or the remote gives no more."""
    depth = 1 if tip_alone else FIRST_DEEPEN
    before = _shallow_commits(info)
    while True:
        if tip_alone:
            whole = push_range.tip not in _shallow_commits(info)  # whole when the tip itself is not cut off
        else:
            whole = is_complete(push_range, info, cwd)
        if whole or fetcher.remote is None:
            return whole
        if not fetcher.fetch([f"--deepen={depth}"], wants):
            return False
        after = _shallow_commits(info)
        if after == before and after:  # the remote gave nothing new
            return False
        before = after
        depth *= 2
