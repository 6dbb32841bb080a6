"""Benchmark: `ci-risk index` and `ci-risk backfill` in partial clones, against a full clone.

Builds a synthetic repository (default 5,000 commits, each rewriting one of 200
small files, with git fast-import), serves it from a bare repository that
allows filters, and clones it over file:// four ways: full, `--filter=blob:limit=1k`
(about half the blobs), `--filter=blob:none` and `--filter=tree:0`. In each clone it times `ci-risk index` (the history
index, as the push's background build makes it) and `ci-risk backfill --no-szz`,
and counts the objects the clone lacks before and after: ci-risk must fetch
none. Prints one row per clone and command: seconds, commits/s, exit code,
objects missing before -> after.

Run it with the Python of the ci-risk to measure (`.venv/bin/python bench/partial_clone.py`).

Usage: python bench/partial_clone.py [--commits 5000] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import git, isolated_env, synthetic_history


def version(i: int) -> bytes:
    """Commit i's file: 20-49 lines, all new, so every commit has a blob of its own to leave out of a clone."""
    return "".join(f"line {j} of version {i}\n" for j in range(20 + i % 30)).encode()


def missing(clone: Path) -> int:
    out = subprocess.run(
        ["git", "rev-list", "--objects", "--all", "--missing=print"],
        cwd=clone,
        capture_output=True,
        env={**os.environ, "GIT_NO_LAZY_FETCH": "1"},
    ).stdout
    return sum(1 for line in out.splitlines() if line.startswith(b"?"))


def run(clone: Path, args: list[str], home: Path) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ci_risk_hook", *args],
        cwd=clone,
        env=isolated_env(home),
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - start, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=5000)
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ci-risk-partial-"))
    upstream = work / "upstream"
    if not upstream.exists():
        synthetic_history(
            upstream, args.commits, lambda i: "".join(f"line {j} of version {i}\n" for j in range(20 + i % 30)).encode()
        )
    bare = work / "remote.git"
    if not bare.exists():
        git("clone", "-q", "--bare", str(upstream), str(bare), cwd=work)
        git("config", "uploadpack.allowFilter", "true", cwd=bare)
    print(f"{args.commits:,} commits; work directory {work}")
    print(f"{'clone':<16} {'command':<9} {'seconds':>8} {'commits/s':>10} {'exit':>4}  missing objects")
    clones = (
        ("full", []),
        ("blob:limit=1k", ["--filter=blob:limit=1k"]),  # about half the blobs: larger versions are missing
        ("blob:none", ["--filter=blob:none"]),
        ("tree:0", ["--filter=tree:0"]),
    )
    for name, options in clones:
        clone = work / name.replace(":", "-").replace("=", "-")
        if clone.exists():
            shutil.rmtree(clone)
        git("clone", "-q", *options, f"file://{bare}", str(clone), cwd=work)
        for command in (["index"], ["backfill", "--no-szz"]):
            before = missing(clone)
            seconds, code = run(clone, command, work / f"home-{clone.name}")
            after = missing(clone)
            rate = args.commits / seconds
            print(f"{name:<16} {command[0]:<9} {seconds:>8.2f} {rate:>10,.0f} {code:>4}  {before:,} -> {after:,}")


if __name__ == "__main__":
    main()
