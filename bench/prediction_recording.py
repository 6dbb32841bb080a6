"""Benchmark: what recording each prediction in the history store adds to the pre-push hook, on numpy.

Runs `ci-risk hook` as pre-commit runs it (PRE_COMMIT_FROM_REF/TO_REF over the
last 10 first-parent commits) with a history store configured, recording on
and off (CI_RISK_RECORD_PREDICTIONS), the two interleaved run by run so a
busy shared machine slows both alike; prints the median, spread and the
difference of the medians (target: at most 5 ms), and checks that each
recorded run added exactly one prediction and each other run none. A
recorded run spools its own row and moves the previous one into the store
(the steady state of a developer's pushes).

Usage: python bench/prediction_recording.py --repo /work/repos/numpy+numpy [--runs 31] [--postgres URL]

The repository is not touched: a `git clone --shared` of it in a temporary
directory gets the history index (built once, untimed), the scored log and
the store. `--postgres` repeats the comparison with a PostgreSQL store.
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

from harness import CI_RISK

SCORED = "ci-risk: risk "


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def hook_once(ci_risk: str, repo: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([ci_risk, "hook"], cwd=repo, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0 or not out.startswith(SCORED):
        raise SystemExit(f"the hook did not score: {out[:120]!r} {proc.stderr.decode(errors='replace')[:300]!r}")
    return elapsed * 1000


def predictions(url: str) -> int:
    from ci_risk_hook.outcomes.store import open_store

    store = open_store(url, create=False)
    try:
        return int(store.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])
    finally:
        store.close()


def seed_store(url: str, clone: Path, builds: int = 200) -> None:
    """Outcomes for the last `builds` first-parent commits, so the hook's history features read real rows."""
    from ci_risk_hook.outcomes.record import open_for_repo
    from ci_risk_hook.outcomes.records import BuildRecord

    lines = git(clone, "log", "--first-parent", f"-{builds}", "--format=%H %ct", "HEAD~10").splitlines()
    target = open_for_repo(url, str(clone))
    try:
        target.store.add_builds(
            target.repo_id,
            [
                BuildRecord(
                    commit=sha,
                    status="fail" if i % 9 == 0 else "pass",
                    source="record",
                    branch="main",
                    started_at=int(at) + 60,
                    finished_at=int(at) + 900,
                    job_id="bench",
                )
                for i, (sha, at) in enumerate(line.split() for line in lines)
            ],
        )
    finally:
        target.store.close()


def compare(ci_risk: str, clone: Path, url: str, runs: int) -> tuple[list[float], list[float]]:
    base_env = {
        **os.environ,
        "CI_RISK_DB": url,
        "PRE_COMMIT_FROM_REF": git(clone, "rev-parse", "HEAD~10"),
        "PRE_COMMIT_TO_REF": git(clone, "rev-parse", "HEAD"),
        "PRE_COMMIT_REMOTE_BRANCH": "refs/heads/main",
        "PRE_COMMIT_LOCAL_BRANCH": "refs/heads/main",
    }
    on_env = {**base_env, "CI_RISK_RECORD_PREDICTIONS": "true"}
    off_env = {**base_env, "CI_RISK_RECORD_PREDICTIONS": "false"}
    for env in (on_env, off_env):  # warm-up: file caches, the history index, the store's pages
        hook_once(ci_risk, clone, env)
    subprocess.run([ci_risk, "monitor"], cwd=clone, capture_output=True, env=base_env, check=True)  # warm-up's row
    before = predictions(url)
    on: list[float] = []
    off: list[float] = []
    for i in range(runs):
        time.sleep(1.0)  # untimed: a prediction is unique per commit, place and second, and every run pushes HEAD
        order = [(on, on_env), (off, off_env)] if i % 2 == 0 else [(off, off_env), (on, on_env)]
        for times, env in order:
            times.append(hook_once(ci_risk, clone, env))
    subprocess.run([ci_risk, "monitor"], cwd=clone, capture_output=True, env=base_env, check=True)  # the last row
    added = predictions(url) - before
    if added != runs:
        raise SystemExit(f"expected {runs} recorded predictions, found {added}: the comparison is void")
    return on, off


def report(label: str, on: list[float], off: list[float]) -> None:
    m_on, m_off = statistics.median(on), statistics.median(off)
    print(f"{label}: {len(on)} interleaved runs each")
    print(f"  recording on : median {m_on:7.1f} ms  (min {min(on):6.1f}, max {max(on):6.1f})")
    print(f"  recording off: median {m_off:7.1f} ms  (min {min(off):6.1f}, max {max(off):6.1f})")
    print(f"  difference of medians: {m_on - m_off:+.1f} ms (target <= 5 ms)")
    paired = sorted(a - b for a, b in zip(on, off))
    print(f"  median of paired differences: {statistics.median(paired):+.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=os.environ.get("CI_RISK_BENCH_REPO"))
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--postgres", default=None, help="also measure with this PostgreSQL store URL")
    args = parser.parse_args()
    if args.repo is None or not (args.repo / ".git").exists():
        raise SystemExit("give --repo: a work-tree clone of numpy/numpy (git clone from the fetched mirror)")
    with tempfile.TemporaryDirectory(prefix="ci-risk-bench-") as tmp:
        clone = Path(tmp) / "numpy"
        subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(args.repo), str(clone)], check=True)
        git(clone, "checkout", "-q", "-B", "main", git(args.repo, "rev-parse", "HEAD"))
        print(f"numpy: {git(clone, 'rev-list', '--count', 'HEAD')} commits; hook over HEAD~10..HEAD", flush=True)
        stores = [("SQLite store", str(Path(tmp) / "history.sqlite"))]
        if args.postgres:
            stores.append(("PostgreSQL store", args.postgres))
        for label, url in stores:
            seed_store(url, clone)
            start = time.perf_counter()
            subprocess.run(
                [CI_RISK, "check", "--from", "HEAD~10", "--to", "HEAD"],
                cwd=clone,
                capture_output=True,
                env={**os.environ, "CI_RISK_DB": url, "CI_RISK_INDEX_BUDGET": "600", "CI_RISK_RECORD_PREDICTIONS": "0"},
                check=True,
            )
            print(f"  (history index and store warmed in {time.perf_counter() - start:.1f} s, untimed)", flush=True)
            on, off = compare(CI_RISK, clone, url, args.runs)
            report(label, on, off)
    return 0


if __name__ == "__main__":
    sys.exit(main())
