"""Benchmark: `ci-risk backfill` throughput beside the `git log --numstat` it reads, run alone over the same history.

Usage: python bench/backfill_throughput.py --repo /path/to/clone [--runs 3] [--szz-fixes 300]

The repository is a work-tree clone of a fetched project of 5,000-20,000
commits, kept outside this project (e.g. svinota/pyroute2). Backfill runs on
a fresh SQLite store each time (features for every commit, no SZZ); the
figure is commits per second of wall time, median of the runs. SZZ labelling
is timed separately, on the newest --szz-fixes fix commits.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import CI_RISK, isolated_env

from ci_risk_hook import paths
from ci_risk_hook.git.repo import log_args


def wall(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode(errors='replace')[-500:]}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--szz-fixes", type=int, default=300)
    args = parser.parse_args()
    repo = args.repo.resolve()
    commits = int(
        subprocess.run(
            ["git", "rev-list", "--count", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout
    )
    git_times, backfill_times = [], []
    szz_seconds = None
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            git_times.append(wall(["git", *log_args(numstat=True), "HEAD"], repo))
            env = {**isolated_env(tmp), paths.DB_ENV: os.path.join(tmp, f"run{run}.sqlite")}
            backfill_times.append(wall([CI_RISK, "backfill", "--no-szz"], repo, env))
        env = {**isolated_env(tmp), paths.DB_ENV: os.path.join(tmp, "run0.sqlite")}
        szz_seconds = wall([CI_RISK, "backfill", "--szz", "--max-fixes", str(args.szz_fixes)], repo, env)
    git_rate = commits / statistics.median(git_times)
    backfill_rate = commits / statistics.median(backfill_times)
    print(f"repository: {repo} ({commits:,} commits), median of {args.runs} runs")
    print(
        f"{'git log as backfill reads it (-M, --numstat)':<46}{statistics.median(git_times):>8.2f} s "
        f"{git_rate:>10,.0f} commits/s"
    )
    print(
        f"{'ci-risk backfill --no-szz (features, store)':<46}{statistics.median(backfill_times):>8.2f} s "
        f"{backfill_rate:>10,.0f} commits/s"
    )
    print(
        f"backfill / git log throughput: {backfill_rate / git_rate:.0%} (target >= 70%) -> "
        f"{'MET' if backfill_rate >= 0.7 * git_rate else 'NOT MET'}"
    )
    print(
        f"SZZ + revert labels, newest {args.szz_fixes} fix commits (second backfill run, features already stored): "
        f"{szz_seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
