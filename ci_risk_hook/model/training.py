"""Fit, calibrate and choose a model by chronological validation, never a random split.

The rows are in time order. Candidates are fitted on the oldest 60 %,
calibrated on the next 20 % and compared on the newest 20 %; the winner is
refitted on the oldest 80 % and calibrated on the newest 20 %, where its
thresholds are chosen for the user's goal. The baseline (the previous build's
outcome) is itself a candidate, so a repository where it predicts best gets it.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from ci_risk_hook.errors import EXIT_BLOCKED, CiRiskError
from ci_risk_hook.features.extract import FEATURE_NAMES
from ci_risk_hook.model.dataset import DEMO_FEATURES, DatasetError, Table

CANDIDATES = ("forest", "gbdt", "logistic", "parrot", "rule+gbdt", "bundled")
MIN_ROWS, MIN_FAILURES = 40, 5
RULE_FEATURE = "prev_build_failed"
# The bundled candidate's cuts come from all of this repository's finished builds once it has this many failures
# (OWN_CUTS off: the shipped cuts, as before; kept switchable for the ablation in bench/).
OWN_CUTS = True
MIN_OWN_CUT_FAILURES = 10
RECALL_WINDOW = 150  # the latest builds its recall cuts are chosen on
# A recall cut chosen on n failures aims this many binomial standard errors above its target, so that the recall
# it promises holds on the builds that follow. Chosen on 66 training projects (bench/ablation_travis.py): 0.5 kept
# the realised recall at or above 0.88 on 60 of them instead of 49, at the same mean deferrable share.
RECALL_MARGIN_Z = 0.5
MEMO_ROWS = 200_000  # rows whose bundled score is remembered (about 30 MB)


class TrainError(CiRiskError):
    """Training is impossible with this data (too few rows or failures, one class only)."""

    exit_code = EXIT_BLOCKED


class Fitted(NamedTuple):
    """A fitted, calibrated candidate with everything needed to score and to export it."""

    name: str
    estimator: Any
    columns: list[int]  # which FEATURE_NAMES columns the estimator reads
    calibration: dict[str, Any] | None
    rule_probability: float | None  # P(fail) after a failed previous build, for rule+ candidates
    ranges: tuple[np.ndarray, np.ndarray] | None = None  # per column: the values seen in training

    def raw(self, X: np.ndarray) -> np.ndarray:
        X = X[:, self.columns]
        if self.ranges is not None:
            # As scoring does (the artifact's feature_ranges): a value beyond anything seen in training, such as
            # years since the previous build, counts as the most extreme value seen, never extrapolated further.
            X = np.clip(X, *self.ranges)
        return np.asarray(self.estimator.predict_proba(X)[:, 1], dtype=float)

    def predict(self, X: np.ndarray) -> np.ndarray:
        p = _apply_calibration(self.calibration, self.raw(X))
        if self.rule_probability is not None:
            prev = X[:, FEATURE_NAMES.index(RULE_FEATURE)]
            p = np.where(prev == 1.0, self.rule_probability, p)
        return p


def _apply_calibration(calibration: dict[str, Any] | None, p: np.ndarray) -> np.ndarray:
    if calibration is None:
        return p
    if calibration["kind"] == "platt":
        return 1.0 / (1.0 + np.exp(calibration["a"] * p + calibration["b"]))
    return np.interp(p, calibration["x"], calibration["y"])


class PortableEstimator:
    """A shipped artifact (the bundled cross-project model) behind scikit-learn's predict_proba.

    As a candidate it is not refitted, only recalibrated on this repository's
    own builds: on a few hundred builds, borrowing what thousands of other
    projects' builds taught beats learning from scratch.
    """

    def __init__(self, path: str) -> None:
        from ci_risk_hook.model.export import seal_artifact
        from ci_risk_hook.model.scoring import ModelError, PortableModel, read_artifact_json

        self.path = path
        try:
            shipped = read_artifact_json(path)
        except ModelError as exc:
            raise TrainError(str(exc)) from None
        # Its own rule, if any, would bypass the recalibration: the candidate is the model alone.
        self.model = PortableModel.from_dict(seal_artifact({k: v for k, v in shipped.items() if k != "rule"}))
        self.columns = [FEATURE_NAMES.index(n) for n in self.model.feature_names if n in FEATURE_NAMES]
        if len(self.columns) != len(self.model.feature_names):
            raise TrainError(f"{path}: its features are not this ci-risk's features")
        self._memo: dict[bytes, float] = {}

    def fit(self, X: np.ndarray, y: np.ndarray) -> "PortableEstimator":
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        # Never refitted, so a row's score never changes: a backtest asks for the same rows at every retrain, and
        # scoring them tree by tree in Python is the slow part. Remember each row's score (bounded).
        keys = [row.tobytes() for row in np.ascontiguousarray(X, dtype=float)]
        known = {key: self._memo[key] for key in keys if key in self._memo}
        missing = [k for k, key in enumerate(keys) if key not in known]
        if missing:
            rows = [[None if v != v else float(v) for v in X[k].tolist()] for k in missing]
            scored = dict(zip((keys[k] for k in missing), map(float, self.model.predict_proba(rows, calibrated=False))))
            known.update(scored)
            if len(self._memo) + len(scored) > MEMO_ROWS:
                self._memo.clear()  # this call's scores are kept in `known`: emptying the memory loses none of them
            self._memo.update(scored)
        p = np.array([known[key] for key in keys], dtype=float)
        return np.column_stack([1.0 - p, p])


def _borrows(name: str) -> bool:
    """Does this candidate score with the shipped cross-project model (alone or behind this repository's rule)?"""
    return name.split("+")[-1] == "bundled"


_PORTABLE: dict[tuple[str, int, int], PortableEstimator] = {}


def _portable(path: str) -> PortableEstimator:
    """One loaded artifact per file version: a backtest refits the bundled candidate dozens of times, and reading,
    verifying and unpacking the artifact cost more than the rest of its "fit" (which changes nothing in it)."""
    stat = os.stat(path)
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _PORTABLE:
        _PORTABLE.clear()
        _PORTABLE[key] = PortableEstimator(path)
    return _PORTABLE[key]


def _bundled() -> str | None:
    from ci_risk_hook.gate.evaluate import bundled_model_path

    return bundled_model_path()


def _estimator(name: str, random_state: int) -> tuple[Any, list[int]]:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    every = list(range(len(FEATURE_NAMES)))
    base = name.split("+")[-1]
    if base == "bundled":
        path = _bundled()
        if path is None:
            raise TrainError("no bundled model in this installation")
        portable = _portable(path)
        return portable, portable.columns
    if base == "forest":
        # Bounded depth and leaves keep the artifact small: the hook loads it on every push.
        return RandomForestClassifier(
            n_estimators=80,
            max_depth=8,
            min_samples_leaf=5,
            max_features="sqrt",
            class_weight="balanced_subsample",
            random_state=random_state,
            n_jobs=1,
        ), every
    if base == "gbdt":
        return HistGradientBoostingClassifier(
            max_iter=120,
            learning_rate=0.05,
            max_leaf_nodes=15,
            min_samples_leaf=10,
            l2_regularization=1.0,
            class_weight="balanced",
            random_state=random_state,
        ), every
    if base == "logistic":
        return make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000),
        ), every
    if base == "parrot":
        return make_pipeline(
            SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True),
            LogisticRegression(C=1e6, max_iter=1000),
        ), [FEATURE_NAMES.index(RULE_FEATURE)]
    if base == "demo":
        return RandomForestClassifier(n_estimators=80, min_samples_leaf=3, random_state=random_state, n_jobs=1), []
    raise ValueError(f"unknown candidate {name!r}")


