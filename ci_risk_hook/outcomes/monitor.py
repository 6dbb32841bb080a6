"""Live accuracy: recorded predictions joined with the outcomes that arrived later for the same commits.

The backtest says whether ci-risk *would have* helped on a history; this says
whether it *is* helping: per window (the last 50 and 200 builds, the last 30
days) the failing-class precision, recall and F1 of the gate's flags, beside
the previous-build rule on the same builds, the failures the gate let pass
(deferred), calibration, and the pushes that went out against a warning or a
block. Drift flags (recall below target, calibration off) are what a
scheduled `ci-risk monitor --fail-on-drift` exits non-zero on.

Standard library only; `live_summary` returns the dictionary documented in
the README ("ci-risk monitor"), strict JSON: an undefined figure is None.
"""

from __future__ import annotations

import bisect
import time
from typing import Any, NamedTuple, Sequence

from ci_risk_hook.features.extract import BRANCH_WINDOW, store_features
from ci_risk_hook.outcomes.records import FAIL
from ci_risk_hook.outcomes.store import Build, Prediction, PriorBuild, Store

WINDOWS: tuple[tuple[str, int | None, int | None], ...] = (
    ("last 50 builds", 50, None),
    ("last 200 builds", 200, None),
    ("last 30 days", None, 30 * 86400),
)
CALIBRATION_BUCKETS = 5  # equal-width score buckets: few builds per bucket would make the observed rate noise
DEFAULT_TARGET_RECALL = 0.9
DEFAULT_DRIFT_BUILDS = 50  # recall is judged on this many latest builds
DEFAULT_CALIBRATION_MARGIN = 0.15  # mean |predicted - observed| failure rate, weighted by builds, that is drift
MIN_DRIFT_FAILURES = 5  # fewer failures than this in the drift window: recall is not judged (too noisy)
MIN_CALIBRATION_BUILDS = 30  # fewer builds than this: calibration is not judged
MIN_NEW_OUTCOMES = 20  # outcomes since the current model started predicting before a retrain can learn from them


class Joined(NamedTuple):
    """A build whose commit was predicted: the prediction, the outcome, and what the previous-build rule said."""

    build: Build
    prediction: Prediction
    failed: bool
    baseline: bool  # the previous-build rule flags it: the last build on its branch finished before it had failed

    @property
    def flagged(self) -> bool:
        return self.prediction.decision != "pass"


def joined_builds(store: Store, repo_id: int) -> tuple[list[Prediction], list[Joined], list[Build]]:
    """(predictions, the builds joined with the prediction for their commit, every build), oldest first.

    A commit predicted more than once (hook, then CI) is judged by the latest
    prediction made before its build started, else by its first one.
    """
    predictions = store.predictions(repo_id)
    by_commit: dict[str, list[Prediction]] = {}
    for p in predictions:
        by_commit.setdefault(p.commit, []).append(p)
    builds = store.builds(repo_id)
    rule = _PreviousBuildRule(builds)
    joined = []
    for b in builds:
        made = by_commit.get(b.commit)
        if not made:
            continue
        start = _started(b)
        before = [p for p in made if p.predicted_at <= start]
        prediction = before[-1] if before else made[0]
        joined.append(Joined(b, prediction, b.status == FAIL, rule.flags(b)))
    joined.sort(key=lambda j: (_finished(j.build), j.build.id))
    return predictions, joined, builds


def _started(b: Build) -> int:
    return int(b.started_at if b.started_at is not None else (b.finished_at or 0))


def _finished(b: Build) -> int:
    return int(b.finished_at if b.finished_at is not None else _started(b))


