"""Benchmark: does ci-risk beat the baseline on real Travis history it was never trained on?

For each project it runs the real commands on a fresh SQLite store:
`ci-risk import <shared>/data/travis-builds/builds.csv --format travis`,
then `ci-risk backtest --format json`, and prints per-project and median
figures beside Parrot's. Projects the bundled model was trained on
(model/model.json's provenance) are refused, so the figures are on unseen
projects.

Usage:
  python bench/backtest_travis.py --repos-dir /work/repos [--jobs 2] [--projects owner/name ...]

`--repos-dir` holds work-tree clones of the fetched projects named
`owner+name` (outside this project). The data is read from ../shared at run
time and never copied.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ci_risk_hook.model import metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from travis_split import EVALUATION_PROJECTS  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "travis-builds" / "builds.csv"

# Unseen by the bundled model: the fixed split in travis_split.py (scripts/build_bundled_model.py trains on others).


RECALL_FLOOR = 0.88  # a deferrable share counts only if the failures it lets through stay this rare


def counted_deferrable(figures: dict[str, Any]) -> float:
    """The deferrable share, or 0 where the realised recall fell below the floor (like with like across projects)."""
    share, recall = figures.get("deferrable_at_90"), figures.get("recall_at_defer_threshold")
    if share is None or recall is None or recall < RECALL_FLOOR:
        return 0.0
    return float(share)


def bundled_training_projects() -> set[str]:
    path = HERE.parent / "model" / "model.json"
    try:
        with open(path, encoding="utf-8") as fh:
            return {p.lower() for p in json.load(fh)["provenance"].get("repositories", [])}
    except (OSError, ValueError, KeyError):
        return set()


def run_project(project: str, repos_dir: Path, ci_risk: str, retrain_every: int) -> dict[str, Any]:
    clone = repos_dir / project.replace("/", "+")
    if not (clone / ".git").exists():
        return {"project": project, "error": f"no clone at {clone}"}
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "CI_RISK_DB": os.path.join(tmp, "history.sqlite"),
            "CI_RISK_HOME": tmp,
            "CI_RISK_INDEX_DIR": os.path.join(tmp, "index"),
        }
        started = time.monotonic()
        imported = subprocess.run(
            [ci_risk, "import", str(DATA), "--format", "travis", "--travis-repo", project],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
        )
        if imported.returncode != 0:
            return {"project": project, "error": imported.stderr.strip().splitlines()[-1:]}
        import_s = time.monotonic() - started
        started = time.monotonic()
        result = subprocess.run(
            [ci_risk, "backtest", "--format", "json", "--retrain-every", str(retrain_every)],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            return {"project": project, "error": (result.stderr.strip().splitlines() or ["?"])[-1]}
        report = json.loads(result.stdout)
        report.update(
            project=project, import_seconds=round(import_s, 1), backtest_seconds=round(time.monotonic() - started, 1)
        )
        return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos-dir", type=Path, required=True)
    parser.add_argument("--projects", nargs="*", default=list(EVALUATION_PROJECTS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--retrain-every", type=int, default=25)
    parser.add_argument("--json", type=Path, default=None, help="Also write all reports here.")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found: the benchmark reads ../shared/data/travis-builds at run time")
    seen = bundled_training_projects() & {p.lower() for p in args.projects}
    if seen:
        raise SystemExit(f"the bundled model was trained on {sorted(seen)}: pick unseen projects")
    ci_risk = str(Path(sys.executable).parent / "ci-risk")
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        reports = list(pool.map(lambda p: run_project(p, args.repos_dir, ci_risk, args.retrain_every), args.projects))
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1))
    ok = [r for r in reports if "error" not in r]
    header = f"{'project':<34}{'builds':>7}{'pred':>6}" + "".join(
        f"{m + ' ' + who:>16}" for m in ("F1", "AUC", "defer@recall") for who in ("model", "parrot")
    )
    print(header + f"{'parrot* F1':>12}{'secs':>7}")
    for r in reports:
        if "error" in r:
            print(f"{r['project']:<34} error: {r['error']}")
            continue
        cells = []
        for key in ("f1", "roc_auc"):
            for who in ("model", "parrot"):
                v = r[who].get(key)
                cells.append(f"{'-' if v is None else format(v, '.3f'):>16}")
        for who in ("model", "parrot"):  # a deferrable share means nothing without the recall it was reached at
            v, at = r[who].get("deferrable_at_90"), r[who].get("recall_at_defer_threshold")
            cells.append(f"{'-' if v is None else f'{v:.3f}@{at:.2f}' if at is not None else f'{v:.3f}':>16}")
        print(
            f"{r['project']:<34}{r['builds']:>7}{r['predicted']:>6}"
            + "".join(cells)
            + f"{r['parrot_ordered']['f1']:>12.3f}{r['backtest_seconds']:>7.1f}"
        )
    if not ok:
        return 1
    print(f"\nmedians over {len(ok)} projects:")
    for key in metrics.SUMMARY:
        values = {who: [r[who][key] for r in ok if r[who].get(key) is not None] for who, _ in metrics.COLUMNS}
        print(f"  {key:<18}" + "".join(f"{who} {statistics.median(v):.3f}   " for who, v in values.items() if v))
    counted = [counted_deferrable(r["model"]) for r in ok]
    missed = [r["project"] for r in ok if counted_deferrable(r["model"]) == 0.0]
    print(
        f"  deferrable while recall >= {RECALL_FLOOR} (a project below counts 0): median "
        f"{statistics.median(counted):.3f}; below the floor: {', '.join(missed) or 'none'}"
    )
    worst = min(r["model"]["f1"] - r["parrot"]["f1"] for r in ok)
    med_gain = statistics.median(r["model"]["f1"] - r["parrot"]["f1"] for r in ok)
    print(f"  F1 gain over Parrot: median {med_gain:+.3f}, worst project {worst:+.3f}")
    per_1000 = [r["backtest_seconds"] / r["builds"] * 1000 for r in ok]
    print(f"  backtest time per 1,000 builds: median {statistics.median(per_1000):.1f} s, max {max(per_1000):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
