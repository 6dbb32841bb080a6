"""Benchmark: training time and peak memory on 100,000 builds.

Real rows first: the Travis push builds of a few fetched projects are
imported with the real command (features computed by ci-risk), then resampled
with replacement to --rows builds on a fresh timeline, so the model sees the
real feature distributions at the target scale. Prints wall time of
`training.train` (all candidates, calibration, thresholds) and the process's
peak resident memory.

Usage: python bench/train_scale.py --repos-dir /work/repos [--rows 100000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from harness import CI_RISK, isolated_env  # noqa: E402

from ci_risk_hook.model.dataset import Table, ci_table, concat  # noqa: E402
from ci_risk_hook.model.training import train  # noqa: E402
from ci_risk_hook.outcomes.store import open_store  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "travis-builds" / "builds.csv"
PROJECTS = ("aaugustin/websockets", "espressif/esptool", "bashtage/arch", "gpodder/gpodder", "lanpa/tensorboardX")


def load(project: str, repos_dir: Path) -> Table:
    clone = repos_dir / project.replace("/", "+")
    with tempfile.TemporaryDirectory() as tmp:
        env = isolated_env(tmp)
        subprocess.run(
            [
                CI_RISK,
                "import",
                str(DATA),
                "--format",
                "travis",
                "--travis-repo",
                project,
            ],
            cwd=clone,
            env=env,
            check=True,
            capture_output=True,
        )
        store = open_store(env["CI_RISK_DB"])
        try:
            return ci_table(store, store.repositories()[0][0])
        finally:
            store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos-dir", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    real = concat([load(p, args.repos_dir) for p in PROJECTS])
    rng = np.random.default_rng(0)
    pick = np.sort(rng.integers(0, len(real), args.rows))
    big = real.subset(pick)
    big.started = np.arange(args.rows, dtype=np.int64) * 600
    big.finished = big.started + 300
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.monotonic()
    result = train(big)
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"rows: {args.rows:,} resampled from {len(real):,} real builds of {len(PROJECTS)} projects "
        f"({int(big.y.sum()):,} failures)"
    )
    print(
        f"train (6 candidates, calibration, thresholds): {seconds:.1f} s (target <= 60 s) -> "
        f"{'MET' if seconds <= 60 else 'NOT MET'}; chose {result.model.name}"
    )
    print(
        f"peak resident memory: {peak:,.0f} MiB (before training {before:,.0f} MiB; largest child "
        f"{children:,.0f} MiB) (target <= 2,048 MiB) -> {'MET' if max(peak, children) <= 2048 else 'NOT MET'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
