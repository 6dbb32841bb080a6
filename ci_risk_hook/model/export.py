"""Turn a fitted scikit-learn classifier into a portable ci-risk JSON artifact.

Training-side only (imports numpy/scikit-learn); the hook reads the result
with ``ci_risk_hook.scoring``, which is stdlib-only. Every export is checked
by scoring probe rows with the portable model and comparing them against the
estimator's own ``predict_proba``, so version-specific sklearn behaviour that
this module does not know about fails loudly here, not silently in the hook.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sklearn

from ci_risk_hook.atomic import write_atomic
from ci_risk_hook.model.scoring import (
    CALIBRATION_INPUTS,
    FORMAT,
    FORMAT_VERSION,
    PortableModel,
    artifact_sha256,
    canonical_json,
)

_MAX = float(np.finfo(np.float64).max)
_F32_MAX = float(np.finfo(np.float32).max)
CHECK_TOLERANCE = 1e-9

__all__ = [
    "export_model",
    "write_artifact",
    "seal_artifact",
    "platt_calibration",
    "isotonic_calibration",
    "sigmoid_calibration",
    "calibration_from_sklearn",
    "split_calibrated_classifier",
]


# -- public API ----------------------------------------------------------------


def export_model(
    estimator: Any,
    feature_names: Sequence[str],
    *,
    imputation: Mapping[str, float] | None = None,
    calibration: Mapping[str, Any] | None = None,
    thresholds: Mapping[str, float] | None = None,
    provenance: Mapping[str, Any] | None = None,
    feature_means: Mapping[str, float] | Sequence[float] | None = None,
    check_X: Any = None,
) -> dict[str, Any]:
    """Build the artifact dict for ``estimator`` (positive class 1 = "CI fails").

    ``imputation`` gives fill values for missing features of models without
    native NaN handling (absent names default to 0.0 and are listed in
    ``model.imputation_defaulted``). ``feature_means`` (logistic only) is the
    reference point of explanations. ``check_X`` adds rows to the export-time
    self-check against ``estimator.predict_proba``.
    """
    names = _check_feature_names(estimator, feature_names)
    n = len(names)
    model, fill, means, means_source = _export_estimator(estimator, n)

    if model["missing"] == "native":
        if imputation:
            raise ValueError(
                f"{model['source']['estimator']} routes missing values natively "
                "(exactly like sklearn routes NaN); do not pass imputation"
            )
        imputation_out: dict[str, float] = {}
    elif fill is not None:
        if imputation:
            raise ValueError(
                "the pipeline's SimpleImputer already defines the fill values; do not pass imputation as well"
            )
        imputation_out = dict(zip(names, fill))
    else:
        given = _name_mapping(imputation or {}, names, "imputation")
        defaulted = [name for name in names if name not in given]
        if defaulted:
            warnings.warn(
                f"no imputation value for {len(defaulted)} feature(s) "
                f"({', '.join(defaulted[:5])}{', ...' if len(defaulted) > 5 else ''}); "
                "missing values will be scored as 0.0",
                UserWarning,
                stacklevel=2,
            )
        model["imputation_defaulted"] = defaulted
        imputation_out = {name: given.get(name, 0.0) for name in names}

    if model["kind"] == "logistic":
        if feature_means is not None:
            means = _feature_vector(feature_means, names, "feature_means")
            means_source = "argument"
        if means is None:
            means, means_source = [0.0] * n, "unknown"
        model["feature_means"] = means
        model["feature_means_source"] = means_source
    elif feature_means is not None:
        raise ValueError("feature_means only applies to logistic models")

    artifact: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "feature_names": names,
        "imputation": imputation_out,
        "model": model,
        "calibration": _normalize_calibration(calibration, model["kind"]),
        "thresholds": _normalize_thresholds(thresholds),
        "provenance": _plain_json(dict(provenance or {}), "provenance"),
    }
    artifact = seal_artifact(artifact)
    _self_check(estimator, artifact, check_X)
    return artifact


def seal_artifact(artifact: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy with a fresh checksum, for deliberate edits (e.g. thresholds)."""
    sealed = {k: v for k, v in artifact.items() if k != "sha256"}
    sealed["sha256"] = artifact_sha256(sealed)
    return sealed


