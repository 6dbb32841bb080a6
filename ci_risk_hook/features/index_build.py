"""Finishing the history index in the background, after a push ran out of its indexing budget.

The push hands its build lock to a detached `python -m ci_risk_hook.features.index_build`
(its own session, no terminal, output to a log in the index directory), so
the push returns at once, no second builder starts meanwhile, and the next
push finds the index warm. Killing the builder frees the lock; its
unfinished walk is completed by whoever builds next.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any, Callable, NamedTuple, Sequence

from ci_risk_hook import paths
from ci_risk_hook.features.history_index import BuildLock

_LOG_KEEP_BYTES = 64 * 1024


def continue_in_background(lock: BuildLock, cwd: str | None, targets: Sequence[str]) -> str:
    """Start the builder with this (held) lock; return what to tell the user.

    The caller still releases its copy of the descriptor: the builder's copy
    keeps the lock until it exits.
    """
    if lock.fd is None:  # no flock on this platform: nothing would keep a second builder out
        return "run `ci-risk index` to finish it"
    from ci_risk_hook.launch import module_argv  # not `-m` in the work tree: see launch

    log = paths.index_build_log(lock.path)
    try:
        if os.path.exists(log) and os.path.getsize(log) > _LOG_KEEP_BYTES:
            os.remove(log)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                module_argv("ci_risk_hook.features.index_build", ["--lock-fd", str(lock.fd), *targets]),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(lock.fd,),
                start_new_session=True,
            )
    except OSError as exc:
        return f"could not start a background build ({exc.strerror or exc}): run `ci-risk index`"
    return f"finishing it in the background (pid {proc.pid}; log: {log})"


class Built(NamedTuple):
    path: str
    added: int
    total: int
    seconds: float


def index_repository(
    info: Any,
    progress: Callable[[int], None] | None = None,
    *,
    rebuild: bool = False,
    on_wait: Callable[[str], None] | None = None,
) -> Built:
    """`ci-risk index`: cover every branch, remote branch and HEAD, in the foreground.

    Not in a shallow clone: its boundary commits look like roots, and the index would be trusted as whole
    history once the clone is unshallowed (a walk adds only commits newer than its tips).
    """
    from ci_risk_hook.features.history_index import HistoryIndexError, build
    from ci_risk_hook.git import repo as git

    if info.is_shallow:
        raise HistoryIndexError(
            "shallow clone: the history index needs the whole history (`git fetch --unshallow` first); nothing indexed"
        )
    path = paths.index_file(info.common_dir)
    tips = git.run(["for-each-ref", "--format=%(objectname)", "refs/heads", "refs/remotes"]).decode().split()
    try:
        tips.append(git.run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]).decode().strip())
    except git.GitError:
        pass  # no commit yet
    started = time.monotonic()
    added, total = build(path, list(dict.fromkeys(tips)), progress, rebuild=rebuild, on_wait=on_wait)
    return Built(path, added, total, time.monotonic() - started)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m ci_risk_hook.features.index_build --lock-fd N SHA...`: build until these commits are covered."""
    from ci_risk_hook.features.history_index import HistoryIndex, HistoryIndexError
    from ci_risk_hook.git import repo as git

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "--lock-fd":
        print("usage: python -m ci_risk_hook.features.index_build --lock-fd N SHA...", file=sys.stderr)
        return 2
    started = time.monotonic()
    if hasattr(os, "nice"):
        os.nice(10)  # background work: the developer's next command comes first
    info = git.repo_info()
    path = paths.index_file(info.common_dir)
    lock = BuildLock(paths.index_lock(path), fd=int(args[1]))
    lock.name_holder()
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: building the history index", flush=True)
    try:
        index = HistoryIndex(path)
        try:
            added = index.ensure_covers(args[2:], lock=lock)
            total = index.commit_count()
        finally:
            index.close()
    except (HistoryIndexError, git.GitError, OSError) as exc:
        print(f"pid {os.getpid()}: failed: {exc}", flush=True)
        return 1
    finally:
        lock.release()
    print(
        f"pid {os.getpid()}: done, {added:,} commits added, {total:,} indexed, {time.monotonic() - started:.1f} s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
