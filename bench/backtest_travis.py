"""Benchmark: does ci-risk beat the baseline on real Travis history it was never trained on?

For each project it runs the real commands on a fresh SQLite store:
`ci-risk import <shared>/data/travis-builds/builds.csv --format travis`,
then `ci-risk backtest --format json`, and prints per-project and median
figures beside Parrot's. Projects the bundled model was trained on
(model/model.json's provenance) are refused, so the figures are on unseen
projects.

Usage:
  python bench/backtest_travis.py --repos-dir /work/repos [--jobs 2] [--projects owner/name ...]
  python bench/backtest_travis.py --repos-dir /work/repos --cache DIR [--json OUT]

With `--cache`, each project is imported once by the same real command (kept as a table of feature numbers
and labels in DIR, outside the project) and backtested in this process, candidates fitted on `--jobs`
threads; the cold-start figure (the bundled model alone, no outcomes recorded) is printed too. Figures are
per project, per language (the data's label of the project) and over all, beside both baselines: Parrot
(previous build *finished* when this one started: what a hook can know) and Parrot* (previous build in push
order, as the literature publishes it), and the targets of issue 12.

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
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import isolated_env  # noqa: E402
from travis_split import EVALUATION_PROJECTS, LANGUAGE  # noqa: E402

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
        env = isolated_env(tmp)
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


def run_cached(project: str, repos_dir: Path, cache: Path, retrain_every: int, n_jobs: int) -> dict[str, Any]:
    """The same backtest as `ci-risk backtest`, in this process on the cached imported table, plus cold start."""
    from build_bundled_model import masked, project_table

    from ci_risk_hook.gate.evaluate import bundled_model_path
    from ci_risk_hook.model.backtest import backtest
    from ci_risk_hook.model.training import TrainError, _portable

    _, table, note = project_table(project, repos_dir, cache)
    if table is None:
        return {"project": project, "error": note}
    started, cpu = time.monotonic(), time.process_time()
    try:
        result = backtest(table, retrain_every=retrain_every, n_jobs=n_jobs)
    except TrainError as exc:
        return {"project": project, "error": str(exc)}
    report: dict[str, Any] = result.as_dict()
    # CPU seconds beside wall seconds: on a machine shared with other work the wall time says more about the load.
    report.update(
        project=project,
        backtest_seconds=round(time.monotonic() - started, 1),
        backtest_cpu_seconds=round(time.process_time() - cpu, 1),
    )
    path = bundled_model_path()
    if path is not None and len(set(table.y.tolist())) == 2:
        from sklearn.metrics import roc_auc_score

        portable = _portable(path)
        cold = portable.predict_proba(masked(table).X[:, portable.columns])[:, 1]
        report["cold_start_auc"] = round(float(roc_auc_score(table.y, cold)), 4)
    return report


TARGETS = {"roc_auc": 0.85, "f1_gain": 0.05, "worst_f1_gain": -0.02, "deferrable": 0.35, "cold_start_auc": 0.70}


def summary(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of one group of projects: the issue's target figures beside both baselines."""

    def med(values: list[Any]) -> float | None:
        values = [v for v in values if v is not None]
        return round(statistics.median(values), 4) if values else None

    gains = [r["model"]["f1"] - r["parrot_ordered"]["f1"] for r in reports]
    return {
        "projects": len(reports),
        "roc_auc": {
            who: med([r[who].get("roc_auc") for r in reports]) for who in ("model", "parrot", "parrot_ordered")
        },
        "f1": {who: med([r[who].get("f1") for r in reports]) for who in ("model", "parrot", "parrot_ordered")},
        "f1_gain": med(gains),
        "worst_f1_gain": round(min(gains), 4) if gains else None,
        "deferrable": med([counted_deferrable(r["model"]) for r in reports]),
        "cold_start_auc": med([r.get("cold_start_auc") for r in reports]),
    }


def print_summary(name: str, s: dict[str, Any]) -> None:
    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}"

    print(
        f"{name:<10}{s['projects']:>4}  AUC {f(s['roc_auc']['model'])} (Parrot {f(s['roc_auc']['parrot'])}, "
        f"Parrot* {f(s['roc_auc']['parrot_ordered'])})  F1 {f(s['f1']['model'])} (Parrot {f(s['f1']['parrot'])}, "
        f"Parrot* {f(s['f1']['parrot_ordered'])})  F1 gain vs Parrot* {s['f1_gain']:+.3f} worst "
        f"{s['worst_f1_gain']:+.3f}  deferrable {f(s['deferrable'])}  cold-start AUC {f(s['cold_start_auc'])}"
    )