class _PreviousBuildRule:
    """The baseline of the backtest ("Parrot"), by the same definition as `model.dataset.ci_table`:
    `store_features`' prev_build_failed over the builds on the branch finished strictly before this one
    started (a build recorded without a start time started, here, when it finished)."""

    def __init__(self, builds: Sequence[Build]) -> None:
        self.by_branch: dict[str | None, list[PriorBuild]] = {}
        for b in sorted(builds, key=lambda b: (_finished(b), b.id)):
            prior = PriorBuild(b.commit, b.branch, b.status == FAIL, _started(b), _finished(b), None, frozenset())
            self.by_branch.setdefault(b.branch, []).append(prior)
        self.ends = {branch: [p.finished_at for p in prior] for branch, prior in self.by_branch.items()}

    def flags(self, b: Build) -> bool:
        on_branch = self.by_branch.get(b.branch, [])
        start = _started(b)
        k = bisect.bisect_left(self.ends.get(b.branch, []), start)  # finished before it started
        values = store_features(on_branch[max(0, k - BRANCH_WINDOW) : k], b.branch, (), None, start)
        return values["prev_build_failed"] == 1.0


def live_summary(
    store: Store,
    repo_id: int,
    *,
    now: int | None = None,
    target_recall: float = DEFAULT_TARGET_RECALL,
    drift_builds: int = DEFAULT_DRIFT_BUILDS,
    calibration_margin: float = DEFAULT_CALIBRATION_MARGIN,
) -> dict[str, Any]:
    """The live figures of one repository (the dictionary `ci-risk monitor --format json` prints)."""
    now = int(time.time()) if now is None else now
    predictions, joined, builds = joined_builds(store, repo_id)
    windows = []
    for name, count, seconds in WINDOWS:
        if count is not None:
            chosen = joined[-count:]
        else:
            chosen = [j for j in joined if _finished(j.build) >= now - (seconds or 0)]
        windows.append(window_figures(name, chosen))
    drift = drift_flags(joined, target_recall, drift_builds, calibration_margin)
    arrived = new_outcomes(predictions, builds)
    return {
        "predictions": len(predictions),
        "joined": len(joined),
        "target_recall": target_recall,
        "windows": windows,
        "drift": drift,
        "retrain_would_help": bool(drift) and arrived >= MIN_NEW_OUTCOMES,
        "new_outcomes": arrived,
        "bypass": bypass(store, repo_id, predictions, builds),
    }


def empty_summary(target_recall: float = DEFAULT_TARGET_RECALL) -> dict[str, Any]:
    """The figures of a repository without a store or predictions: every window empty, nothing flagged."""
    return {
        "predictions": 0,
        "joined": 0,
        "target_recall": target_recall,
        "windows": [window_figures(name, []) for name, _, _ in WINDOWS],
        "drift": [],
        "retrain_would_help": False,
        "new_outcomes": 0,
        "bypass": [],
    }


def classification(flags: Sequence[bool], failed: Sequence[bool]) -> dict[str, float | None]:
    """Failing-class precision, recall and F1 of `flags`; None where a figure has nothing to divide by."""
    tp = sum(1 for f, y in zip(flags, failed) if f and y)
    fp = sum(1 for f, y in zip(flags, failed) if f and not y)
    fn = sum(1 for f, y in zip(flags, failed) if not f and y)
    return {
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
    }


def window_figures(name: str, chosen: Sequence[Joined]) -> dict[str, Any]:
    failed = [j.failed for j in chosen]
    deferred = [j for j in chosen if not j.flagged]
    return {
        "name": name,
        "builds": len(chosen),
        "failures": sum(failed),
        "model": classification([j.flagged for j in chosen], failed),
        "baseline": classification([j.baseline for j in chosen], failed),
        "deferred_share": len(deferred) / len(chosen) if chosen else None,
        "deferred_failures": [
            {
                "commit": j.build.commit,
                "branch": j.build.branch,
                "score": j.prediction.score,
                "finished_at": _finished(j.build),
            }
            for j in deferred
            if j.failed
        ],
        "calibration": calibration(chosen),
        "overrides": overrides(chosen),
    }


def calibration(chosen: Sequence[Joined]) -> list[dict[str, Any]]:
    """Per non-empty score bucket: mean predicted failure probability and the observed failure rate."""
    buckets: list[list[Joined]] = [[] for _ in range(CALIBRATION_BUCKETS)]
    for j in chosen:
        buckets[min(CALIBRATION_BUCKETS - 1, max(0, int(j.prediction.score * CALIBRATION_BUCKETS)))].append(j)
    return [
        {
            "low": i / CALIBRATION_BUCKETS,
            "high": (i + 1) / CALIBRATION_BUCKETS,
            "predicted": sum(j.prediction.score for j in bucket) / len(bucket),
            "observed": sum(j.failed for j in bucket) / len(bucket),
            "builds": len(bucket),
        }
        for i, bucket in enumerate(buckets)
        if bucket
    ]


