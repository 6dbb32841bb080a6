"""The backtest metrics table: which metrics, their names for people, their order, and the columns compared.

One table for every view of a backtest: `ci-risk backtest` and `model show`,
the HTML report, the dashboard, `retrain --metric` and the benchmarks. The
keys are what JSON output and model provenance carry; everything a person
reads goes through `label` (and `answer` for the one-sentence verdict).
Standard library only: the CLI reads it when it builds its options.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple


class Metric(NamedTuple):
    key: str  # as in BacktestResult.as_dict()
    label: str


# Every metric of the failing class, in the order they are shown.
METRICS = (
    Metric("precision", "precision (flagged builds that failed)"),
    Metric("recall", "recall (failures caught)"),
    Metric("f1", "F1 (precision and recall together)"),
    Metric("roc_auc", "ROC-AUC (ranking quality)"),
    Metric("pr_auc", "PR-AUC (ranking of failures)"),
    Metric("brier", "Brier score (probability error, lower is better)"),
    Metric("deferrable_at_90", "builds deferrable at 90 % recall"),
)
# The recall the deferrable share was reached at: shown right under it in text tables.
RECALL_REACHED = Metric("recall_at_defer_threshold", "failures caught when deferring")
# Figures other views carry under their own keys: the bundled model's evaluation, the live monitor.
OTHER = (
    Metric("quiet_at_warn", "builds below the warn threshold"),
    Metric("recall_at_warn", "failures caught at the warn threshold"),
    Metric("deferred_share", "builds deferred (below the warn threshold)"),
)
# The model's thresholds, as `model show` and the report name them.
THRESHOLDS = (
    Metric("warn", "warn at"),
    Metric("block", "block at"),
    Metric("f1", "best-F1 cut"),
    Metric("recall90", "90 % recall cut"),
)
KEYS = tuple(m.key for m in METRICS)
_LABELS = {m.key: m.label for m in (*METRICS, RECALL_REACHED, *OTHER)}
_THRESHOLD_LABELS = {m.key: m.label for m in THRESHOLDS}

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

# Below this many failures among the predicted builds, the answer says its figures rest on too little history.
MIN_FAILURES = 20


def label(key: str) -> str:
    """A metric's name for people; an unknown key (a newer producer's) is shown as it is."""
    return _LABELS.get(key, key)


def threshold_label(key: str) -> str:
    return _THRESHOLD_LABELS.get(key, key)


def _pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def _figure(report: Mapping[str, Any], column: str, key: str) -> float | None:
    """One figure of a stored report; anything but a finite number (a hand-edited model file) is unknown."""
    values = report.get(column)
    value = values.get(key) if isinstance(values, Mapping) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def answer(report: Mapping[str, Any], failures: int | None = None) -> str:
    """The backtest's verdict in one sentence: deferred share and failures caught, beside the previous-build rule.

    `report` is `BacktestResult.as_dict()` (or a model's stored backtest);
    `failures`, the failed builds among those predicted, when known.
    The previous-build rule's share is taken at the recall ci-risk reached,
    so the two shares compare like with like.
    """
    share, caught = _figure(report, "model", "deferrable_at_90"), _figure(report, "model", "recall_at_defer_threshold")
    baseline = _figure(report, "parrot", "deferrable_at_90")
    predicted = report.get("predicted")
    if share is None or caught is None:
        return "On this history, the backtest did not measure how many builds ci-risk would have let you defer."
    sentence = (
        f"On this history, ci-risk would have let you defer {_pct(share)} of builds "
        f"while catching {_pct(caught)} of failures; repeating the previous build's outcome: "
        + ("not measurable" if baseline is None else f"{_pct(baseline)} of builds at the same share of failures caught")
        + "."
    )
    if failures is not None and failures < MIN_FAILURES:
        sentence += (
            f" The history is too short to trust these figures: only {failures} failures among the "
            f"{predicted} builds predicted (at least {MIN_FAILURES} make them meaningful)."
        )
    return sentence


def text_table(report: Mapping[str, Any]) -> str:
    """A backtest report as the fixed-width table `ci-risk backtest` and `model show` print."""
    rows = (*METRICS, RECALL_REACHED)
    width = max(len(m.label) for m in rows) + 2
    lines = [f"{'':<{width}}" + "".join(f"{title:>12}" for _, title in COLUMNS)]
    for key, title in rows:
        cells = []
        for column, _ in COLUMNS:
            value = report.get(column, {}).get(key)
            cells.append(f"{'-' if value is None else format(value, '.3f'):>12}")
        lines.append(f"{title:<{width}}" + "".join(cells))
    lines.append(PARROT_NOTE)
    return "\n".join(lines)
