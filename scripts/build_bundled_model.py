"""Rebuild the bundled cold-start model (model/model.json) and its card from real Travis history.

For every project it runs the real pipeline (`ci-risk import --format travis`
into a fresh store, which computes each build's features from the fetched
clone), then trains one cross-project model on the training projects and
evaluates it on projects it never saw, beside the Parrot baseline.

A user who has not recorded outcomes yet has no build history, so every
training row appears twice: once with its build-history features and once
with them unknown. The model learns both situations, and the card reports
both.

The default warn threshold is chosen so that most pushes pass quietly (on the
median training project, QUIET_SHARE of its pushes score below it, with and
without build history); the 90 %-recall cut stays in the artifact as
"recall90" for teams that opt in (`--warn-at recall90`). `--rethreshold`
redoes only that step on the existing model.json (same trees, new thresholds,
resealed), so choosing thresholds never needs retraining.

Usage:
  python scripts/build_bundled_model.py --repos-dir /work/repos [--jobs 2] [--cache DIR] [--rethreshold]

`--repos-dir` holds work-tree clones named owner+name (fetched public
repositories, outside this project). The Travis data is read at run time
from ../shared/data/travis-builds and never copied; the artifact holds
feature names and numbers only (no author identities, no file paths).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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

from travis_split import EVALUATION_PROJECTS, LANGUAGE, TRAINING_PROJECTS  # noqa: E402

from ci_risk_hook.features.extract import FEATURE_NAMES, STORE_FEATURES  # noqa: E402
from ci_risk_hook.model.backtest import deferrable, metrics  # noqa: E402
from ci_risk_hook.model.dataset import Table, ci_table, concat  # noqa: E402
from ci_risk_hook.model.export import seal_artifact, write_artifact  # noqa: E402
from ci_risk_hook.model.scoring import PortableModel  # noqa: E402
from ci_risk_hook.model.training import (  # noqa: E402
    CANDIDATES,
    export,
    library_versions,
    threshold_for_f1,
    threshold_for_precision,
    threshold_for_recall,
    train,
)
from ci_risk_hook.outcomes.store import open_store  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "travis-builds" / "builds.csv"
STORE_COLUMNS = [FEATURE_NAMES.index(n) for n in STORE_FEATURES]
# A warning that always fires teaches people to ignore it: by default this share of a typical project's pushes
# pass quietly; the 90 %-recall cut ("recall90") is there for teams that opt in.
QUIET_SHARE = 0.8
REGIMES = ("with_history", "cold_start")
MEDIANS = {
    "parrot": ("f1", "roc_auc", "pr_auc", "brier", "deferrable_at_90"),
    "model": (
        "f1",
        "roc_auc",
        "pr_auc",
        "brier",
        "deferrable_at_90",
        "recall_at_defer_threshold",
        "quiet_at_warn",
        "recall_at_warn",
    ),
}


def project_table(
    project: str, repos_dir: Path | None, cache: Path | None = None, data: Path = DATA
) -> tuple[str, Table | None, str]:
    """Import one project's Travis builds with the real command, then read its table.

    With `cache`, the imported store (`owner+name.sqlite`) is kept there and reused: importing 174 projects takes
    the best part of an hour, while reading a table from a store takes seconds and always follows the current
    feature code (a new build-history feature needs no new import).
    """
    kept = cache / f"{project.replace('/', '+')}.sqlite" if cache is not None else None
    if kept is not None and kept.exists():
        return project, _read_table(kept), f"from {kept}"
    clone = repos_dir / project.replace("/", "+") if repos_dir is not None else None
    if clone is None or not (clone / ".git").exists():
        return project, None, f"no clone at {clone}"
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "history.sqlite")
        env = {**os.environ, "CI_RISK_DB": db, "CI_RISK_HOME": tmp, "CI_RISK_INDEX_DIR": os.path.join(tmp, "index")}
        ci_risk = str(Path(sys.executable).parent / "ci-risk")
        proc = subprocess.run(
            [ci_risk, "import", str(data), "--format", "travis", "--travis-repo", project],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            return project, None, (proc.stderr.strip().splitlines() or ["import failed"])[-1]
        table = _read_table(Path(db))
        if kept is not None:
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(db, f"{kept}.part")
            os.replace(f"{kept}.part", kept)
    return project, table, proc.stdout.strip().splitlines()[0]


def _read_table(db: Path) -> Table:
    store = open_store(str(db))
    try:
        return ci_table(store, store.repositories()[0][0])
    finally:
        store.close()


def masked(table: Table) -> Table:
    X = table.X.copy()
    X[:, STORE_COLUMNS] = np.nan
    return table.with_features(X)


class Shipped:
    """A model artifact behind the `predict` that training's candidates have: scored exactly as the hook does."""

    def __init__(self, artifact: dict[str, Any]) -> None:
        self.model = PortableModel.from_dict(artifact)

    def predict(self, X: np.ndarray) -> np.ndarray:
        rows = [[None if v != v else float(v) for v in row] for row in X.tolist()]
        return np.asarray(self.model.predict_proba(rows), dtype=float)


