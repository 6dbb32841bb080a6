"""Rolling-origin backtest: would ci-risk have helped on this repository's own history?

Builds are predicted in time order, a block of `retrain_every` at a time, by
a model trained only on builds that had finished before the block's first
build started; the same builds are scored by the baseline (Parrot: "same
outcome as the previous build on this branch") and by a RandomForest on the
original demo's features (author, file extension, change count).
"""

from __future__ import annotations

import csv
import time
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from ci_risk_hook.errors import EXIT_INTERNAL, CiRiskError
from ci_risk_hook.model.dataset import Table
from ci_risk_hook.model.recall_cut import cuts_met
from ci_risk_hook.model.training import CANDIDATES, TrainError, TrainResult, train
from ci_risk_hook.safetext import csv_cell


class LeakError(CiRiskError):
    """A training row finished after the build it would help predict: the backtest would see the future."""

    exit_code = EXIT_INTERNAL


def training_rows(table: Table, cutoff: int) -> np.ndarray:
    """Indices of the rows that finished strictly before `cutoff` (the predicted build's start)."""
    return np.flatnonzero(table.finished < cutoff)


def assert_no_future(table: Table, rows: np.ndarray, cutoff: int) -> None:
    late = rows[table.finished[rows] >= cutoff]
    if len(late):
        raise LeakError(
            f"{len(late)} training builds finished at or after the predicted build started "
            f"(first: {table.commits[int(late[0])][:10]})"
        )


def deferrable(p: np.ndarray, y: np.ndarray, threshold: float | np.ndarray) -> tuple[float, float]:
    """(share of builds below the threshold, recall of failures at it)."""
    flagged = p >= threshold
    failures = y.sum()
    recall = float((flagged & (y == 1)).sum() / failures) if failures else float("nan")
    return float(1.0 - flagged.mean()), recall


def parrot_deferrable(parrot: np.ndarray, y: np.ndarray, target: float = 0.9) -> float:
    """Expected share Parrot can defer at `target` recall, flagging random extra builds after passes.

    A yes/no rule reaches 90 % recall only by also flagging some builds it
    predicts to pass; chosen at random, they cost this share on average.
    """
    failures = y.sum()
    if failures == 0:
        return float("nan")
    flagged_fail = float(((parrot == 1) & (y == 1)).sum())
    needed = target * failures - flagged_fail
    rest = parrot == 0
    if needed <= 0:
        return float((parrot == 0).mean())
    rest_failures = float((rest & (y == 1)).sum())
    share_of_rest = min(1.0, needed / rest_failures) if rest_failures else 1.0
    return float(rest.sum() * (1.0 - share_of_rest) / len(y))


class Metrics(NamedTuple):
    precision: float
    recall: float
    f1: float
    roc_auc: float
    pr_auc: float
    brier: float
    deferrable_at_90: float
    recall_at_defer_threshold: float

    def as_dict(self) -> dict[str, float]:
        return {
            k: (None if isinstance(v, float) and np.isnan(v) else round(float(v), 4))  # type: ignore[misc]
            for k, v in self._asdict().items()
        }


def metrics(
    p: np.ndarray,
    y: np.ndarray,
    decision_threshold: float | np.ndarray,
    defer_threshold: float | np.ndarray | None,
    parrot: np.ndarray | None = None,
    parrot_recall: float = 0.9,
) -> Metrics:
    """Thresholds may be one number or one per build; without a defer threshold, only Parrot's share is known.

    Parrot's deferrable share is taken at `parrot_recall`: pass the recall the
    model really reached, so the two shares are compared at the same recall.
    """
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    flagged = p >= decision_threshold
    tp = float((flagged & (y == 1)).sum())
    precision = tp / flagged.sum() if flagged.sum() else 0.0
    recall = tp / y.sum() if y.sum() else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    both = len(np.unique(y)) == 2
    roc = float(roc_auc_score(y, p)) if both else float("nan")
    pr = float(average_precision_score(y, p)) if both else float("nan")
    brier = float(brier_score_loss(y, np.clip(p, 0, 1)))
    if defer_threshold is None and parrot is not None:
        share, reached = parrot_deferrable(parrot, y, parrot_recall), parrot_recall
    elif defer_threshold is None:
        share, reached = float("nan"), float("nan")
    else:
        share, reached = deferrable(p, y, defer_threshold)
    return Metrics(precision, recall, f1, roc, pr, brier, share, reached)