def calibration_error(chosen: Sequence[Joined]) -> float | None:
    """The builds-weighted mean gap between predicted and observed failure rate over the buckets."""
    if not chosen:
        return None
    return sum(b["builds"] * abs(b["predicted"] - b["observed"]) for b in calibration(chosen)) / len(chosen)


def overrides(chosen: Sequence[Joined]) -> dict[str, int]:
    """Builds of pushes the hook had warned about or blocked (so pushed anyway), and how many of them failed."""
    shown = [j for j in chosen if j.prediction.place == "hook" and j.prediction.mode in ("warn", "block")]
    warned = [j for j in shown if j.prediction.decision == "warn"]
    blocked = [j for j in shown if j.prediction.decision == "block"]
    return {
        "warned": len(warned),
        "warned_failed": sum(j.failed for j in warned),
        "blocked": len(blocked),
        "blocked_failed": sum(j.failed for j in blocked),
    }


def drift_flags(
    joined: Sequence[Joined], target_recall: float, drift_builds: int, calibration_margin: float
) -> list[dict[str, str]]:
    """Recall below target on the latest `drift_builds` builds; calibration off by more than the margin."""
    flags = []
    latest = joined[-drift_builds:]
    failures = [j for j in latest if j.failed]
    if len(failures) >= MIN_DRIFT_FAILURES:
        caught = sum(j.flagged for j in failures)
        recall = caught / len(failures)
        if recall < target_recall:
            flags.append(
                {
                    "kind": "recall",
                    "message": f"over the last {len(latest)} builds the gate flagged {caught} of {len(failures)} "
                    f"failures (recall {recall:.2f}, target {target_recall:.2f})",
                }
            )
    window = joined[-200:]
    error = calibration_error(window)
    if len(window) >= MIN_CALIBRATION_BUILDS and error is not None and error > calibration_margin:
        observed = sum(j.failed for j in window) / len(window)
        predicted = sum(j.prediction.score for j in window) / len(window)
        flags.append(
            {
                "kind": "calibration",
                "message": f"over the last {len(window)} builds predicted failure rates are off by {error:.2f} "
                f"on average (margin {calibration_margin:.2f}; predicted {predicted:.2f} overall, "
                f"observed {observed:.2f})",
            }
        )
    return flags


def new_outcomes(predictions: Sequence[Prediction], builds: Sequence[Build]) -> int:
    """Outcomes that finished after the current model made its first recorded prediction: what a retrain adds."""
    if not predictions:
        return 0
    current = predictions[-1].model_sha256
    since = min(p.predicted_at for p in predictions if p.model_sha256 == current)
    return sum(1 for b in builds if _finished(b) > since)


def bypass(
    store: Store, repo_id: int, predictions: Sequence[Prediction], builds: Sequence[Build]
) -> list[dict[str, Any]]:
    """Per author, CI builds since the first hook prediction and how many of their commits no hook scored.

    A commit the hook never saw was pushed without it (not installed, `--no-verify`, another clone):
    counted, not judged. Authors as the store holds them (hashed when it hashes).
    """
    hooked = [p for p in predictions if p.place == "hook"]
    if not hooked:
        return []
    since = hooked[0].predicted_at
    seen = {p.commit for p in hooked}
    authors = store.build_authors(repo_id)
    counts: dict[str, list[int]] = {}
    for b in builds:
        if _started(b) < since:
            continue
        author = authors.get(b.commit) or "unknown"
        entry = counts.setdefault(author, [0, 0])
        entry[0] += 1
        entry[1] += b.commit not in seen
    ordered = sorted(counts.items(), key=lambda item: (-item[1][1], -item[1][0], item[0]))
    return [{"author": a, "builds": n, "without_prediction": w} for a, (n, w) in ordered]
