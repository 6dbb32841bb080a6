"""The backtest metrics table: which metrics, their human labels, their order, and the columns compared.

One table for every view of a backtest: `ci-risk backtest` and `model show`,
the HTML report, the dashboard, `retrain --metric` and the benchmarks.
Standard library only: the CLI reads it when it builds its options.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple


class Metric(NamedTuple):
    key: str  # as in BacktestResult.as_dict()
    label: str


# Every metric of the failing class, in the order they are shown.
METRICS = (
    Metric("precision", "precision (failing)"),
    Metric("recall", "recall (failing)"),
    Metric("f1", "F1 (failing)"),
    Metric("roc_auc", "ROC-AUC"),
    Metric("pr_auc", "PR-AUC"),
    Metric("brier", "Brier score"),
    Metric("deferrable_at_90", "deferrable at 90% recall"),
)
# The recall the deferrable share was reached at: shown right under it in text tables.
RECALL_REACHED = Metric("recall_at_defer_threshold", "  recall reached")
KEYS = tuple(m.key for m in METRICS)

# The predictors a backtest compares: key in the report, column title.
COLUMNS = (("model", "ci-risk"), ("parrot", "Parrot"), ("parrot_ordered", "Parrot*"), ("demo", "demo model"))

# Metrics where higher is better: what `retrain` may compare an old and a new model on.
RETRAIN_METRICS = ("f1", "roc_auc", "pr_auc", "deferrable_at_90")
# The headline metrics of a benchmark summary.
SUMMARY = ("f1", "roc_auc", "pr_auc", "brier", "deferrable_at_90")

PARROT_NOTE = (
    "Parrot: outcome of the last build on the branch that had finished when this one started; "
    "Parrot*: previous build in push order, finished or not (optimistic, as usually published)."
)


def text_table(report: Mapping[str, Any]) -> str:
    """A backtest report as the fixed-width table `ci-risk backtest` and `model show` print."""
    lines = [f"{'':<26}" + "".join(f"{title:>12}" for _, title in COLUMNS)]
    for key, title in (*METRICS, RECALL_REACHED):
        cells = []
        for column, _ in COLUMNS:
            value = report[column].get(key)
            cells.append(f"{'-' if value is None else format(value, '.3f'):>12}")
        lines.append(f"{title:<26}" + "".join(cells))
    lines.append(PARROT_NOTE)
    return "\n".join(lines)
