"""Backtest wall time with candidates fitted serially and side by side (joblib threads), interleaved.

    cd CLONE && CI_RISK_DB=store.sqlite python bench/backtest_jobs.py [ROUNDS]

Import a project's outcomes first (`ci-risk import builds.csv --format travis
--travis-repo OWNER/NAME`). Prints each run's wall time with the load
average, and whether every run's result was identical (it must be).
"""

from __future__ import annotations

import json
import os
import sys
import time

from ci_risk_hook.model.backtest import backtest
from ci_risk_hook.model.dataset import ci_table
from ci_risk_hook.outcomes.store import open_store


def main(rounds: int) -> None:
    store = open_store(os.environ["CI_RISK_DB"], create=False)
    table = ci_table(store, store.repositories()[0][0])
    store.close()
    walls: dict[int, list[float]] = {1: [], 2: []}
    results = set()
    for _ in range(rounds):
        for n_jobs in (1, 2):
            load = os.getloadavg()[0]
            started = time.perf_counter()
            result = backtest(table, n_jobs=n_jobs)
            walls[n_jobs].append(time.perf_counter() - started)
            results.add(
                json.dumps({**result.as_dict(), "seconds": None, "scores": [p.score for p in result.predictions]})
            )
            print(
                f"n_jobs={n_jobs}: {walls[n_jobs][-1]:.1f} s (load {load:.1f}, {result.retrains} retrains)", flush=True
            )
    for n_jobs, times in walls.items():
        print(f"n_jobs={n_jobs}: median {sorted(times)[len(times) // 2]:.1f} s over {len(times)} runs")
    print("results identical" if len(results) == 1 else f"RESULTS DIFFER ({len(results)} variants)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
