"""Benchmark: `check --ci` in a depth-1 clone, deepening only as far as the range needs.

Builds a synthetic repository (default 20,000 commits, one small file each,
with git fast-import), then for pushes whose base lies D commits below the
tip (D = 1, 10, 100, 1000) clones it with `--depth 1` over file:// and runs
`ci-risk check --ci` under a recorded GitHub push environment. Prints per D:
the wall time of the check (fetches included), the commits fetched (the
clone's depth afterwards) against the full history, and whether the range was
scored whole. The last row is a full clone's `check --ci`, for comparison.

Usage: python bench/ci_deepen.py [--commits 20000] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import git, synthetic_history


def check_ci(clone: Path, before: str, after: str, work: Path) -> tuple[float, dict]:
    event = work / "event.json"
    event.write_text(json.dumps({"before": before, "after": after}))
    env = {
        **os.environ,
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REF_NAME": "main",
        "GITHUB_RUN_ID": "1",
        "GITHUB_JOB": "gate",
        "CI_RISK_HOME": str(work / "home"),
    }
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ci_risk_hook", "check", "--ci", "--format", "json"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"check --ci failed: {proc.stderr}")
    return elapsed, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=20_000)
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ci-risk-deepen-"))
    upstream = work / "upstream"
    started = time.perf_counter()
    synthetic_history(upstream, args.commits, lambda i: f"line {i}\n".encode())
    print(f"synthetic repository: {args.commits:,} commits ({time.perf_counter() - started:.1f} s to build)")
    after = git("rev-parse", "HEAD", cwd=upstream)
    print(f"{'base depth':>10}  {'check --ci':>10}  {'commits here':>12}  {'scored':>6}  whole")
    for distance in (1, 10, 100, 1000, None):
        clone = work / f"clone-{distance or 'full'}"
        depth = ["--depth", "1"] if distance else []
        subprocess.run(["git", "clone", "-q", *depth, f"file://{upstream}", str(clone)], check=True)
        before = git("rev-parse", f"HEAD~{distance or 10}", cwd=upstream)
        seconds, report = check_ci(clone, before, after, work)
        have = git("rev-list", "--count", "HEAD", cwd=clone)
        whole = not any("history incomplete" in n for n in report["notes"])
        label = str(distance) if distance else "full clone"
        commits = len(report["ranges"][0]["commits"])
        print(f"{label:>10}  {seconds:>9.2f}s  {int(have):>12,}  {commits:>6}  {whole}")


if __name__ == "__main__":
    main()
