"""Rebuild the bundled cold-start model (model/model.json) and its card from real Travis history.

For every project it runs the real pipeline (`ci-risk import --format travis`
into a fresh store, which computes each build's features from the fetched
clone), then trains one cross-project model on the training projects and
evaluates it on projects it never saw, beside the Parrot baseline.

A user who has not recorded outcomes yet has no build history, so every
training row appears twice: once with its build-history features and once
with them unknown. The model learns both situations, and the card reports
both.

Usage:
  python scripts/build_bundled_model.py --repos-dir /work/repos [--jobs 2]

`--repos-dir` holds work-tree clones named owner+name (fetched public
repositories, outside this project). The Travis data is read at run time
from ../shared/data/travis-builds and never copied; the artifact holds
feature names and numbers only (no author identities, no file paths).
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from backtest_travis import EVALUATION_PROJECTS  # noqa: E402

from ci_risk_hook.backtest import metrics  # noqa: E402
from ci_risk_hook.dataset import Table, ci_table, concat  # noqa: E402
from ci_risk_hook.export import write_artifact  # noqa: E402
from ci_risk_hook.features import FEATURE_NAMES, STORE_FEATURES  # noqa: E402
from ci_risk_hook.store import open_store  # noqa: E402
from ci_risk_hook.training import (CANDIDATES, export, library_versions, threshold_for_f1,  # noqa: E402
                                   threshold_for_precision, threshold_for_recall, train)

DATA = ROOT.parent / "shared" / "data" / "travis-builds" / "builds.csv"
TRAINING_PROJECTS = (
    "aaugustin/websockets", "tobi-wan-kenobi/bumblebee-status", "buildinspace/peru", "johnbywater/eventsourcing",
    "datafolklabs/cement", "Yelp/detect-secrets", "lyft/confidant", "olofk/fusesoc", "WoLpH/python-progressbar",
    "peterbrittain/asciimatics", "espressif/esptool", "dschep/ntfy", "javrasya/django-river",
    "deschler/django-modeltranslation", "groveco/django-sql-explorer", "machow/siuba", "bashtage/arch",
    "pyscaffold/pyscaffold", "wakatime/wakatime", "twintproject/twint", "jjjake/internetarchive", "gpodder/gpodder",
    "lanpa/tensorboardX",
)
STORE_COLUMNS = [FEATURE_NAMES.index(n) for n in STORE_FEATURES]


def project_table(project: str, repos_dir: Path, cache: Path | None = None) -> tuple[str, Table | None, str]:
    """Import one project's Travis builds with the real command, then read its table.

    With `cache`, the table (feature numbers and labels, no identities) is kept there and reused: importing
    33 projects takes the best part of an hour, and re-thresholding needs the same tables again.
    """
    cached = cache / f"{project.replace('/', '+')}.pickle" if cache is not None else None
    if cached is not None and cached.exists():
        with open(cached, "rb") as fh:
            return project, pickle.load(fh), f"from {cached}"
    clone = repos_dir / project.replace("/", "+")
    if not (clone / ".git").exists():
        return project, None, f"no clone at {clone}"
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "history.sqlite")
        env = {**os.environ, "CI_RISK_DB": db, "CI_RISK_HOME": tmp, "CI_RISK_INDEX_DIR": os.path.join(tmp, "index")}
        ci_risk = str(Path(sys.executable).parent / "ci-risk")
        proc = subprocess.run([ci_risk, "import", str(DATA), "--format", "travis", "--travis-repo", project],
                              cwd=clone, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            return project, None, (proc.stderr.strip().splitlines() or ["import failed"])[-1]
        store = open_store(db)
        try:
            repo_id = store.repositories()[0][0]
            table = ci_table(store, repo_id)
        finally:
            store.close()
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with open(cached, "wb") as fh:
            pickle.dump(table, fh)
    return project, table, proc.stdout.strip().splitlines()[0]


def masked(table: Table) -> Table:
    X = table.X.copy()
    X[:, STORE_COLUMNS] = np.nan
    return table.with_features(X)


def evaluate(model: Any, thresholds: dict[str, float], table: Table, cold: bool) -> dict[str, Any]:
    X = masked(table).X if cold else table.X
    p = model.predict(X)
    m = metrics(p, table.y, thresholds["f1"], thresholds["warn"])
    parrot = metrics(table.parrot, table.y, 0.5, None, table.parrot)
    return {"builds": len(table), "failures": int(table.y.sum()), "model": m.as_dict(), "parrot": parrot.as_dict()}


def write_card(out: Path) -> None:
    """MODEL_CARD.md from the artifact's provenance and the evaluation file, so the card never drifts."""
    artifact = json.loads((out / "model.json").read_text())
    evaluation = json.loads((out / "evaluation.json").read_text())
    prov = artifact["provenance"]
    median = evaluation["median"]

    def row(name: str, regime: str, who: str) -> str:
        m = median[regime][who]
        return (f"| {name} | {m['f1']:.3f} | {m['roc_auc']:.3f} | {m['pr_auc']:.3f} | {m['brier']:.3f} | "
                f"{m['deferrable_at_90']:.3f} |")

    lines = [
        "# Bundled model card",
        "",
        f"`model.json`, sha256 `{artifact['sha256']}`, built {prov['trained_at']} by "
        "`scripts/build_bundled_model.py`. ci-risk scores with it when a repository has no model of its own "
        "(`ci-risk train` makes one; `ci-risk retrain` compares them).",
        "",
        "## What it was trained on",
        "",
        f"- **Data**: {prov['data']}. Push builds only; failed or errored = failure; cancelled builds dropped; "
        "builds whose commit is missing from the fetched history are kept as history but not learned from.",
        f"- **Projects** ({len(prov['repositories'])}, all Python, 2014-2021): {', '.join(prov['repositories'])}.",
        f"- **Rows**: {prov['rows']:,} builds, {prov['failures']:,} failed ({prov['failures'] / prov['rows']:.0%}); "
        "each row appears twice, once with its build-history features and once with them unknown, so the "
        "model also serves a repository that has recorded no outcomes yet.",
        f"- **Model**: `{prov['chosen']}`, chosen among {', '.join(sorted(prov['validation_average_precision']))} by "
        "average precision on the newest 20 % of builds (time-ordered, never a random split), then refitted "
        "on the oldest 80 % and calibrated on the newest 20 %.",
        f"- **Thresholds**: warn {artifact['thresholds']['warn']:.3f} (catches 90 % of validation failures), "
        f"block {artifact['thresholds']['block']:.3f} (80 % precision on validation), best F1 "
        f"{artifact['thresholds']['f1']:.3f}.",
        "- **Features**: the ci-risk feature schema (size and spread, file categories, file and author history, "
        "messages, build history); see README. The artifact holds feature names, trees and numbers only: no "
        "author identity, no file path, no commit of any project.",
        f"- **Libraries**: {', '.join(f'{k} {v}' for k, v in prov['libraries'].items())}.",
        "",
        f"## How it scored on {len(evaluation['per_project'])} projects it never saw",
        "",
        f"Projects: {', '.join(evaluation['per_project'])}. Every push build of each project, scored by the "
        "model as shipped (no retraining on the project). Medians over the projects; failing class; F1 at the "
        "best-F1 threshold chosen on training data; deferrable = share of builds below the warn threshold "
        "(chosen on training data for 90 % recall).",
        "",
        "| | F1 | ROC-AUC | PR-AUC | Brier | deferrable |",
        "|---|---|---|---|---|---|",
        row("ci-risk, with build history", "with_history", "model"),
        row("ci-risk, cold start (no outcomes recorded)", "cold_start", "model"),
        row("Parrot (previous build on the branch)", "with_history", "parrot"),
        "",
        "Parrot here uses the last build on the branch that had *finished* when the build started (what a "
        "hook can know); its deferrable share is the expected one when extra builds are flagged at random to "
        "reach 90 % recall.",
        "",
        "| project | builds | failed | F1 model / Parrot | ROC-AUC model / Parrot | deferrable model (recall) / Parrot | cold-start ROC-AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for project, result in evaluation["per_project"].items():
        w, c = result["with_history"], result["cold_start"]
        lines.append(f"| {project} | {w['builds']} | {w['failures']} | {w['model']['f1']:.3f} / {w['parrot']['f1']:.3f} | "
                     f"{w['model']['roc_auc']:.3f} / {w['parrot']['roc_auc']:.3f} | "
                     f"{w['model']['deferrable_at_90']:.3f} ({w['model']['recall_at_defer_threshold']:.2f}) / "
                     f"{w['parrot']['deferrable_at_90']:.3f} | {c['model']['roc_auc']:.3f} |")
    lines += [
        "",
        "## Limits",
        "",
        "- Trained on Python projects' Travis CI history of 2014-2021; other languages, CI systems and eras may "
        "differ. Train on your own outcomes (`ci-risk import` / `ci-risk run`, then `ci-risk retrain`).",
        "- Travis reports a build's duration as the sum of its jobs; finish times are estimated as that sum "
        "over min(jobs, 5), so \"finished before\" is approximate.",
        "- The 90 % recall target is met on validation data, not guaranteed on a new project (see the recall "
        "column above).",
        "- Cold start (no recorded outcomes) relies on git features alone and ranks failures much less well.",
        "",
    ]
    (out / "MODEL_CARD.md").write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "model")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--card-only", action="store_true", help="Rewrite MODEL_CARD.md from the existing files.")
    args = parser.parse_args()
    if args.card_only:
        write_card(args.out)
        return 0
    warnings.filterwarnings("ignore", category=UserWarning)
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found")
    overlap = set(TRAINING_PROJECTS) & set(EVALUATION_PROJECTS)
    if overlap:
        raise SystemExit(f"training and evaluation projects overlap: {sorted(overlap)}")
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        loaded = list(pool.map(lambda p: project_table(p, args.repos_dir), TRAINING_PROJECTS + EVALUATION_PROJECTS))
    tables = {p: t for p, t, _ in loaded if t is not None and len(t) >= 50}
    for p, t, note in loaded:
        print(f"{p:<40} {'-' if t is None else len(t):>6} rows  {note}", file=sys.stderr)
    training = [p for p in TRAINING_PROJECTS if p in tables]
    evaluation = [p for p in EVALUATION_PROJECTS if p in tables]
    if len(training) < 20:
        raise SystemExit(f"only {len(training)} training projects could be loaded; need 20")
    joined = concat([tables[p] for p in training])
    augmented = concat([joined, masked(joined)])
    # Never the previous bundled model as a candidate: the new one must come from the data alone.
    result = train(augmented, candidates=tuple(c for c in CANDIDATES if c != "bundled"))
    # Thresholds from the newest 20 % of the real rows (with history), as `train` would pick them for a
    # repository that records outcomes: the masked copies would pull the warn threshold off target.
    tail = joined.subset(range(int(len(joined) * 0.8), len(joined)))
    p_tail = result.model.predict(tail.X)
    result = result._replace(thresholds={
        "warn": threshold_for_recall(p_tail, tail.y, 0.9),
        "block": threshold_for_precision(p_tail, tail.y, 0.8),
        "f1": threshold_for_f1(p_tail, tail.y),
    })
    per_project = {p: {"with_history": evaluate(result.model, result.thresholds, tables[p], cold=False),
                       "cold_start": evaluate(result.model, result.thresholds, tables[p], cold=True)}
                   for p in evaluation}
    summary: dict[str, Any] = {}
    for regime in ("with_history", "cold_start"):
        summary[regime] = {
            who: {key: statistics.median(v[regime][who][key] for v in per_project.values()
                                         if v[regime][who][key] is not None)
                  for key in ("f1", "roc_auc", "pr_auc", "brier", "deferrable_at_90")}
            for who in ("model", "parrot")
        }
    provenance = {
        "purpose": "bundled cold-start model",
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": "Travis CI push builds (TravisTorrent tools' 2021 crawl), features computed by ci-risk from the "
                "projects' public git history",
        "repositories": training,
        "rows": int(len(joined)),
        "failures": int(joined.y.sum()),
        "chosen": result.model.name,
        "validation_average_precision": {k: round(v, 4) for k, v in result.validation.items()},
        "evaluation": {"projects": evaluation, "median": summary},
        "libraries": library_versions(),
    }
    artifact = export(result, provenance)
    args.out.mkdir(parents=True, exist_ok=True)
    write_artifact(artifact, args.out / "model.json")
    (args.out / "evaluation.json").write_text(json.dumps({"per_project": per_project, "median": summary}, indent=1)
                                              + "\n")
    write_card(args.out)
    print(json.dumps({"chosen": result.model.name, "thresholds": result.thresholds, "median": summary}, indent=1))
    print(f"built in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
