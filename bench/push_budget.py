"""Benchmark: what a push costs when ci-risk's own data is slow, with and without the push budgets.

Prints, on one large repository:
- the first push with a cold history index: without a budget (the whole
  index is built inside the push, as before) and with the default budget
  (scored without history, the index finished by a background builder),
  the background build's duration, and the next push (warm);
- a push with no outcomes store, with a store that accepts connections and
  never answers (a TCP listener on 127.0.0.1 given as a postgresql:// URL),
  with the default store budget and with a 10 s one (the old connect timeout).

`ci-risk check --from HEAD~10 --to HEAD` stands for the push: the hook runs
the same gate. Usage: python bench/push_budget.py --repo PATH-TO-NUMPY-CLONE [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness import CI_RISK, common_dir, index_file, reset_repository

from ci_risk_hook import paths

CHECK = ["check", "--from", "HEAD~10", "--to", "HEAD"]


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr}")
    return elapsed, proc.stdout + proc.stderr


def median_s(cmd: list[str], cwd: Path, env: dict[str, str], runs: int) -> tuple[float, float, float]:
    times = sorted(timed(cmd, cwd, env)[0] for _ in range(runs))
    return statistics.median(times), times[0], times[-1]


def silent_listener() -> int:
    """A server that accepts connections and never answers, for as long as this process lives."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            held.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    return int(server.getsockname()[1])


def wait_for_builder(common: Path) -> None:
    import fcntl

    with open(paths.index_lock(str(index_file(common))), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # returns when the background builder has exited


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=os.environ.get("CI_RISK_BENCH_REPO"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ci-risk", default=CI_RISK)
    args = parser.parse_args()
    if args.repo is None or not (args.repo / ".git").exists():
        raise SystemExit("give --repo: a work-tree clone of a large repository (numpy/numpy)")
    repo: Path = args.repo.resolve()
    ci_risk = [args.ci_risk]
    common = common_dir(repo)
    n_commits = int(
        subprocess.run(
            ["git", "rev-list", "--count", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("CI_RISK_")}
    base["CI_RISK_HOME"] = str(Path(__file__).resolve().parent / "out" / "home")
    rows: list[tuple[str, str]] = []

    reset_repository(common)
    unbounded, _ = timed(ci_risk + CHECK, repo, {**base, "CI_RISK_INDEX_BUDGET": "100000"})
    rows.append(("first push, cold index, no budget (index built in the push)", f"{unbounded:8.2f} s"))

    reset_repository(common)
    started = time.perf_counter()
    budgeted, out = timed(ci_risk + CHECK, repo, base)
    if "finishing it in the background" not in out:
        print(f"note: the index was built within the budget:\n{out}")
    wait_for_builder(common)
    built = time.perf_counter() - started
    rows.append(("first push, cold index, default budget (1 s)", f"{budgeted:8.2f} s"))
    rows.append(("  background build finished after", f"{built:8.2f} s"))
    med, lo, hi = median_s(ci_risk + CHECK, repo, base, args.runs)
    rows.append(("next push, warm index (median, min-max)", f"{med:8.2f} s  ({lo:.2f}-{hi:.2f})"))

    url = f"postgresql://ci@127.0.0.1:{silent_listener()}/x"
    med, lo, hi = median_s(ci_risk + CHECK, repo, base, args.runs)
    rows.append(("push, no outcomes store (median, min-max)", f"{med:8.2f} s  ({lo:.2f}-{hi:.2f})"))
    silent = {**base, "CI_RISK_DB": url}
    med, lo, hi = median_s(ci_risk + CHECK, repo, silent, args.runs)
    rows.append(("push, store never answers, budget 1 s (median, min-max)", f"{med:8.2f} s  ({lo:.2f}-{hi:.2f})"))
    old, out = timed(ci_risk + CHECK, repo, {**silent, "CI_RISK_STORE_BUDGET": "10"})
    rows.append(("push, store never answers, budget 10 s (the old wait)", f"{old:8.2f} s"))
    if "did not answer" not in out:
        print(f"note: no 'did not answer' note with the 10 s budget:\n{out}")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"repository: {repo} ({n_commits:,} commits); {os.cpu_count()} CPUs, load {load:.1f}; {args.runs} runs")
    for label, value in rows:
        print(f"{label:<58}{value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