def write_artifact(artifact: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Atomically write ``artifact`` as canonical JSON (temp file + os.replace).

    The artifact is validated (checksum included) first so that a file the
    hook cannot load is never published; readers see the old or the new
    file, never a partial one. Edited artifacts must go through
    ``seal_artifact``.
    """
    data = dict(artifact)
    if "sha256" not in data:
        data = seal_artifact(data)
    PortableModel.from_dict(data)
    write_atomic(os.fspath(path), (canonical_json(data) + "\n").encode("ascii"))


def platt_calibration(a: float, b: float, *, input_space: str = "probability") -> dict[str, Any]:
    """Platt scaling: ``p' = 1 / (1 + exp(a * s + b))``, as sklearn's _SigmoidCalibration.

    ``s`` is the model's probability of class 1 (``input_space="probability"``)
    or its raw log-odds score, i.e. ``decision_function`` (``"log-odds"``).
    """
    return _normalize_calibration({"kind": "platt", "input": input_space, "a": a, "b": b}, None)


def isotonic_calibration(iso: Any, *, input_space: str = "probability") -> dict[str, Any]:
    """From a fitted IsotonicRegression; the artifact always clips out-of-range inputs."""
    x = np.asarray(iso.X_thresholds_, dtype=np.float64)
    y = np.asarray(iso.y_thresholds_, dtype=np.float64)
    return _normalize_calibration({"kind": "isotonic", "input": input_space, "x": x.tolist(), "y": y.tolist()}, None)


def sigmoid_calibration(cal: Any, *, input_space: str = "probability") -> dict[str, Any]:
    """From sklearn's fitted ``_SigmoidCalibration`` (attributes ``a_``, ``b_``)."""
    return platt_calibration(float(cal.a_), float(cal.b_), input_space=input_space)


def calibration_from_sklearn(calibrator: Any, *, input_space: str = "probability") -> dict[str, Any]:
    """Dispatch on a fitted IsotonicRegression or _SigmoidCalibration."""
    from sklearn.isotonic import IsotonicRegression

    if isinstance(calibrator, IsotonicRegression):
        return isotonic_calibration(calibrator, input_space=input_space)
    if hasattr(calibrator, "a_") and hasattr(calibrator, "b_"):
        return sigmoid_calibration(calibrator, input_space=input_space)
    raise ValueError(
        f"unsupported calibrator {type(calibrator).__name__}: expected a fitted "
        "IsotonicRegression or _SigmoidCalibration (temperature scaling is not supported)"
    )


def split_calibrated_classifier(ccv: Any) -> tuple[Any, dict[str, Any]]:
    """(estimator, calibration) from a fitted binary CalibratedClassifierCV.

    Only a single calibrated classifier can be represented, i.e.
    ``ensemble=False`` or a prefit/FrozenEstimator base. sklearn calibrates
    ``decision_function`` when the estimator has one, else ``predict_proba``,
    which decides the calibration input space.
    """
    fitted = getattr(ccv, "calibrated_classifiers_", None)
    if fitted is None:
        raise ValueError("expected a fitted CalibratedClassifierCV")
    if len(fitted) != 1:
        raise ValueError(
            f"CalibratedClassifierCV holds {len(fitted)} calibrated classifiers; only one "
            "can be exported (fit it with ensemble=False or a FrozenEstimator)"
        )
    inner = fitted[0]
    if len(inner.calibrators) != 1:
        raise ValueError("only binary CalibratedClassifierCV models are supported")
    estimator = inner.estimator
    while type(estimator).__name__ == "FrozenEstimator":  # sklearn >= 1.6 wrapper
        estimator = estimator.estimator
    space = "log-odds" if hasattr(inner.estimator, "decision_function") else "probability"
    return estimator, calibration_from_sklearn(inner.calibrators[0], input_space=space)


# -- estimator conversion --------------------------------------------------------


def _export_estimator(est: Any, n: int) -> tuple[dict[str, Any], list[float] | None, list[float] | None, str]:
    """Return (model dict, pipeline fill values, feature means, means source)."""
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    if isinstance(est, (RandomForestClassifier, ExtraTreesClassifier)):
        return _export_forest(est, n), None, None, ""
    if isinstance(est, GradientBoostingClassifier):
        return _export_gb(est, n), None, None, ""
    if isinstance(est, HistGradientBoostingClassifier):
        return _export_hgb(est, n), None, None, ""
    if isinstance(est, LogisticRegression):
        return _export_logistic(est, [], est, n)
    if isinstance(est, Pipeline):
        steps = [step for _, step in est.steps if step is not None and step != "passthrough"]
        if not steps or not isinstance(steps[-1], LogisticRegression):
            raise ValueError(f"unsupported Pipeline: the final step must be LogisticRegression (got {_describe(est)})")
        return _export_logistic(est, steps[:-1], steps[-1], n)
    raise ValueError(
        f"unsupported estimator {_describe(est)}: expected RandomForestClassifier, "
        "ExtraTreesClassifier, GradientBoostingClassifier, HistGradientBoostingClassifier, "
        "LogisticRegression or Pipeline([SimpleImputer], [StandardScaler], LogisticRegression)"
    )


def _describe(est: Any) -> str:
    steps = getattr(est, "steps", None)
    if steps is not None:
        return "Pipeline(" + ", ".join(type(s).__name__ for _, s in steps) + ")"
    return type(est).__name__


def _source(est: Any) -> dict[str, str]:
    return {"estimator": _describe(est), "sklearn_version": sklearn.__version__}


def _check_binary(est: Any) -> None:
    classes = getattr(est, "classes_", None)
    if classes is None:
        raise ValueError(f"{type(est).__name__} is not fitted")
    if len(classes) != 2 or not (classes[0] == 0 and classes[1] == 1):
        raise ValueError(f"expected binary labels [0, 1] (1 = CI fails), got classes_={list(classes)!r}")


def _check_feature_names(est: Any, feature_names: Sequence[str]) -> list[str]:
    if isinstance(feature_names, str):
        raise ValueError("feature_names must be a sequence of strings, not a string")
    names = list(feature_names)
    if not names or not all(isinstance(x, str) and x for x in names):
        raise ValueError("feature_names must be non-empty strings")
    dupes = sorted({x for x in names if names.count(x) > 1})
    if dupes:
        raise ValueError(f"duplicate feature names: {dupes}")
    n_in = getattr(est, "n_features_in_", None)
    if n_in is None:
        raise ValueError(f"{_describe(est)} is not fitted (no n_features_in_)")
    if len(names) != n_in:
        raise ValueError(f"got {len(names)} feature names but the estimator was fitted on {n_in} features")
    fitted_names = getattr(est, "feature_names_in_", None)
    if fitted_names is not None and list(fitted_names) != names:
        raise ValueError(
            f"feature_names differ from the column names the estimator was fitted on ({list(fitted_names)!r})"
        )
    return names


def _float32_thresholds(t: np.ndarray) -> np.ndarray:
    """Thresholds T with ``x <= T`` iff ``float32(x) <= t`` for every float64 x.

    sklearn's DecisionTree/GradientBoosting cast inputs to float32 before
    comparing, which the hook should not have to do per value. T is the
    largest double whose float32 rounding is still <= t.
    """
    t = np.asarray(t, dtype=np.float64)
    out = t.copy()
    finite = np.isfinite(t) & (np.abs(t) < _F32_MAX)
    tf = t[finite]
    with np.errstate(over="ignore"):
        c = tf.astype(np.float32)
    # c := largest float32 <= t
    too_big = c.astype(np.float64) > tf
    c[too_big] = np.nextafter(c[too_big], np.float32(-np.inf))
    up = np.nextafter(c, np.float32(np.inf))
    mid = (c.astype(np.float64) + up.astype(np.float64)) / 2.0  # exact
    with np.errstate(over="ignore"):
        rounds_down = mid.astype(np.float32) == c  # ties go to even
    result = np.where(rounds_down, mid, np.nextafter(mid, -np.inf))
    with np.errstate(over="ignore"):
        ok = (result.astype(np.float32) <= tf) & (np.nextafter(result, np.inf).astype(np.float32) > tf)
    if not np.all(ok):  # pragma: no cover - guards the float reasoning above
        raise ValueError("internal error converting float32 split thresholds")
    out[finite] = result
    return out


def _tree_dict(
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    value: Sequence[float],
    missing_left: np.ndarray | None,
) -> dict[str, Any]:
    """sklearn node arrays -> artifact tree (internal nodes and leaves split).

    Leaves need only their value, so keeping them out of the per-node arrays
    makes the JSON about a fifth smaller and ~30% faster to parse. Child
    references: c >= 0 is internal node c, c < 0 is leaf ~c (= -c - 1).
    """
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    leaf = left < 0
    internal = np.flatnonzero(~leaf)
    leaves = np.flatnonzero(leaf)
    if np.any(right[leaves] >= 0) or np.any(left[internal] <= internal) or np.any(right[internal] <= internal):
        raise ValueError("unexpected tree layout: children must follow their parent")
    if len(leaves) != len(internal) + 1:
        raise ValueError("unexpected tree layout: not a binary tree")
    ref = np.empty(len(left), dtype=np.int64)
    ref[internal] = np.arange(len(internal))
    ref[leaves] = ~np.arange(len(leaves))  # order-preserving, so children still follow parents
    values = np.asarray(value, dtype=np.float64)
    tree: dict[str, Any] = {
        "feature": np.asarray(feature, dtype=np.int64)[internal].tolist(),
        "threshold": np.clip(np.asarray(threshold, dtype=np.float64)[internal], -_MAX, _MAX).tolist(),
        "left": ref[left[internal]].tolist(),
        "right": ref[right[internal]].tolist(),
        "value": values[internal].tolist(),
        "leaf_value": values[leaves].tolist(),
    }
    if missing_left is not None:
        tree["missing_left"] = (np.asarray(missing_left)[internal] != 0).astype(int).tolist()
    return tree


def _subtree_means(left: list[int], right: list[int], value: list[float], weight: list[float]) -> list[float]:
    """Internal-node values as the weighted mean of their leaves (for Saabas).

    Boosting libraries store unshrunk or gradient-based values at internal
    nodes, which are not on the scale of the leaves.
    """
    v = list(value)
    w = list(weight)
    for i in range(len(v) - 1, -1, -1):
        lo, hi = left[i], right[i]
        if lo >= 0:
            total = w[lo] + w[hi]
            v[i] = (w[lo] * v[lo] + w[hi] * v[hi]) / total if total > 0 else (v[lo] + v[hi]) / 2
            w[i] = total
    return v


def _sk_tree_supports_nan(est: Any, n: int) -> bool:
    first = est.estimators_.flat[0] if isinstance(est.estimators_, np.ndarray) else est.estimators_[0]
    if not hasattr(first.tree_, "missing_go_to_left"):
        return False
    support = getattr(first, "_support_missing_values", None)
    return bool(support(np.zeros((1, n), dtype=np.float32))) if support else False


def _export_forest(est: Any, n: int) -> dict[str, Any]:
    _check_binary(est)
    if est.n_outputs_ != 1:
        raise ValueError("multi-output forests are not supported")
    native = _sk_tree_supports_nan(est, n)
    trees = []
    for sub in est.estimators_:
        t = sub.tree_
        counts = np.asarray(t.value[:, 0, :], dtype=np.float64)
        if counts.shape[1] != 2:
            raise ValueError("expected two classes in every tree")
        sums = counts.sum(axis=1)
        if np.all(np.abs(sums - 1.0) <= 1e-9):
            proba = counts[:, 1]  # sklearn >= 1.4 stores (and predicts) fractions
        else:  # older sklearn stores weighted counts and normalises at predict time
            sums[sums == 0.0] = 1.0
            proba = counts[:, 1] / sums
        trees.append(
            _tree_dict(
                t.children_left,
                t.children_right,
                t.feature,
                _float32_thresholds(t.threshold),
                proba.tolist(),
                t.missing_go_to_left if native else None,
            )
        )
    return {
        "kind": "forest",
        "missing": "native" if native else "impute",
        "source": _source(est),
        "trees": trees,
    }


def _export_gb(est: Any, n: int) -> dict[str, Any]:
    from sklearn.dummy import DummyClassifier

    _check_binary(est)
    if est.loss not in ("log_loss", "deviance"):
        raise ValueError(f"GradientBoostingClassifier loss={est.loss!r} is not supported (use log_loss)")
    if est.estimators_.shape[1] != 1:
        raise ValueError("expected one tree per boosting stage (binary classification)")
    init = est.init_
    if not (isinstance(init, str) and init == "zero") and not (
        isinstance(init, DummyClassifier) and init.strategy == "prior"
    ):
        raise ValueError(
            "GradientBoostingClassifier with a custom init estimator is not supported "
            "(its initial prediction is not a constant)"
        )
    base = float(est._raw_predict_init(np.zeros((1, n), dtype=np.float32))[0, 0])
    lr = float(est.learning_rate)
    trees = []
    for sub in est.estimators_[:, 0]:
        t = sub.tree_
        left = t.children_left.tolist()
        right = t.children_right.tolist()
        # sklearn adds learning_rate * leaf value; pre-multiplying is bit-identical
        leaf_values = (lr * t.value[:, 0, 0]).tolist()
        values = _subtree_means(left, right, leaf_values, t.weighted_n_node_samples.tolist())
        trees.append(
            _tree_dict(t.children_left, t.children_right, t.feature, _float32_thresholds(t.threshold), values, None)
        )
    return {"kind": "gbdt", "missing": "impute", "source": _source(est), "base": base, "trees": trees}


def _export_hgb(est: Any, n: int) -> dict[str, Any]:
    _check_binary(est)
    if est.n_trees_per_iteration_ != 1:
        raise ValueError("expected one tree per iteration (binary classification)")
    is_cat = getattr(est, "is_categorical_", None)
    if (is_cat is not None and np.any(is_cat)) or getattr(est, "_preprocessor", None) is not None:
        raise ValueError(
            "HistGradientBoostingClassifier with categorical features is not supported; "
            "encode categories as numeric features before training"
        )
    base = float(np.asarray(est._baseline_prediction).ravel()[0])
    trees = []
    for iteration in est._predictors:
        if len(iteration) != 1:
            raise ValueError("expected one tree per iteration (binary classification)")
        nodes = iteration[0].nodes
        if np.any(nodes["is_categorical"]):
            raise ValueError("categorical splits are not supported")
        leaf = nodes["is_leaf"].astype(bool)
        left = np.where(leaf, -1, nodes["left"].astype(np.int64))
        right = np.where(leaf, -1, nodes["right"].astype(np.int64))
        values = _subtree_means(
            left.tolist(), right.tolist(), nodes["value"].tolist(), nodes["count"].astype(float).tolist()
        )
        trees.append(
            _tree_dict(left, right, nodes["feature_idx"], nodes["num_threshold"], values, nodes["missing_go_to_left"])
        )
    return {"kind": "gbdt", "missing": "native", "source": _source(est), "base": base, "trees": trees}


def _export_logistic(
    est: Any, pre: list[Any], lr: Any, n: int
) -> tuple[dict[str, Any], list[float] | None, list[float] | None, str]:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    _check_binary(lr)
    imputer = scaler = None
    kinds = [type(s).__name__ for s in pre]
    if kinds not in ([], ["SimpleImputer"], ["StandardScaler"], ["SimpleImputer", "StandardScaler"]) or not all(
        isinstance(s, (SimpleImputer, StandardScaler)) for s in pre
    ):
        raise ValueError(
            "unsupported Pipeline: only [SimpleImputer] then [StandardScaler] may precede "
            f"LogisticRegression (got {kinds + ['LogisticRegression']})"
        )
    for step in pre:
        if isinstance(step, SimpleImputer):
            imputer = step
        else:
            scaler = step

    means: list[float] | None = None
    source = ""
    fill: list[float] | None = None
    if imputer is not None:
        mv = imputer.missing_values
        if not (isinstance(mv, float) and math.isnan(mv)):
            raise ValueError("SimpleImputer must use missing_values=np.nan")
        if imputer.add_indicator:
            raise ValueError("SimpleImputer(add_indicator=True) is not supported")
        if imputer.strategy not in ("mean", "median", "most_frequent", "constant"):
            raise ValueError(f"SimpleImputer strategy {imputer.strategy!r} is not supported")
        stats = np.asarray(imputer.statistics_, dtype=np.float64)
        if stats.shape != (n,) or not np.all(np.isfinite(stats)):
            raise ValueError(
                "SimpleImputer statistics must be finite for every feature "
                "(an all-missing training column was dropped?)"
            )
        fill = stats.tolist()
        if imputer.strategy == "mean":
            means, source = fill, "imputer"
    coef = np.asarray(lr.coef_, dtype=np.float64)
    if coef.shape != (1, n):
        raise ValueError(f"expected LogisticRegression coef_ of shape (1, {n}), got {coef.shape}")
    model: dict[str, Any] = {
        "kind": "logistic",
        "missing": "impute",
        "source": _source(est),
        "intercept": float(np.asarray(lr.intercept_).ravel()[0]),
        "coef": coef[0].tolist(),
        "center": None,
        "scale": None,
    }
    if scaler is not None:
        if scaler.with_mean:
            model["center"] = np.asarray(scaler.mean_, dtype=np.float64).tolist()
        if scaler.with_std:
            model["scale"] = np.asarray(scaler.scale_, dtype=np.float64).tolist()
        if getattr(scaler, "mean_", None) is not None:
            means, source = np.asarray(scaler.mean_, dtype=np.float64).tolist(), "scaler"
    return model, fill, means, source


# -- validation helpers ------------------------------------------------------------


def _finite(value: Any, where: str) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(f):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    return f


def _name_mapping(values: Mapping[str, Any], names: list[str], what: str) -> dict[str, float]:
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{what} names unknown features: {unknown}")
    return {k: _finite(v, f"{what}[{k!r}]") for k, v in values.items()}


def _feature_vector(values: Mapping[str, float] | Sequence[float], names: list[str], what: str) -> list[float]:
    if isinstance(values, Mapping):
        given = _name_mapping(values, names, what)
        missing = [name for name in names if name not in given]
        if missing:
            raise ValueError(f"{what} lacks features {missing}")
        return [given[name] for name in names]
    seq = list(np.asarray(values, dtype=np.float64).ravel())
    if len(seq) != len(names):
        raise ValueError(f"{what} has {len(seq)} values, expected {len(names)}")
    return [_finite(v, f"{what}[{i}]") for i, v in enumerate(seq)]


def _plain_json(value: Any, what: str) -> Any:
    try:
        return json.loads(canonical_json(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be plain JSON data with finite numbers: {exc}") from None


def _normalize_thresholds(thresholds: Mapping[str, float] | None) -> dict[str, float]:
    out = {}
    for key, val in (thresholds or {}).items():
        if not isinstance(key, str):
            raise ValueError(f"threshold names must be strings, got {key!r}")
        f = _finite(val, f"thresholds[{key!r}]")
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"thresholds[{key!r}] must be a probability in [0, 1], got {f}")
        out[key] = f
    return out


def _normalize_calibration(cal: Mapping[str, Any] | None, kind: str | None) -> Any:
    if cal is None:
        return None
    space = cal.get("input", "probability")
    if space not in CALIBRATION_INPUTS:
        raise ValueError(f"calibration input must be one of {CALIBRATION_INPUTS}, got {space!r}")
    if space == "log-odds" and kind == "forest":
        raise ValueError('forests output probabilities; use calibration input "probability"')
    if cal.get("kind") == "platt":
        extra = set(cal) - {"kind", "input", "a", "b"}
        out = {
            "kind": "platt",
            "input": space,
            "a": _finite(cal.get("a"), "calibration a"),
            "b": _finite(cal.get("b"), "calibration b"),
        }
    elif cal.get("kind") == "isotonic":
        extra = set(cal) - {"kind", "input", "x", "y"}
        x = [_finite(v, "calibration x") for v in cal.get("x", [])]
        y = [_finite(v, "calibration y") for v in cal.get("y", [])]
        if not x or len(x) != len(y):
            raise ValueError("isotonic calibration needs equally long, non-empty x and y")
        if any(b <= a for a, b in zip(x, x[1:])):
            raise ValueError("isotonic calibration x must be strictly increasing")
        out = {"kind": "isotonic", "input": space, "x": x, "y": y}
    else:
        raise ValueError(f'calibration kind must be "platt" or "isotonic", got {cal.get("kind")!r}')
    if extra:
        raise ValueError(f"unknown calibration fields {sorted(extra)}")
    return out


# -- export-time self check --------------------------------------------------------


def _probe_rows(model: Mapping[str, Any], n: int, with_nan: bool) -> np.ndarray:
    """Rows that sit exactly on and just beside every split boundary."""
    rs = np.random.RandomState(12345)
    n_rows = 200
    X = rs.normal(size=(n_rows, n))
    if model["kind"] == "logistic":
        center = model["center"] or [0.0] * n
        scale = model["scale"] or [1.0] * n
        X = X * np.asarray(scale) * 3 + np.asarray(center)
    else:
        per_feature: list[list[float]] = [[] for _ in range(n)]
        for tree in model["trees"]:
            for f, t in zip(tree["feature"], tree["threshold"]):
                if abs(t) < 1e30:
                    per_feature[f].append(t)
        for j, thresholds in enumerate(per_feature):
            if thresholds:
                t = np.unique(np.asarray(thresholds, dtype=np.float64))
                cand = np.concatenate([t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf)])
                X[:, j] = rs.choice(cand, size=n_rows)
    if with_nan:
        X[rs.uniform(size=X.shape) < 0.15] = np.nan
    return X


def _self_check(est: Any, artifact: Mapping[str, Any], check_X: Any) -> None:
    model = PortableModel.from_dict(artifact)
    # NaN probes only where sklearn itself accepts NaN.
    with_nan = model.missing == "native" or (
        model.kind == "logistic" and any(type(s).__name__ == "SimpleImputer" for _, s in getattr(est, "steps", []))
    )
    batches = [_probe_rows(artifact["model"], len(model.feature_names), with_nan)]
    if check_X is not None:
        batches.append(np.asarray(check_X, dtype=np.float64))
    for X in batches:
        rows = [[None if v != v else v for v in r] for r in X.tolist()]
        # The portable model scores values within its training range (a fallback range for a scaled
        # logistic model until training records the real one): compare on the rows as it sees them.
        seen = np.asarray(
            [[np.nan if v is None else v for v in model.within_training_range(r)] for r in rows], dtype=np.float64
        ).reshape(X.shape)
        expected = np.asarray(est.predict_proba(seen))[:, 1]
        got = np.asarray(model.predict_proba(rows, calibrated=False))
        diff = np.abs(got - expected)
        worst = int(np.argmax(diff))
        if not diff[worst] <= CHECK_TOLERANCE:
            raise ValueError(
                f"exported artifact does not reproduce {_describe(est)}.predict_proba "
                f"(row {worst}: portable {float(got[worst])!r} vs sklearn {float(expected[worst])!r}); "
                f"this sklearn version ({sklearn.__version__}) may behave differently"
            )