class Prediction(NamedTuple):
    commit: str
    branch: str | None
    started_at: int
    label: int
    score: float
    decision: int
    baseline_score: float
    demo_score: float


class BacktestResult(NamedTuple):
    model: Metrics
    parrot: Metrics  # the previous outcome known when the build started (the last *finished* build)
    parrot_ordered: Metrics  # the previous build's outcome in push order, finished or not: optimistic
    demo: Metrics
    predictions: list[Prediction]
    builds: int
    predicted: int
    retrains: int
    chosen: dict[str, int]  # candidate -> how many retrains chose it
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "builds": self.builds,
            "predicted": self.predicted,
            "retrains": self.retrains,
            "chosen": self.chosen,
            "seconds": round(self.seconds, 2),
            "model": self.model.as_dict(),
            "parrot": self.parrot.as_dict(),
            "parrot_ordered": self.parrot_ordered.as_dict(),
            "demo": self.demo.as_dict(),
        }


def backtest(
    table: Table,
    *,
    retrain_every: int = 25,
    min_train: int = 50,
    candidates: Sequence[str] = CANDIDATES,
    target_recall: float = 0.9,
    select_every: int = 4,
    progress: Callable[[int, int], None] | None = None,
    on_retrain: Callable[[Table, Table], None] | None = None,
    n_jobs: int = 1,
) -> BacktestResult:
    """Rolling origin; the candidate is re-chosen every `select_every` retrains (choosing is the costly part), less
    often while the same candidate keeps winning.

    `on_retrain(history, block)` sees exactly what each retrain learns from and
    what it then predicts, so a test can prove no row came from the future.
    `n_jobs` fits the candidates side by side (threads); the result is the same for any value.
    """
    started = time.monotonic()
    n = len(table)
    scores = np.full(n, np.nan)
    decisions = np.zeros(n, dtype=int)
    demo_scores = np.full(n, np.nan)
    defer_cut = np.full(n, np.nan)
    f1_cut = np.full(n, np.nan)
    demo_cut = np.full(n, np.nan)
    chosen: dict[str, int] = {}
    retrains = 0
    current: str | None = None
    demo: TrainResult | None = None
    interval, since_choice = select_every, 0
    i = 0
    while i < n:
        block = np.arange(i, min(i + retrain_every, n))
        cutoff = int(table.started[i])
        rows = training_rows(table, cutoff)
        assert_no_future(table, rows, cutoff)
        history = table.subset(rows)
        if len(rows) < min_train or history.y.sum() < 5 or history.y.sum() == len(rows):
            i += retrain_every
            continue
        try:
            choosing = current is None or since_choice >= interval
            pick = candidates if current is None or choosing else (current,)
            result = train(history, candidates=pick, target_recall=target_recall, n_jobs=n_jobs)
            if choosing:
                # A choice that keeps the same candidate doubles the wait before the next one (up to four times
                # `select_every`); a change goes back to `select_every`. Fewer refits of candidates that keep losing.
                same = result.model.name == current
                interval = min(interval * 2, 4 * select_every) if same else select_every
                since_choice = 0
            since_choice += 1
            current = result.model.name
            if choosing or demo is None:
                # The comparison model is refitted when the candidate is re-chosen: it is a reference figure, and
                # its 80-tree forest every block cost a third of the backtest. Still from the past only.
                demo = train(history, candidates=("demo",), target_recall=target_recall, demo=True)
        except TrainError:
            i += retrain_every
            continue
        retrains += 1
        chosen[result.model.name] = chosen.get(result.model.name, 0) + 1
        part = table.subset(block)
        if on_retrain is not None:
            on_retrain(history, part)
        scores[block] = result.model.predict(part.X)
        f1_cut[block] = result.thresholds["f1"]
        # The cut for the recall target: a shipped model's "warn" is chosen for quiet, its "recall90" for recall.
        defer_cut[block] = result.thresholds["recall90" if target_recall == 0.9 else "warn"]
        demo_scores[block] = demo.model.predict(part.demo)
        demo_cut[block] = demo.thresholds["f1"]
        decisions[block] = (scores[block] >= f1_cut[block]).astype(int)
        if progress is not None:
            progress(int(block[-1]) + 1, n)
        i += retrain_every
    defer_cut = adaptive_defer_cuts(table, scores, defer_cut, target_recall)
    done = ~np.isnan(scores)
    if done.sum() == 0 or len(np.unique(table.y[done])) < 2:
        raise TrainError(
            f"nothing to backtest: {n} builds, {int(table.y.sum())} failures; "
            f"need {min_train} finished builds with 5 failures before the first prediction"
        )
    y = table.y[done]
    p, parrot, demo_p = scores[done], table.parrot[done], demo_scores[done]
    # Thresholds vary by retrain: each build is judged against its own model's (numpy compares elementwise).
    model_m = metrics(p, y, f1_cut[done], defer_cut[done])
    demo_m = metrics(demo_p, y, demo_cut[done], None)
    # Baselines defer at the recall the model actually reached, not at an ideal 90 %: like with like.
    reached = model_m.recall_at_defer_threshold if not np.isnan(model_m.recall_at_defer_threshold) else target_recall
    parrot_m = metrics(parrot, y, 0.5, None, parrot, parrot_recall=reached)
    ordered = _ordered_parrot(table)[done]
    ordered_m = metrics(ordered, y, 0.5, None, ordered, parrot_recall=reached)
    predictions = [
        Prediction(
            table.commits[k],
            table.branches[k],
            int(table.started[k]),
            int(table.y[k]),
            float(scores[k]),
            int(decisions[k]),
            float(table.parrot[k]),
            float(demo_scores[k]),
        )
        for k in np.flatnonzero(done)
    ]
    return BacktestResult(
        model_m,
        parrot_m,
        ordered_m,
        demo_m,
        predictions,
        n,
        int(done.sum()),
        retrains,
        chosen,
        time.monotonic() - started,
    )


