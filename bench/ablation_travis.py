"""Ablation: which way of using the bundled model beats the previous-build rule, on TRAINING projects only.

Choices are made here, never on the evaluation projects of travis_split.py. With `--base-model` the bundled
candidate is another artifact (the previous bundled model, which never saw the Go, Java and Ruby training
projects): judging a variant with a model trained on the same projects would flatter it.

Usage:
  python bench/ablation_travis.py --cache DIR [--base-model PATH] [--variants a,b] owner/name ...

DIR holds the stores `bench/backtest_travis.py --cache` / `scripts/build_bundled_model.py --cache` imported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from build_bundled_model import project_table  # noqa: E402
from travis_split import EVALUATION_PROJECTS  # noqa: E402

from ci_risk_hook.model import training  # noqa: E402
from ci_risk_hook.model.backtest import backtest  # noqa: E402

FLOOR = 0.88
# name -> (bundled candidate's own cuts, recall window, candidates, recall cut's margin in standard errors)
VARIANTS: dict[str, tuple[bool, int, tuple[str, ...], float]] = {
    "shipped-cuts": (False, training.RECALL_WINDOW, training.CANDIDATES, 0.0),
    "own-cuts-all": (True, 10**9, training.CANDIDATES, 0.0),
    "own-cuts-recent": (True, 150, training.CANDIDATES, 0.0),
    "own-cuts-recent+rule+bundled": (True, 150, (*training.CANDIDATES, "rule+bundled"), 0.0),
    **{f"own-cuts-recent+margin{z:g}": (True, 150, training.CANDIDATES, z) for z in (0.25, 0.5, 1.0, 1.5, 2.0)},
    **{f"own-cuts-all+margin{z:g}": (True, 10**9, training.CANDIDATES, z) for z in (0.5, 1.0, 1.5)},
}


def run(table: Any, variant: str) -> tuple[float, float, float, float]:
    own, window, candidates, margin = VARIANTS[variant]
    training.OWN_CUTS, training.RECALL_WINDOW, training.RECALL_MARGIN_Z = own, window, margin
    r = backtest(table, candidates=candidates, n_jobs=2)
    recall = r.model.recall_at_defer_threshold
    deferrable = r.model.deferrable_at_90 if recall >= FLOOR else 0.0
    return r.model.f1 - r.parrot_ordered.f1, r.model.roc_auc, deferrable, recall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("projects", nargs="+")
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--base-model", default=None, help="Artifact used as the bundled candidate.")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    unseen = set(args.projects) & set(EVALUATION_PROJECTS)
    if unseen:
        raise SystemExit(f"evaluation projects are never used for choosing: {sorted(unseen)}")
    if args.base_model:
        path = args.base_model
        training._bundled = lambda: path
    variants = args.variants.split(",")
    rows: dict[str, list[tuple[float, float, float, float]]] = {v: [] for v in variants}
    for project in args.projects:
        _, table, note = project_table(project, None, args.cache)
        if table is None:
            print(f"{project}: {note}", file=sys.stderr)
            continue
        for variant in variants:
            rows[variant].append(run(table, variant))
            gain, auc, deferrable, recall = rows[variant][-1]
            print(
                f"{variant:<30}{project:<45} F1 gain {gain:+.3f}  AUC {auc:.3f}  deferrable {deferrable:.3f}"
                f"  recall {recall:.3f}",
                flush=True,
            )
    print(
        f"\n{'variant':<30}{'median F1 gain vs Parrot*':>27}{'worst':>8}{'AUC':>7}{'deferrable':>12}{'mean':>7}"
        f"{'below floor':>13}"
    )
    for variant, got in rows.items():
        gains = [g for g, _, _, _ in got]
        print(
            f"{variant:<30}{statistics.median(gains):>+27.3f}{min(gains):>+8.3f}"
            f"{statistics.median(a for _, a, _, _ in got):>7.3f}{statistics.median(d for _, _, d, _ in got):>12.3f}"
            f"{statistics.mean(d for _, _, d, _ in got):>7.3f}"
            f"{sum(r < FLOOR for *_, r in got):>13}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