def markdown(
    reports: list[dict[str, Any]], summaries: dict[str, Any], before: dict[str, Any] | None, before_label: str = ""
) -> str:
    """The figures as the model card shows them: per language and per project, before (if given) and after."""

    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}"

    old = {r["project"]: r for r in (before or {}).get("reports", []) if "error" not in r}
    old_summary = (before or {}).get("summary", {})
    lines = [
        "## Rolling backtest on unseen projects (bench/backtest_travis.py)",
        "",
        "Each project's push builds predicted in time order by `ci-risk backtest` (retrained every 25 builds "
        "on the builds finished before; thresholds chosen on those builds only, the deferral cut then moved "
        "by each failure that finished before the build started, as `--warn-at recall90` moves it). Parrot = "
        "previous build on the branch *finished* when the build started (what a hook can know); Parrot* = "
        "previous build in push order (as published). Deferrable counts 0 where the realised recall fell "
        "below 0.88. Cold start = the bundled model alone with no outcomes recorded."
        + (f" Before = {before_label}, same backtest, same builds." if before else ""),
        "",
        "| group | projects | ROC-AUC | Parrot / Parrot* AUC | F1 | Parrot / Parrot* F1 | F1 gain vs Parrot* "
        "(worst) | deferrable | cold-start AUC |"
        + (" before: AUC / F1 gain (worst) / deferrable / cold |" if before else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if before else ""),
    ]
    for name, s in summaries.items():
        b = old_summary.get(name)
        extra = (
            f" {f(b['roc_auc']['model'])} / {b['f1_gain']:+.3f} ({b['worst_f1_gain']:+.3f}) / {f(b['deferrable'])}"
            f" / {f(b['cold_start_auc'])} |"
            if b
            else (" - |" if before else "")
        )
        lines.append(
            f"| {name} | {s['projects']} | {f(s['roc_auc']['model'])} | {f(s['roc_auc']['parrot'])} / "
            f"{f(s['roc_auc']['parrot_ordered'])} | {f(s['f1']['model'])} | {f(s['f1']['parrot'])} / "
            f"{f(s['f1']['parrot_ordered'])} | {s['f1_gain']:+.3f} ({s['worst_f1_gain']:+.3f}) | "
            f"{f(s['deferrable'])} | {f(s['cold_start_auc'])} |" + extra
        )
    lines += [
        "",
        "| project | language | builds | ROC-AUC | Parrot / Parrot* AUC | F1 | Parrot / Parrot* F1 | deferrable "
        "(recall) | cold-start AUC |" + (" before: AUC / F1 / deferrable (recall) / cold |" if before else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if before else ""),
    ]
    for r in reports:
        if "error" in r:
            lines.append(f"| {r['project']} | {LANGUAGE.get(r['project'], '?')} | error: {r['error']} |")
            continue
        m, b = r["model"], old.get(r["project"])
        at = m.get("recall_at_defer_threshold")
        extra = (
            f" {f(b['model']['roc_auc'])} / {f(b['model']['f1'])} / {f(b['model'].get('deferrable_at_90'))} "
            f"({f(b['model'].get('recall_at_defer_threshold'))}) / {f(b.get('cold_start_auc'))} |"
            if b
            else (" - |" if before else "")
        )
        lines.append(
            f"| {r['project']} | {LANGUAGE.get(r['project'], '?')} | {r['builds']} | {f(m['roc_auc'])} | "
            f"{f(r['parrot']['roc_auc'])} / {f(r['parrot_ordered']['roc_auc'])} | {f(m['f1'])} | "
            f"{f(r['parrot']['f1'])} / {f(r['parrot_ordered']['f1'])} | {f(m.get('deferrable_at_90'))} "
            f"({f(at)}) | {f(r.get('cold_start_auc'))} |" + extra
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos-dir", type=Path, required=True)
    parser.add_argument("--projects", nargs="*", default=list(EVALUATION_PROJECTS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--retrain-every", type=int, default=25)
    parser.add_argument("--json", type=Path, default=None, help="Also write all reports here.")
    parser.add_argument("--cache", type=Path, default=None, help="Backtest in-process on imported tables kept here.")
    parser.add_argument("--markdown", type=Path, default=None, help="Also write the tables as Markdown (model card).")
    parser.add_argument("--before", type=Path, default=None, help="A previous --json output, shown beside in Markdown.")
    parser.add_argument("--before-label", default="the previous release", help="What --before was, in words.")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)  # scikit-learn's, once per fit in worker threads
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found: the benchmark reads ../shared/data/travis-builds at run time")
    seen = bundled_training_projects() & {p.lower() for p in args.projects}
    if seen:
        raise SystemExit(f"the bundled model was trained on {sorted(seen)}: pick unseen projects")
    ci_risk = str(Path(sys.executable).parent / "ci-risk")
    if args.cache is not None:
        sys.path.insert(0, str(HERE.parent / "scripts"))
        reports = []
        for done, project in enumerate(args.projects, 1):
            reports.append(run_cached(project, args.repos_dir, args.cache, args.retrain_every, args.jobs))
            print(f"[{done}/{len(args.projects)}] {project}", file=sys.stderr, flush=True)
    else:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            reports = list(
                pool.map(lambda p: run_project(p, args.repos_dir, ci_risk, args.retrain_every), args.projects)
            )
    ok = [r for r in reports if "error" not in r]
    print(
        f"{'project':<40}{'lang':>7}{'builds':>7}{'F1 model/Parrot/Parrot*':>25}{'AUC model/Parrot/Parrot*':>26}"
        f"{'defer@recall':>14}{'cold AUC':>9}{'secs':>7}"
    )
    for r in reports:
        if "error" in r:
            print(f"{r['project']:<40} error: {r['error']}")
            continue

        def trio(key: str, r: dict[str, Any] = r) -> str:
            return "/".join(
                "-" if r[w].get(key) is None else f"{r[w][key]:.3f}" for w in ("model", "parrot", "parrot_ordered")
            )

        v, at = r["model"].get("deferrable_at_90"), r["model"].get("recall_at_defer_threshold")
        defer = "-" if v is None else f"{v:.3f}@{at:.2f}" if at is not None else f"{v:.3f}"
        cold = r.get("cold_start_auc")
        print(
            f"{r['project']:<40}{LANGUAGE.get(r['project'], '?'):>7}{r['builds']:>7}{trio('f1'):>25}"
            f"{trio('roc_auc'):>26}{defer:>14}{'-' if cold is None else f'{cold:.3f}':>9}{r['backtest_seconds']:>7.1f}"
        )
    if not ok:
        return 1
    groups = {
        lang: [r for r in ok if LANGUAGE.get(r["project"]) == lang]
        for lang in sorted({LANGUAGE.get(r["project"], "?") for r in ok})
    }
    summaries = {lang: summary(rs) for lang, rs in groups.items()}
    summaries["all"] = summary(ok)
    print(f"\nmedians (Parrot = previous finished build; Parrot* = previous build in push order); targets {TARGETS}")
    for name, s in summaries.items():
        print_summary(name, s)
    a = summaries["all"]
    checks = {
        "ROC-AUC >= 0.85": (a["roc_auc"]["model"] or 0) >= TARGETS["roc_auc"],
        "F1 gain vs Parrot* >= +0.05": a["f1_gain"] >= TARGETS["f1_gain"],
        "no project below Parrot* F1 by > 0.02": a["worst_f1_gain"] >= TARGETS["worst_f1_gain"],
        ">= 35 % deferrable at >= 0.88 recall": (a["deferrable"] or 0) >= TARGETS["deferrable"],
        "cold start ROC-AUC >= 0.70": (a["cold_start_auc"] or 0) >= TARGETS["cold_start_auc"],
    }
    print("targets: " + "; ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in checks.items()))
    missed = [r["project"] for r in ok if counted_deferrable(r["model"]) == 0.0]
    print(f"below the {RECALL_FLOOR} recall floor (count 0 % deferrable): {', '.join(missed) or 'none'}")
    per_1000 = [r["backtest_seconds"] / r["builds"] * 1000 for r in ok]
    print(f"backtest time per 1,000 builds: median {statistics.median(per_1000):.1f} s, max {max(per_1000):.1f} s")
    cpu = [r["backtest_cpu_seconds"] / r["builds"] * 1000 for r in ok if "backtest_cpu_seconds" in r]
    if cpu:
        print(
            f"backtest CPU time per 1,000 builds (all threads): median {statistics.median(cpu):.1f} s, "
            f"max {max(cpu):.1f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
    if args.json:
        args.json.write_text(json.dumps({"reports": reports, "summary": summaries}, indent=1))
    if args.markdown:
        before = json.loads(args.before.read_text()) if args.before else None
        args.markdown.write_text(markdown(reports, summaries, before, args.before_label))
    return 0


if __name__ == "__main__":
    sys.exit(main())