def regime_scores(model: Any, table: Table) -> dict[str, np.ndarray]:
    """The model's scores of a project's pushes with their build history, and as a fresh repository sees them."""
    return {"with_history": model.predict(table.X), "cold_start": model.predict(masked(table).X)}


def quiet_threshold(per_project: list[np.ndarray], share: float) -> float:
    """The lowest score under which at least `share` of the median project's pushes fall (they pass quietly)."""
    candidates = np.unique(np.concatenate(per_project))
    lo, hi = 0, len(candidates)
    while lo < hi:  # the median share below a threshold only grows with it
        mid = (lo + hi) // 2
        if statistics.median(float((p < candidates[mid]).mean()) for p in per_project) >= share:
            hi = mid
        else:
            lo = mid + 1
    return float(candidates[lo]) if lo < len(candidates) else 1.0


def default_warn(scores: dict[str, dict[str, np.ndarray]], share: float) -> tuple[float, dict[str, float]]:
    """The warn threshold for the training projects' pushes, in both regimes, and the quiet share it gives."""
    warn = max(quiet_threshold([s[regime] for s in scores.values()], share) for regime in REGIMES)
    quiet = {
        regime: round(statistics.median(float((s[regime] < warn).mean()) for s in scores.values()), 4)
        for regime in REGIMES
    }
    return warn, quiet


def evaluate(scores: np.ndarray, thresholds: dict[str, float], table: Table) -> dict[str, Any]:
    """Metrics as before (deferrable at the 90 %-recall cut), and what the default warn threshold does."""
    m = metrics(scores, table.y, thresholds["f1"], thresholds["recall90"]).as_dict()
    m["quiet_at_warn"], m["recall_at_warn"] = deferrable(scores, table.y, thresholds["warn"])
    parrot = metrics(table.parrot, table.y, 0.5, None, table.parrot)
    return {"builds": len(table), "failures": int(table.y.sum()), "model": m, "parrot": parrot.as_dict()}