def adaptive_defer_cuts(table: Table, scores: np.ndarray, at_retrain: np.ndarray, target_recall: float) -> np.ndarray:
    """Each predicted build's deferral cut as the gate sets it (`recall_cut`): moved by the failures finished before
    it started, with the scores they had before their outcomes; the retrain's cut until enough failures are in."""
    cuts = at_retrain.copy()
    predicted = np.flatnonzero(~np.isnan(scores))
    met = cuts_met(
        [
            (int(table.started[k]), int(table.finished[k]), float(scores[k]) if table.y[k] == 1 else None)
            for k in predicted
        ],
        target_recall,
    )
    for k, cut in zip(predicted, met):
        if cut is not None:
            cuts[k] = cut
    return cuts


def _ordered_parrot(table: Table) -> np.ndarray:
    """Parrot as usually published: the previous build on the branch in start order, finished or not."""
    last: dict[str | None, int] = {}
    out = np.zeros(len(table))
    for k in np.argsort(table.started, kind="stable"):
        branch = table.branches[k]
        if branch in last:
            out[k] = float(table.y[last[branch]])
        last[branch] = int(k)
    return out


def write_predictions(result: BacktestResult, path: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["commit", "branch", "started_at", "label", "score", "decision", "baseline_score", "demo_score"]
        )
        for pr in result.predictions:
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(pr.started_at))
            writer.writerow(
                [
                    csv_cell(pr.commit),
                    csv_cell(pr.branch or ""),
                    started,
                    pr.label,
                    f"{pr.score:.6f}",
                    pr.decision,
                    f"{pr.baseline_score:.0f}",
                    f"{pr.demo_score:.6f}",
                ]
            )