def _calibrate(p: np.ndarray, y: np.ndarray) -> dict[str, Any] | None:
    """Isotonic with enough data, Platt scaling otherwise, nothing when one class only."""
    if len(np.unique(y)) < 2:
        return None
    if len(y) >= 200 and y.sum() >= 20:
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(p, y)
        xs = [float(v) for v in iso.X_thresholds_]
        ys = [float(v) for v in iso.y_thresholds_]
        if len(xs) >= 2:
            return {"kind": "isotonic", "input": "probability", "x": xs, "y": ys}
    from sklearn.linear_model import LogisticRegression

    # Platt's own targets, (N+ + 1)/(N+ + 2) and 1/(N- + 2), as weights on both labels: a few dozen builds
    # that the scores separate perfectly would otherwise give an infinite slope (every push 0 % or 100 %).
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    target = np.where(y == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    X = np.concatenate([p, p]).reshape(-1, 1)
    labels = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(X, labels, sample_weight=np.concatenate([target, 1 - target]))
    return {"kind": "platt", "input": "probability", "a": float(-lr.coef_[0][0]), "b": float(-lr.intercept_[0])}


def fit(name: str, fit_rows: Table, cal_rows: Table, random_state: int = 0, *, demo: bool = False) -> Fitted:
    """Fit one candidate on `fit_rows` and calibrate it on the later `cal_rows`."""
    estimator, columns = _estimator(name, random_state)
    X = fit_rows.demo if demo else fit_rows.X
    Xc = cal_rows.demo if demo else cal_rows.X
    if demo:
        columns = list(range(len(DEMO_FEATURES)))
    y = fit_rows.y
    rule_p = None
    if name.startswith("rule+"):
        prev = X[:, FEATURE_NAMES.index(RULE_FEATURE)]
        after_fail = prev == 1.0
        rule_p = float((y[after_fail].sum() + 1) / (after_fail.sum() + 2))  # Laplace: never exactly 0 or 1
        keep = ~after_fail
        X, y = X[keep], y[keep]
    if len(np.unique(y)) < 2:
        raise TrainError(f"{name}: the training slice has one class only")
    # A feature never known in the training slice carries nothing, and some
    # estimators fail on an all-missing column: leave it out of the model.
    if not isinstance(estimator, PortableEstimator):
        columns = [c for c in columns if not np.isnan(X[:, c]).all()] or columns[:1]
        if rule_p is not None and FEATURE_NAMES.index(RULE_FEATURE) not in columns:
            # Its rule reads a feature the model would not carry: an artifact no hook could load.
            raise TrainError(f"{name}: the previous build's outcome is never known where the rule does not apply")
    estimator.fit(X[:, columns], y)
    ranges = None if isinstance(estimator, PortableEstimator) else training_ranges(X[:, columns])
    fitted = Fitted(name, estimator, columns, None, rule_p, ranges)
    if isinstance(estimator, PortableEstimator) and not _enough_to_recalibrate(cal_rows.y):
        # A few dozen builds would only add noise to a calibration learnt on thousands.
        return fitted._replace(calibration=estimator.model.calibration)
    calibration = _calibrate(fitted.raw(Xc), cal_rows.y)
    return fitted._replace(calibration=calibration)


def training_ranges(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's smallest and largest known value (unbounded where none is known)."""
    known = ~np.isnan(X)
    lo = np.where(known, X, np.inf).min(axis=0, initial=np.inf)
    hi = np.where(known, X, -np.inf).max(axis=0, initial=-np.inf)
    return np.where(known.any(axis=0), lo, -np.inf), np.where(known.any(axis=0), hi, np.inf)


def _enough_to_recalibrate(y: np.ndarray) -> bool:
    return len(y) >= 500 and int(y.sum()) >= 50


# -- thresholds --------------------------------------------------------------


def _margin(failures: int) -> float:
    """About two standard errors of average precision on this many failures."""
    return 1.0 / math.sqrt(max(failures, 1))


def threshold_for_recall(p: np.ndarray, y: np.ndarray, target: float) -> float:
    """The highest threshold that still flags `target` of the failures, plus a margin for how few they are.

    On 30 failures a cut that flags exactly 27 promises 0.9 and delivers less on the next builds about half the
    time; aiming `RECALL_MARGIN_Z` standard errors higher keeps the promise more often.
    """
    failures = np.sort(p[y == 1])[::-1]
    if len(failures) == 0:
        return 0.5
    aim = min(1.0, target + RECALL_MARGIN_Z * math.sqrt(target * (1.0 - target) / len(failures)))
    k = max(1, math.ceil(aim * len(failures)))
    return float(failures[k - 1])


def threshold_for_precision(p: np.ndarray, y: np.ndarray, target: float) -> float:
    """The lowest threshold whose flagged builds are at least `target` failures (1.0 if none is)."""
    for t in np.unique(p):
        flagged = p >= t
        if flagged.sum() and y[flagged].mean() >= target:
            return float(t)
    return 1.0


def threshold_for_f1(p: np.ndarray, y: np.ndarray) -> float:
    best, best_t = -1.0, 0.5
    for t in np.unique(p):
        flagged = p >= t
        tp = float((flagged & (y == 1)).sum())
        if tp == 0:
            continue
        f1 = 2 * tp / (flagged.sum() + (y == 1).sum())
        if f1 > best:
            best, best_t = f1, float(t)
    return best_t


def single_threaded(user_api: str | None = None) -> Any:
    """OpenMP and BLAS pinned to one thread while fitting.

    On a few hundred rows, HistGradientBoosting's OpenMP threads cost more than
    they save (three times the whole backtest on a loaded 2-core machine), and
    a thread count that varied would vary its floating-point sums: parallelism
    comes from fitting candidates side by side instead (OpenMP's limit is per
    thread, so each worker thread sets its own).
    """
    return threadpool_limits(limits=1, user_api=user_api)


def _validate(name: str, table: Table, a: int, b: int, random_state: int, demo: bool) -> float | str:
    """Validation average precision of one candidate, or why it was skipped (runs in a joblib worker thread)."""
    with single_threaded("openmp"):
        try:
            fitted = fit(name, table.subset(range(a)), table.subset(range(a, b)), random_state, demo=demo)
        except (TrainError, ValueError) as exc:
            return str(exc)
        val = table.subset(range(b, len(table)))
        return _score(fitted.predict(val.demo if demo else val.X), val.y)


def _score(p: np.ndarray, y: np.ndarray) -> float:
    """Average precision: how well failures are ranked first, the quantity thresholds build on."""
    from sklearn.metrics import average_precision_score

    if len(np.unique(y)) < 2:
        return float("nan")
    return float(average_precision_score(y, p))


class TrainResult(NamedTuple):
    model: Fitted
    thresholds: dict[str, float]
    validation: dict[str, float]  # candidate -> validation average precision
    rows: int
    failures: int
    seconds: float


def train(
    table: Table,
    *,
    candidates: Sequence[str] = CANDIDATES,
    target_recall: float = 0.9,
    target_precision: float = 0.8,
    random_state: int = 0,
    demo: bool = False,
    log: Callable[[str], None] | None = None,
    n_jobs: int = 1,
) -> TrainResult:
    """Choose, refit, calibrate and set thresholds, all in time order.

    The candidates are fitted in `n_jobs` threads (joblib's -1: one per
    core; scikit-learn's fits release the GIL); each fit is single-threaded
    inside, so the result is the same for any `n_jobs`.
    """
    started = time.monotonic()
    n, failures = len(table), int(table.y.sum())
    if n < MIN_ROWS or failures < MIN_FAILURES or failures == n:
        raise TrainError(
            f"too little history to train: {n} labelled builds with {failures} failures "
            f"(need at least {MIN_ROWS} builds, {MIN_FAILURES} failures and some passes)"
        )
    a, b = int(n * 0.6), int(n * 0.8)
    scores: dict[str, float] = {}
    if len(candidates) > 1:
        names = [name for name in candidates if not _borrows(name) or _bundled() is not None]
        with single_threaded():  # BLAS's limit is process-wide: set once, around the worker threads
            validated = Parallel(n_jobs=n_jobs, prefer="threads")(
                delayed(_validate)(name, table, a, b, random_state, demo) for name in names
            )
        for name, outcome in zip(names, validated):
            if isinstance(outcome, str):
                if log:
                    log(f"candidate {name} skipped: {outcome}")
                continue
            scores[name] = outcome
        val_failures = int(table.y[b:].sum())
        ranked = sorted((s, name) for name, s in scores.items() if not math.isnan(s))
        if not ranked:
            raise TrainError("no candidate could be validated: the newest 20 % of builds hold one class only")
        chosen = ranked[-1][1]
        # On a small validation slice the ranking is noisy: a model learnt from this repository alone
        # must beat the one learnt from many projects by a clear margin to replace it.
        if "bundled" in scores and not _borrows(chosen) and ranked[-1][0] - scores["bundled"] < _margin(val_failures):
            chosen = "bundled"
    else:
        chosen = candidates[0]
    with single_threaded():
        final = fit(chosen, table.subset(range(b)), table.subset(range(b, n)), random_state, demo=demo)
    tail = table.subset(range(b, n))
    p = final.predict(tail.demo if demo else tail.X)
    thresholds = {
        "warn": threshold_for_recall(p, tail.y, target_recall),
        "block": threshold_for_precision(p, tail.y, target_precision),
        "f1": threshold_for_f1(p, tail.y),
        "recall90": threshold_for_recall(p, tail.y, 0.9),  # for `--warn-at recall90`, whatever the target
    }
    borrowed = isinstance(final.estimator, PortableEstimator)
    defaults = target_recall == 0.9 and target_precision == 0.8
    shipped = final.estimator.model.thresholds if borrowed else {}
    if borrowed and OWN_CUTS and failures >= MIN_OWN_CUT_FAILURES:
        # The cross-project model never saw this repository, so every finished build here is out of sample for it:
        # its cuts are chosen on all of them, and move as outcomes arrive (the newest 20 % alone is a few failures).
        # The shipped warn stays the default when asked for: chosen for quiet on thousands of builds.
        # A recall cut follows the latest builds (failures drift; recall is what a deferral promises), the F1 and
        # block cuts use them all (chosen so on training projects: bench/ablation_travis.py, the model card).
        every = final.predict(table.X)
        recent = slice(-RECALL_WINDOW, None) if table.y[-RECALL_WINDOW:].sum() >= MIN_FAILURES else slice(None)
        thresholds = {
            "warn": threshold_for_recall(every[recent], table.y[recent], target_recall),
            "block": threshold_for_precision(every, table.y, target_precision),
            "f1": threshold_for_f1(every, table.y),
            "recall90": threshold_for_recall(every[recent], table.y[recent], 0.9),
        }
        if defaults and "warn" in shipped:
            thresholds["warn"] = shipped["warn"]
    elif borrowed and final.rule_probability is None and not _enough_to_recalibrate(tail.y):
        if defaults and {"warn", "block", "f1"} <= set(shipped):
            # Chosen on thousands of builds (the shipped warn lets most pushes pass quietly).
            thresholds = {k: shipped.get(k, thresholds[k]) for k in ("warn", "block", "f1", "recall90")}
    return TrainResult(final, thresholds, scores, n, failures, time.monotonic() - started)


def export(result: TrainResult, provenance: dict[str, Any]) -> dict[str, Any]:
    """The portable artifact of a trained result (the rule, when there is one, is part of it)."""
    from ci_risk_hook.model.export import export_model, seal_artifact

    model = result.model
    names = [FEATURE_NAMES[i] for i in model.columns]
    thresholds = {k: min(max(v, 0.0), 1.0) for k, v in result.thresholds.items()}
    if isinstance(model.estimator, PortableEstimator):
        # The shipped model with this repository's calibration and thresholds.
        from ci_risk_hook.model.scoring import read_artifact_json

        shipped = read_artifact_json(model.estimator.path)
        provenance = {
            **provenance,
            "base_model": {"path": "bundled", "sha256": shipped["sha256"], "provenance": shipped.get("provenance", {})},
        }
        shipped = {k: v for k, v in shipped.items() if k != "rule"}
        if model.rule_probability is not None:  # rule+bundled: this repository's own rule, then the shipped model
            shipped["rule"] = {"feature": RULE_FEATURE, "value": 1.0, "probability": model.rule_probability}
        return seal_artifact(
            {**shipped, "calibration": model.calibration, "thresholds": thresholds, "provenance": provenance}
        )
    artifact = export_model(
        model.estimator, names, calibration=model.calibration, thresholds=thresholds, provenance=provenance
    )
    if model.ranges is not None:
        # Added after the export's self-check, which compares against the estimator on unclipped probe rows.
        artifact = seal_artifact(
            {
                **artifact,
                "feature_ranges": {
                    name: [float(lo), float(hi)]
                    for name, lo, hi in zip(names, *model.ranges)
                    if math.isfinite(lo) and math.isfinite(hi)
                },
            }
        )
    if model.rule_probability is not None:
        artifact = seal_artifact(
            {**artifact, "rule": {"feature": RULE_FEATURE, "value": 1.0, "probability": model.rule_probability}}
        )
    return artifact


def library_versions() -> dict[str, str]:
    import platform

    import sklearn

    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__, "numpy": np.__version__}


__all__ = ["CANDIDATES", "DatasetError", "TrainError", "TrainResult", "export", "fit", "train"]