def write_card(out: Path) -> None:
    """MODEL_CARD.md from the artifact's provenance and the evaluation file, so the card never drifts."""
    artifact = json.loads((out / "model.json").read_text())
    evaluation = json.loads((out / "evaluation.json").read_text())
    prov = artifact["provenance"]
    median = evaluation["median"]
    t = artifact["thresholds"]
    choice = prov["warn_choice"]
    quiet = choice["training_projects_median_quiet"]

    def row(name: str, regime: str, who: str) -> str:
        m = median[regime][who]
        at_warn = f"{m['quiet_at_warn']:.3f} | {m['recall_at_warn']:.3f}" if "quiet_at_warn" in m else "- | -"
        return (
            f"| {name} | {m['f1']:.3f} | {m['roc_auc']:.3f} | {m['pr_auc']:.3f} | {m['brier']:.3f} | "
            f"{m['deferrable_at_90']:.3f} | {at_warn} |"
        )

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
        f"- **Projects** ({len(prov['repositories'])}; "
        + ", ".join(f"{n} {lang}" for lang, n in prov.get("languages", {}).items())
        + f"; 2014-2021): {', '.join(prov['repositories'])}. The language is not an input: the model sees the "
        "touched files' categories (source, test, build, docs...), whatever the language.",
        f"- **Rows**: {prov['rows']:,} builds, {prov['failures']:,} failed ({prov['failures'] / prov['rows']:.0%}); "
        "each row appears twice, once with its build-history features and once with them unknown, so the "
        "model also serves a repository that has recorded no outcomes yet.",
        f"- **Model**: `{prov['chosen']}`, chosen among {', '.join(sorted(prov['validation_average_precision']))} by "
        "average precision on the newest 20 % of builds (time-ordered, never a random split), then refitted "
        "on the oldest 80 % and calibrated on the newest 20 %.",
        f"- **Thresholds**: warn {t['warn']:.3f}, the default: on the median training project "
        f"{quiet['with_history']:.0%} of pushes score below it with their build history recorded and "
        f"{quiet['cold_start']:.0%} on a fresh repository (none recorded), so most pushes pass quietly "
        f"(chosen for at least {choice['quiet_share_target']:.0%}, on the training projects only). "
        f"recall90 {t['recall90']:.3f} catches 90 % of validation failures and warns on far more pushes: opt in "
        "with `--warn-at recall90` (or `warn_at = recall90`). "
        f"Block {t['block']:.3f} (80 % precision on validation), best F1 {t['f1']:.3f}.",
        "- **Features**: the ci-risk feature schema (size and spread, file categories, file and author history, "
        "messages, build history); see README. The artifact holds feature names, trees and numbers only: no "
        "author identity, no file path, no commit of any project.",
        f"- **Libraries**: {', '.join(f'{k} {v}' for k, v in prov['libraries'].items())}.",
        "",
        f"## How it scored on {len(evaluation['per_project'])} projects it never saw",
        "",
        f"Projects: {', '.join(evaluation['per_project'])}. Every push build of each project, scored by the "
        "model as shipped (no retraining on the project). Medians over the projects; failing class; F1 at the "
        "best-F1 threshold chosen on training data; deferrable = share of builds below the recall90 cut "
        "(chosen on training data for 90 % recall); quiet and recall at warn = share of pushes below the "
        "default warn threshold, and share of failures at or above it.",
        "",
        "| | F1 | ROC-AUC | PR-AUC | Brier | deferrable at recall90 | quiet at warn | recall at warn |",
        "|---|---|---|---|---|---|---|---|",
        row("ci-risk, with build history", "with_history", "model"),
        row("ci-risk, cold start (no outcomes recorded)", "cold_start", "model"),
        row("Parrot (previous build on the branch)", "with_history", "parrot"),
        "",
        f"At the default warn threshold {t['warn']:.3f}, the median unseen project has "
        f"{median['with_history']['model']['quiet_at_warn']:.0%} of its pushes pass quietly with build history "
        f"(recall of failures {median['with_history']['model']['recall_at_warn']:.2f}) and "
        f"{median['cold_start']['model']['quiet_at_warn']:.0%} cold "
        f"(recall {median['cold_start']['model']['recall_at_warn']:.2f}); the opt-in recall90 cut keeps recall "
        f"{median['with_history']['model']['recall_at_defer_threshold']:.2f} with history and lets "
        f"{median['with_history']['model']['deferrable_at_90']:.0%} pass.",
        "",
        "Per language (medians over that language's unseen projects):",
        "",
        "| language | projects | ROC-AUC with history / Parrot | F1 with history / Parrot "
        "| deferrable at recall90 (recall) | cold-start ROC-AUC | cold-start F1 |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {lang} | {g['projects']} | {g['with_history']['model']['roc_auc']:.3f} / "
            f"{g['with_history']['parrot']['roc_auc']:.3f} | {g['with_history']['model']['f1']:.3f} / "
            f"{g['with_history']['parrot']['f1']:.3f} | {g['with_history']['model']['deferrable_at_90']:.3f} "
            f"({g['with_history']['model']['recall_at_defer_threshold']:.2f}) | "
            f"{g['cold_start']['model']['roc_auc']:.3f} | {g['cold_start']['model']['f1']:.3f} |"
            for lang, g in evaluation.get("per_language", {}).items()
        ],
        "",
        "Which evidence it relies on where it was not trained: the median drop of ROC-AUC (with build history) "
        "on the unseen projects when one feature group is shuffled within each project (reported, never used to "
        "choose anything):",
        "",
        "| feature group | ROC-AUC drop |",
        "|---|---|",
        *[
            f"| {group} | {drop:+.3f} |"
            for group, drop in sorted(evaluation.get("group_importance", {}).items(), key=lambda kv: -kv[1])
        ],
        "",
        "Parrot here uses the last build on the branch that had *finished* when the build started (what a "
        "hook can know); its deferrable share is the expected one when extra builds are flagged at random to "
        "reach 90 % recall.",
        "",
        "| project | builds | failed | F1 model / Parrot | ROC-AUC model / Parrot "
        "| deferrable at recall90 (recall) / Parrot | quiet at warn (recall) | cold-start ROC-AUC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for project, result in evaluation["per_project"].items():
        w, c = result["with_history"], result["cold_start"]
        lines.append(
            f"| {project} | {w['builds']} | {w['failures']} | {w['model']['f1']:.3f} / {w['parrot']['f1']:.3f} | "
            f"{w['model']['roc_auc']:.3f} / {w['parrot']['roc_auc']:.3f} | "
            f"{w['model']['deferrable_at_90']:.3f} ({w['model']['recall_at_defer_threshold']:.2f}) / "
            f"{w['parrot']['deferrable_at_90']:.3f} | "
            f"{w['model']['quiet_at_warn']:.3f} ({w['model']['recall_at_warn']:.2f}) | {c['model']['roc_auc']:.3f} |"
        )
    lines += [
        "",
        "## Limits",
        "",
        "- Trained on Go, Java, Python and Ruby projects' Travis CI history of 2014-2021; other languages, CI "
        "systems and eras may "
        "differ. Train on your own outcomes (`ci-risk import` / `ci-risk run`, then `ci-risk retrain`).",
        "- Travis reports a build's duration as the sum of its jobs; finish times are estimated as that sum "
        'over min(jobs, 5), so "finished before" is approximate.',
        "- The 90 % recall target is met on validation data, not guaranteed on a new project (see the recall "
        "column above). The default warn threshold trades recall for quiet: it flags the riskiest pushes, not "
        "nine failures in ten.",
        "- Cold start (no recorded outcomes) relies on git features alone and ranks failures much less well.",
        "",
    ]
    extra = out / "BACKTEST.md"  # the rolling backtest's figures (bench/backtest_travis.py), kept beside the card
    if extra.exists():
        lines += [extra.read_text().rstrip(), ""]
    (out / "MODEL_CARD.md").write_text("\n".join(lines))


def load_tables(args: argparse.Namespace) -> tuple[dict[str, Table], list[str], list[str]]:
    if not args.data.exists():
        raise SystemExit(f"{args.data} not found")
    overlap = set(TRAINING_PROJECTS) & set(EVALUATION_PROJECTS)
    if overlap:
        raise SystemExit(f"training and evaluation projects overlap: {sorted(overlap)}")
    projects = TRAINING_PROJECTS + EVALUATION_PROJECTS
    if args.cached_only:
        projects = tuple(p for p in projects if (args.cache / f"{p.replace('/', '+')}.sqlite").exists())
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        loaded = list(pool.map(lambda p: project_table(p, args.repos_dir, args.cache, args.data), projects))
    tables = {p: t for p, t, _ in loaded if t is not None and len(t) >= 50}
    for p, t, note in loaded:
        print(f"{p:<40} {'-' if t is None else len(t):>6} rows  {note}", file=sys.stderr)
    training = [p for p in TRAINING_PROJECTS if p in tables]
    evaluation = [p for p in EVALUATION_PROJECTS if p in tables]
    if len(training) < 20:
        raise SystemExit(f"only {len(training)} training projects could be loaded; need 20")
    return tables, training, evaluation


def fit_new(joined: Table) -> tuple[Any, dict[str, float], dict[str, Any]]:
    """Train on the training projects; the cuts from the newest 20 % of their real rows (with history)."""
    augmented = concat([joined, masked(joined)])
    # Never the previous bundled model as a candidate: the new one must come from the data alone.
    result = train(augmented, candidates=tuple(c for c in CANDIDATES if not c.endswith("bundled")))
    # As `train` would pick them for a repository that records outcomes: the masked copies would pull the
    # 90 %-recall cut off target.
    tail = joined.subset(range(int(len(joined) * 0.8), len(joined)))
    p_tail = result.model.predict(tail.X)
    cuts = {
        "recall90": threshold_for_recall(p_tail, tail.y, 0.9),
        "block": threshold_for_precision(p_tail, tail.y, 0.8),
        "f1": threshold_for_f1(p_tail, tail.y),
    }
    provenance = {
        "purpose": "bundled cold-start model",
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": "Travis CI push builds (TravisTorrent tools' 2021 crawl), features computed by ci-risk from the "
        "projects' public git history",
        "rows": int(len(joined)),
        "failures": int(joined.y.sum()),
        "chosen": result.model.name,
        "validation_average_precision": {k: round(v, 4) for k, v in result.validation.items()},
        "libraries": library_versions(),
    }
    return result, cuts, provenance


def group_importance(model: Any, tables: dict[str, Table], projects: list[str], seed: int = 0) -> dict[str, Any]:
    """Median drop of ROC-AUC on unseen projects when one feature group is shuffled within each project.

    Reported, never used to choose anything: which kinds of evidence the model relies on where it was not trained.
    """
    from sklearn.metrics import roc_auc_score

    from ci_risk_hook.features.extract import SCHEMA

    groups: dict[str, list[int]] = {}
    for feature in SCHEMA:
        groups.setdefault(feature.group, []).append(FEATURE_NAMES.index(feature.name))
    rng = np.random.default_rng(seed)
    drops: dict[str, list[float]] = {g: [] for g in groups}
    for p in projects:
        table = tables[p]
        if len(np.unique(table.y)) < 2:
            continue
        base = roc_auc_score(table.y, model.predict(table.X))
        for group, columns in groups.items():
            X = table.X.copy()
            order = rng.permutation(len(X))
            X[:, columns] = X[order][:, columns]
            drops[group].append(base - roc_auc_score(table.y, model.predict(X)))
    return {g: round(statistics.median(v), 4) for g, v in drops.items() if v}


def medians(per_project: dict[str, Any]) -> dict[str, Any]:
    """Median figures of a group of projects, per regime and predictor."""
    summary: dict[str, Any] = {"projects": len(per_project)}
    for regime in REGIMES:
        summary[regime] = {
            who: {
                key: statistics.median(
                    v[regime][who][key] for v in per_project.values() if v[regime][who].get(key) is not None
                )
                for key in MEDIANS[who]
            }
            for who in ("model", "parrot")
        }
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos-dir", type=Path, required=False)
    parser.add_argument("--out", type=Path, default=ROOT / "model")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DATA, help="The travis-builds CSV (read, never copied).")
    parser.add_argument("--cache", type=Path, default=None, help="Keep and reuse each project's imported table here.")
    parser.add_argument("--card-only", action="store_true", help="Rewrite MODEL_CARD.md from the existing files.")
    parser.add_argument(
        "--cached-only", action="store_true", help="Use only the projects already imported into --cache (no imports)."
    )
    parser.add_argument(
        "--rethreshold",
        action="store_true",
        help="Keep the existing model; choose its thresholds again, reseal, re-evaluate, rewrite the card.",
    )
    args = parser.parse_args()
    if args.card_only:
        write_card(args.out)
        return 0
    if args.repos_dir is None:
        parser.error("--repos-dir is required")
    if args.cached_only and args.cache is None:
        parser.error("--cached-only needs --cache")
    warnings.filterwarnings("ignore", category=UserWarning)
    started = time.monotonic()
    tables, training, evaluation = load_tables(args)
    joined = concat([tables[p] for p in training])
    if args.rethreshold:
        previous = json.loads((args.out / "model.json").read_text())
        if sorted(previous["provenance"]["repositories"]) != sorted(training):
            raise SystemExit("the training projects loaded are not the ones the existing model was trained on")
        model: Any = Shipped(previous)
        old = previous["thresholds"]
        # The existing 90 %-recall cut (named "warn" before the default became the quiet one) is kept as chosen.
        cuts = {"recall90": old.get("recall90", old["warn"]), "block": old["block"], "f1": old["f1"]}
        provenance = {
            **previous["provenance"],
            "thresholds_chosen_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    else:
        result, cuts, provenance = fit_new(joined)
        model = result.model
    scores = {p: regime_scores(model, tables[p]) for p in training + evaluation}
    warn, quiet = default_warn({p: scores[p] for p in training}, QUIET_SHARE)  # never on the evaluation projects
    thresholds = {**cuts, "warn": warn}
    per_project = {
        p: {regime: evaluate(scores[p][regime], thresholds, tables[p]) for regime in REGIMES} for p in evaluation
    }
    summary = medians(per_project)
    importance = group_importance(model, tables, evaluation)
    per_language = {
        lang: medians({p: v for p, v in per_project.items() if LANGUAGE[p] == lang})
        for lang in sorted({LANGUAGE[p] for p in per_project})
    }
    provenance.update(
        {
            "repositories": training,
            "languages": {lang: sum(LANGUAGE[p] == lang for p in training) for lang in sorted(set(LANGUAGE.values()))},
            "warn_choice": {"quiet_share_target": QUIET_SHARE, "training_projects_median_quiet": quiet},
            "evaluation": {"projects": evaluation, "median": summary},
        }
    )
    if args.rethreshold:
        artifact = seal_artifact({**previous, "thresholds": thresholds, "provenance": provenance})
    else:
        artifact = export(result._replace(thresholds=thresholds), provenance)
    args.out.mkdir(parents=True, exist_ok=True)
    write_artifact(artifact, args.out / "model.json")
    (args.out / "evaluation.json").write_text(
        json.dumps(
            {
                "per_project": per_project,
                "median": summary,
                "per_language": per_language,
                "group_importance": importance,
            },
            indent=1,
        )
        + "\n"
    )
    write_card(args.out)
    print(
        json.dumps(
            {
                "chosen": provenance["chosen"],
                "thresholds": thresholds,
                "training_median_quiet": quiet,
                "median": summary,
            },
            indent=1,
        )
    )
    print(f"done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
