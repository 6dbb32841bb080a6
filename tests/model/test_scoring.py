"""The portable artifact must score exactly like the scikit-learn model it came from.

Each supported estimator is fitted on a small reproducible dataset, exported,
written, loaded with the stdlib-only scorer and compared row by row with
sklearn's own predict_proba (1e-9), including missing values, split
boundaries and calibration.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from ci_risk_hook.model.export import (
    calibration_from_sklearn,
    export_model,
    platt_calibration,
    seal_artifact,
    split_calibrated_classifier,
    write_artifact,
)
from ci_risk_hook.model.scoring import Explanation, ModelError, PortableModel, load_model
from testing.repos import REPO_ROOT

TOL = 1e-9
N_FEATURES = 8
NAMES = [f"f{i}" for i in range(N_FEATURES)]
IMPUTATION = {name: 0.25 * i - 0.5 for i, name in enumerate(NAMES)}


# -- data and models ---------------------------------------------------------------


def make_data(n: int, seed: int, nan_rate: float) -> tuple[np.ndarray, np.ndarray]:
    rs = np.random.RandomState(seed)
    X = rs.normal(size=(n, N_FEATURES))
    X[:, 3] = rs.randint(0, 5, size=n)  # a discrete feature: many ties at split points
    X[:, 4] = np.round(X[:, 4], 1)
    logit = 1.5 * X[:, 0] - X[:, 1] * X[:, 2] + 0.4 * X[:, 3] - 1.0 + 0.8 * (X[:, 5] > 0.3)
    y = (logit + rs.logistic(size=n) > 0).astype(int)
    if nan_rate:
        X[rs.uniform(size=X.shape) < nan_rate] = np.nan
    return X, y


X_TRAIN, Y_TRAIN = make_data(500, seed=0, nan_rate=0.0)
X_TRAIN_NAN, _ = make_data(500, seed=0, nan_rate=0.12)
X_TEST, Y_TEST = make_data(300, seed=1, nan_rate=0.0)
X_TEST_NAN, _ = make_data(300, seed=1, nan_rate=0.15)


class Case:
    """One estimator configuration and how sklearn should see missing values."""

    def __init__(
        self,
        name: str,
        build: Callable[[], Any],
        train_nan: bool,
        native: bool,
        imputation: dict[str, float] | None = None,
    ) -> None:
        self.name = name
        self.build = build
        self.train_nan = train_nan
        self.native = native  # sklearn itself accepts NaN at predict time
        self.imputation = imputation

    def __repr__(self) -> str:
        return self.name


CASES = [
    Case(
        "random_forest_nan",
        lambda: RandomForestClassifier(n_estimators=25, max_depth=8, random_state=0),
        train_nan=True,
        native=True,
    ),
    # Trained without NaN but asked about NaN later: sklearn still routes it.
    Case(
        "random_forest_no_nan_seen",
        lambda: RandomForestClassifier(n_estimators=15, random_state=1),
        train_nan=False,
        native=True,
    ),
    Case(
        "extra_trees_nan",
        lambda: ExtraTreesClassifier(n_estimators=25, max_depth=8, random_state=0),
        train_nan=True,
        native=True,
    ),
    Case(
        "gradient_boosting",
        lambda: GradientBoostingClassifier(n_estimators=60, max_depth=3, subsample=0.8, random_state=0),
        train_nan=False,
        native=False,
        imputation=IMPUTATION,
    ),
    Case(
        "hist_gradient_boosting_nan",
        lambda: HistGradientBoostingClassifier(max_iter=60, random_state=0),
        train_nan=True,
        native=True,
    ),
    Case(
        "logistic_regression",
        lambda: LogisticRegression(C=0.5, max_iter=1000),
        train_nan=False,
        native=False,
        imputation=IMPUTATION,
    ),
    Case(
        "pipeline_median_imputer_scaler_lr",
        lambda: make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression()),
        train_nan=True,
        native=True,
    ),
    Case(
        "pipeline_mean_imputer_lr",
        lambda: make_pipeline(SimpleImputer(strategy="mean"), LogisticRegression()),
        train_nan=True,
        native=True,
    ),
    Case(
        "pipeline_scaler_lr",
        lambda: make_pipeline(StandardScaler(), LogisticRegression()),
        train_nan=False,
        native=False,
        imputation=IMPUTATION,
    ),
]

_FITTED: dict[str, Any] = {}


def fitted(case: Case) -> Any:
    if case.name not in _FITTED:
        est = case.build()
        est.fit(X_TRAIN_NAN if case.train_nan else X_TRAIN, Y_TRAIN)
        _FITTED[case.name] = est
    return _FITTED[case.name]


def export(case: Case, **kwargs: Any) -> dict[str, Any]:
    return export_model(fitted(case), NAMES, imputation=case.imputation, **kwargs)


def write_and_load(artifact: dict[str, Any], tmp_path: Path, name: str = "model.json") -> PortableModel:
    path = tmp_path / name
    write_artifact(artifact, path)
    return load_model(path)


def as_rows(X: np.ndarray) -> list[list[float | None]]:
    """NaN -> None, as the hook passes unknown features."""
    return [[None if math.isnan(v) else v for v in row] for row in X.tolist()]


def sklearn_view(case: Case, X: np.ndarray) -> np.ndarray:
    """What sklearn must be given to mean the same thing as the hook's row."""
    if case.native:
        return X
    fill = np.array([case.imputation[name] for name in NAMES])  # type: ignore[index]
    return np.where(np.isnan(X), fill, X)


def assert_close(got: list[float] | np.ndarray, expected: np.ndarray, what: str) -> None:
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"{what}: got {got.shape[0]} values, expected {expected.shape[0]}"
    diff = np.abs(got - expected)
    worst = int(np.argmax(diff))
    assert diff[worst] <= TOL, (
        f"{what}: portable model differs from sklearn by {diff[worst]:.3g} at row {worst} "
        f"(portable {got[worst]!r}, sklearn {expected[worst]!r}); {int(np.sum(diff > TOL))} rows exceed {TOL}"
    )


def boundary_rows(artifact: dict[str, Any], n: int = 300) -> np.ndarray:
    """Rows placed exactly on, and one float step either side of, split thresholds."""
    rs = np.random.RandomState(7)
    X = rs.normal(size=(n, N_FEATURES))
    for j in range(N_FEATURES):
        ts = [
            t
            for tree in artifact["model"]["trees"]
            for f, t in zip(tree["feature"], tree["threshold"])
            if f == j and abs(t) < 1e30
        ]
        if ts:
            t = np.asarray(ts)
            X[:, j] = rs.choice(
                np.concatenate(
                    [t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf), t.astype(np.float32).astype(np.float64)]
                ),
                size=n,
            )
    return X


# -- exactness against sklearn ---------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_predict_proba_matches_sklearn(case: Case, tmp_path: Path) -> None:
    est = fitted(case)
    model = write_and_load(export(case), tmp_path)
    for label, X in [
        ("training rows", X_TRAIN_NAN if case.train_nan else X_TRAIN),
        ("fresh rows", X_TEST),
        ("fresh rows with missing values", X_TEST_NAN),
    ]:
        expected = est.predict_proba(sklearn_view(case, X))[:, 1]
        assert_close(model.predict_proba(as_rows(X)), expected, f"{case.name}, {label}")


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.name.startswith(("random", "extra", "gradient", "hist"))], ids=repr
)
def test_split_boundaries_match_sklearn(case: Case) -> None:
    """sklearn trees compare float32(x) <= threshold; values at the boundary must agree."""
    artifact = export(case)
    X = boundary_rows(artifact)
    expected = fitted(case).predict_proba(X)[:, 1]
    assert_close(
        PortableModel.from_dict(artifact).predict_proba(X.tolist()), expected, f"{case.name}, rows on split boundaries"
    )


def test_infinite_values_match_hist_gradient_boosting() -> None:
    case = next(c for c in CASES if c.name == "hist_gradient_boosting_nan")
    X = X_TEST_NAN.copy()
    X[::7, 0] = np.inf
    X[3::7, 2] = -np.inf
    X[5::11, 6] = np.inf
    expected = fitted(case).predict_proba(X)[:, 1]
    assert_close(
        PortableModel.from_dict(export(case)).predict_proba(X.tolist()),
        expected,
        "HistGradientBoosting with +-inf inputs",
    )


def test_nan_and_none_mean_the_same() -> None:
    model = PortableModel.from_dict(export(CASES[0]))
    rows_none = as_rows(X_TEST_NAN)
    rows_nan = X_TEST_NAN.tolist()
    assert model.predict_proba(rows_none) == model.predict_proba(rows_nan)


def test_imputed_models_fill_missing_values_from_the_artifact() -> None:
    case = next(c for c in CASES if c.name == "logistic_regression")
    model = PortableModel.from_dict(export(case))
    assert model.imputation == IMPUTATION
    row = [None] * N_FEATURES
    filled = [IMPUTATION[name] for name in NAMES]
    assert model.predict_proba([row]) == model.predict_proba([filled])


def test_missing_imputation_defaults_to_zero_and_is_recorded() -> None:
    case = next(c for c in CASES if c.name == "gradient_boosting")
    partial = {"f1": 3.0}
    with pytest.warns(UserWarning, match="no imputation value for 7 feature"):
        artifact = export_model(fitted(case), NAMES, imputation=partial)
    assert artifact["imputation"] == {name: (3.0 if name == "f1" else 0.0) for name in NAMES}
    assert artifact["model"]["imputation_defaulted"] == [n for n in NAMES if n != "f1"]
    model = PortableModel.from_dict(artifact)
    row = [None] * N_FEATURES
    expected = fitted(case).predict_proba(np.array([[3.0 if n == "f1" else 0.0 for n in NAMES]]))[:, 1]
    assert_close(model.predict_proba([row]), expected, "defaulted imputation")


def test_native_models_reject_imputation() -> None:
    with pytest.raises(ValueError, match="natively"):
        export_model(fitted(CASES[0]), NAMES, imputation={"f0": 1.0})


# -- calibration ------------------------------------------------------------------------


def model_scores(est: Any, X: np.ndarray, space: str) -> np.ndarray:
    return est.decision_function(X) if space == "log-odds" else est.predict_proba(X)[:, 1]


CALIBRATION_CASES = [
    (case, space, method)
    for case in CASES
    if case.name
    in ("random_forest_nan", "gradient_boosting", "hist_gradient_boosting_nan", "pipeline_median_imputer_scaler_lr")
    for space in ("probability", "log-odds")
    for method in ("platt", "isotonic")
    if not (case.name.startswith("random") and space == "log-odds")
]


@pytest.mark.parametrize("case,space,method", CALIBRATION_CASES, ids=lambda v: v if isinstance(v, str) else repr(v))
def test_calibrated_probabilities_match_sklearn_calibrators(
    case: Case, space: str, method: str, tmp_path: Path
) -> None:
    est = fitted(case)
    calib_X = sklearn_view(case, X_TEST_NAN[:150])
    scores = model_scores(est, calib_X, space)
    calibrator: Any = (
        _SigmoidCalibration() if method == "platt" else IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)
    )
    calibrator.fit(scores, Y_TEST[:150])
    model = write_and_load(export(case, calibration=calibration_from_sklearn(calibrator, input_space=space)), tmp_path)
    X = np.vstack([X_TEST_NAN, X_TRAIN])  # training rows reach outside the isotonic range
    sk_X = sklearn_view(case, X)
    expected = calibrator.predict(model_scores(est, sk_X, space))
    what = f"{case.name}, {method} on {space}"
    assert_close(model.predict_proba(as_rows(X)), expected, what)
    assert_close(
        model.predict_proba(as_rows(X), calibrated=False), est.predict_proba(sk_X)[:, 1], what + " (uncalibrated)"
    )


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.name in ("random_forest_nan", "logistic_regression", "hist_gradient_boosting_nan")],
    ids=repr,
)
def test_calibrated_classifier_cv_round_trips(case: Case, method: str) -> None:
    ccv = CalibratedClassifierCV(FrozenEstimator(fitted(case)), method=method)
    ccv.fit(sklearn_view(case, X_TEST_NAN[:200]), Y_TEST[:200])
    estimator, calibration = split_calibrated_classifier(ccv)
    expected_space = "probability" if case.name.startswith("random") else "log-odds"
    assert calibration["input"] == expected_space
    model = PortableModel.from_dict(export_model(estimator, NAMES, imputation=case.imputation, calibration=calibration))
    X = np.vstack([X_TEST_NAN, X_TRAIN_NAN])
    assert_close(
        model.predict_proba(as_rows(X)),
        ccv.predict_proba(sklearn_view(case, X))[:, 1],
        f"CalibratedClassifierCV({method}) over {case.name}",
    )


def test_platt_convention_is_documented_formula() -> None:
    model = PortableModel.from_dict(export(CASES[0], calibration=platt_calibration(-4.0, 2.0)))
    explanation = model.explain(dict(zip(NAMES, X_TEST[0].tolist())))
    p = explanation.raw_probability
    assert explanation.probability == pytest.approx(1.0 / (1.0 + math.exp(-4.0 * p + 2.0)), abs=1e-15)


def test_isotonic_clips_outside_the_fitted_range() -> None:
    calibration = {"kind": "isotonic", "x": [0.2, 0.5, 0.7], "y": [0.1, 0.4, 0.9]}
    model = PortableModel.from_dict(export(CASES[0], calibration=calibration))
    finish = model._finish  # the calibration step, fed a chosen raw probability
    assert finish(0.0)[0] == 0.1
    assert finish(1.0)[0] == 0.9
    assert finish(0.5)[0] == 0.4
    assert finish(0.6)[0] == pytest.approx(0.65, abs=1e-15)


def test_log_odds_calibration_is_rejected_for_forests() -> None:
    with pytest.raises(ValueError, match="forests output probabilities"):
        export(CASES[0], calibration=platt_calibration(1.0, 0.0, input_space="log-odds"))


# -- explanations ---------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_saabas_contributions_add_up_to_the_model_output(case: Case) -> None:
    est = fitted(case)
    model = PortableModel.from_dict(export(case))
    expected_space = "probability" if model.kind == "forest" else "log-odds"
    rows = as_rows(X_TEST_NAN[:60])
    for i, row in enumerate(rows):
        e = model.explain(dict(zip(NAMES, row)))
        assert isinstance(e, Explanation)
        assert e.space == expected_space
        assert list(e.contributions) == NAMES
        total = e.base_value + sum(e.contributions.values())
        assert abs(total - e.model_output) <= TOL, (
            f"{case.name} row {i}: base_value + sum(contributions) = {total!r} "
            f"but the model output is {e.model_output!r} ({e.space})"
        )
        sk = est.predict_proba(sklearn_view(case, X_TEST_NAN[i : i + 1]))[0, 1]
        in_space = e.model_output if e.space == "probability" else 1 / (1 + math.exp(-e.model_output))
        assert abs(in_space - sk) <= TOL, f"{case.name} row {i}: explained output {in_space!r} != sklearn {sk!r}"
        assert e.raw_probability == e.probability == model.predict_proba([row])[0]


def test_forest_base_value_is_mean_root_value() -> None:
    est = fitted(CASES[0])
    model = PortableModel.from_dict(export(CASES[0]))
    roots = [t.tree_.value[0, 0, 1] for t in est.estimators_]
    assert model.explain({}).base_value == pytest.approx(float(np.mean(roots)), abs=1e-12)


@pytest.mark.parametrize(
    "build,X",
    [
        (lambda: GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0), X_TRAIN),
        (lambda: HistGradientBoostingClassifier(max_iter=40, random_state=0), X_TRAIN_NAN),
    ],
    ids=["gradient_boosting", "hist_gradient_boosting"],
)
def test_boosting_base_value_is_the_mean_training_log_odds(build: Callable[[], Any], X: np.ndarray) -> None:
    """Internal node values are leaf means, so the root is the average prediction.

    (sklearn stores unshrunk or gradient values at internal nodes; using them
    would still add up but would credit features with arbitrary amounts.)
    """
    est = build().fit(X, Y_TRAIN)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = PortableModel.from_dict(export_model(est, NAMES))
    mean_output = float(np.mean(est.decision_function(X)))
    assert model.explain({}).base_value == pytest.approx(mean_output, abs=1e-9)


def test_logistic_contributions_are_coef_times_distance_from_training_mean() -> None:
    case = next(c for c in CASES if c.name == "pipeline_median_imputer_scaler_lr")
    pipe = fitted(case)
    scaler, lr = pipe[1], pipe[2]
    model = PortableModel.from_dict(export(case))
    x = X_TEST[4]
    e = model.explain(dict(zip(NAMES, x.tolist())))
    expected = lr.coef_[0] * (x - scaler.mean_) / scaler.scale_
    assert_close(list(e.contributions.values()), expected, "logistic contributions")
    assert e.base_value == pytest.approx(float(lr.intercept_[0]), abs=1e-12)


def test_logistic_without_known_means_uses_zero_reference_or_given_means() -> None:
    case = next(c for c in CASES if c.name == "logistic_regression")
    lr = fitted(case)
    unknown = export(case)
    assert unknown["model"]["feature_means_source"] == "unknown"
    assert PortableModel.from_dict(unknown).explain({}).base_value == pytest.approx(float(lr.intercept_[0]))
    means = X_TRAIN.mean(axis=0)
    given = export(case, feature_means=dict(zip(NAMES, means.tolist())))
    x = X_TEST[0]
    e = PortableModel.from_dict(given).explain(dict(zip(NAMES, x.tolist())))
    assert_close(list(e.contributions.values()), lr.coef_[0] * (x - means), "contributions with given means")


def test_explain_treats_absent_names_as_missing_and_ignores_extra_keys() -> None:
    model = PortableModel.from_dict(export(CASES[0]))
    features = {"f0": 1.5, "f3": 2.0}
    e = model.explain({**features, "not_a_feature": 99.0})
    row = [features.get(name) for name in NAMES]
    assert e.probability == model.predict_proba([row])[0]
    assert model.explain(features) == e


# -- artifact integrity -------------------------------------------------------------------


def test_artifact_layout(tmp_path: Path) -> None:
    artifact = export(CASES[0], thresholds={"warn": 0.5, "block": 0.8}, provenance={"trained_on": "unit test"})
    assert set(artifact) == {
        "format",
        "format_version",
        "feature_names",
        "imputation",
        "model",
        "calibration",
        "thresholds",
        "provenance",
        "sha256",
    }
    assert artifact["format"] == "ci-risk-model" and artifact["format_version"] == 1
    tree = artifact["model"]["trees"][0]
    assert len(tree["leaf_value"]) == len(tree["value"]) + 1
    path = tmp_path / "model.json"
    write_artifact(artifact, path)
    text = path.read_text()
    assert json.loads(text) == artifact, "floats must round-trip exactly through the file"
    model = load_model(path)
    assert model.thresholds == {"warn": 0.5, "block": 0.8}
    assert model.provenance == {"trained_on": "unit test"}
    assert model.feature_names == tuple(NAMES)
    assert model.sha256 == artifact["sha256"]
    assert model.kind == "forest"
    assert os.listdir(tmp_path) == ["model.json"], "write_artifact left temporary files behind"


def test_pretty_printed_artifact_still_loads(tmp_path: Path) -> None:
    artifact = export(CASES[0])
    path = tmp_path / "pretty.json"
    path.write_text(json.dumps(artifact, indent=2))
    assert load_model(path).sha256 == artifact["sha256"]


def test_tampered_number_is_a_checksum_error(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    write_artifact(export(CASES[0]), path)
    text = path.read_text()
    match = re.search(r'"leaf_value":\[(0\.\d+|1\.0|0\.0)', text)
    assert match, "test setup: no leaf value found in the artifact"
    old = match.group(1)
    new = "0.5" if old != "0.5" else "0.25"
    path.write_text(text[: match.start(1)] + new + text[match.end(1) :])
    with pytest.raises(ModelError, match="checksum"):
        load_model(path)


def test_tampered_dict_is_a_checksum_error() -> None:
    artifact = export(CASES[0], thresholds={"warn": 0.5})
    artifact["thresholds"]["warn"] = 0.1
    with pytest.raises(ModelError, match="checksum"):
        PortableModel.from_dict(artifact)
    with pytest.raises(ModelError, match="checksum"):
        write_artifact(artifact, "/nonexistent-dir/never-written.json")
    assert PortableModel.from_dict(seal_artifact(artifact)).thresholds == {"warn": 0.1}


@pytest.mark.parametrize(
    "content,match",
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ('{"format": "something-else", "format_version": 1}', "not a ci-risk model"),
        ("[1, 2, 3]", "expected a JSON object"),
        ('{"format": "ci-risk-model", "format_version": 2}', "format_version"),
        ('{"format": "ci-risk-model", "format_version": 1, "sha256": NaN}', "not valid JSON"),
    ],
)
def test_unreadable_artifacts_raise_model_error(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "model.json"
    path.write_text(content)
    with pytest.raises(ModelError, match=match) as info:
        load_model(path)
    assert "\n" not in str(info.value), "ModelError messages must be one line"


def test_missing_file_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "absent.json")


def _resealed(mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    artifact = json.loads(json.dumps(export(CASES[0])))
    mutate(artifact)
    return seal_artifact(artifact)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda a: a["model"]["trees"][0]["leaf_value"].pop(), "leaf_value"),
        (lambda a: a["model"]["trees"][0]["feature"].__setitem__(0, N_FEATURES), "feature"),
        (lambda a: a["model"]["trees"][0]["left"].__setitem__(0, 10**6), "left"),
        (lambda a: a["model"]["trees"][0]["threshold"].__setitem__(0, "x"), "threshold"),
        (lambda a: a["model"]["trees"][0].pop("missing_left"), "missing_left"),
        (lambda a: a["model"].__setitem__("kind", "svm"), "kind"),
        (lambda a: a.__setitem__("feature_names", ["a", "a"]), "feature_names"),
        (lambda a: a.__setitem__("thresholds", {"warn": 2}), "thresholds"),
        (lambda a: a.__setitem__("calibration", {"kind": "isotonic", "x": [0.5, 0.2], "y": [0, 1]}), "increasing"),
    ],
)
def test_inconsistent_artifacts_raise_model_error(mutate: Callable[[dict[str, Any]], None], match: str) -> None:
    with pytest.raises(ModelError, match=match):
        PortableModel.from_dict(_resealed(mutate))


def test_cyclic_tree_is_detected_instead_of_hanging() -> None:
    def make_cycle(a: dict[str, Any]) -> None:
        tree = next(t for t in a["model"]["trees"] if len(t["feature"]) >= 2)
        tree["left"][1] = 0
        tree["right"][1] = 0
        tree["left"][0] = 1
        tree["right"][0] = 1

    model = PortableModel.from_dict(_resealed(make_cycle))
    with pytest.raises(ModelError, match="point forward"):
        model.predict_proba([[0.0] * N_FEATURES])


def test_bad_rows_raise_clear_errors() -> None:
    model = PortableModel.from_dict(export(CASES[0]))
    with pytest.raises(ValueError, match="expected 8 feature values"):
        model.predict_proba([[0.0] * 3])
    with pytest.raises(TypeError, match="wrap a single row"):
        model.predict_proba([0.0] * N_FEATURES)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="'f2'"):
        model.predict_proba([[0.0, 0.0, "1.5", 0, 0, 0, 0, 0]])  # type: ignore[list-item]


# -- export refuses what it cannot represent --------------------------------------------------


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: SVC().fit(X_TRAIN, Y_TRAIN), "unsupported estimator SVC"),
        (lambda: DecisionTreeClassifier(random_state=0).fit(X_TRAIN, Y_TRAIN), "unsupported estimator"),
        (
            lambda: make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=3)).fit(X_TRAIN, Y_TRAIN),
            "final step must be LogisticRegression",
        ),
        (
            lambda: make_pipeline(StandardScaler(), SimpleImputer(), LogisticRegression()).fit(X_TRAIN, Y_TRAIN),
            "only \\[SimpleImputer\\] then \\[StandardScaler\\]",
        ),
        (
            lambda: RandomForestClassifier(n_estimators=3, random_state=0).fit(X_TRAIN, Y_TRAIN + (X_TRAIN[:, 0] > 1)),
            "binary labels",
        ),
        (
            lambda: HistGradientBoostingClassifier(max_iter=5, categorical_features=[3]).fit(X_TRAIN, Y_TRAIN),
            "categorical",
        ),
        (
            lambda: make_pipeline(SimpleImputer(add_indicator=True), LogisticRegression()).fit(X_TRAIN_NAN, Y_TRAIN),
            "add_indicator",
        ),
    ],
)
def test_unsupported_estimators_raise_value_error(build: Callable[[], Any], match: str) -> None:
    est = build()
    with pytest.raises(ValueError, match=match):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_model(est, NAMES)


def test_feature_names_must_match_the_estimator() -> None:
    with pytest.raises(ValueError, match="got 7 feature names but the estimator was fitted on 8"):
        export_model(fitted(CASES[0]), NAMES[:7])
    with pytest.raises(ValueError, match="duplicate"):
        export_model(fitted(CASES[0]), ["f0"] * N_FEATURES)


# -- the hook's import budget ------------------------------------------------------------------


def test_scoring_never_imports_numpy_sklearn_or_pandas(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    artifact = export(CASES[0], calibration={"kind": "isotonic", "x": [0.0, 1.0], "y": [0.1, 0.9]})
    write_artifact(artifact, path)
    script = (
        "import ci_risk_hook.model.scoring as s, json, sys\n"
        f"m = s.load_model({str(path)!r})\n"
        f"p = m.predict_proba([[0.5] * {N_FEATURES}, [None] * {N_FEATURES}])\n"
        "e = m.explain({'f0': 1.0})\n"
        "heavy = sorted(k for k in sys.modules if k.split('.')[0] in ('sklearn', 'numpy', 'pandas', 'scipy'))\n"
        "print(json.dumps({'heavy': heavy, 'p': p, 'e': e.probability}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=60
    )
    assert proc.returncode == 0, f"scoring in a fresh interpreter failed:\n{proc.stderr}"
    result = json.loads(proc.stdout)
    assert result["heavy"] == [], f"importing/scoring pulled in heavy modules: {result['heavy']}"
    assert result["p"] == PortableModel.from_dict(artifact).predict_proba([[0.5] * N_FEATURES, [None] * N_FEATURES])


# -- calibration: training's numpy and the hook's standard library agree --------------------------

CALIBRATION_GRID = [i / 400 for i in range(-40, 441)] + [-5.0, -1e-9, 1e-9, 1.0 - 1e-9, 7.5]


@pytest.mark.parametrize("a, b", [(-4.2, 1.3), (-1.0, 0.0), (0.7, -2.5), (-30.0, 12.0)])
def test_platt_calibration_is_the_same_in_training_and_scoring(a: float, b: float) -> None:
    import numpy as np

    from ci_risk_hook.model import scoring
    from ci_risk_hook.model.training import _apply_calibration

    trained = _apply_calibration({"kind": "platt", "a": a, "b": b}, np.array(CALIBRATION_GRID))
    scored = [scoring.platt(a, b, s) for s in CALIBRATION_GRID]
    assert np.allclose(trained, scored, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "xs, ys",
    [
        ([0.5], [0.3]),
        ([0.0, 1.0], [0.1, 0.9]),
        ([0.05, 0.2, 0.21, 0.5, 0.8, 0.97], [0.0, 0.1, 0.1, 0.35, 0.6, 1.0]),
        ([0.1, 0.3, 0.6], [0.2, 0.2, 0.2]),
    ],
)
def test_isotonic_calibration_is_the_same_in_training_and_scoring(xs: list[float], ys: list[float]) -> None:
    import numpy as np

    from ci_risk_hook.model import scoring
    from ci_risk_hook.model.training import _apply_calibration

    trained = _apply_calibration({"kind": "isotonic", "x": xs, "y": ys}, np.array(CALIBRATION_GRID))
    scored = [scoring.isotonic(xs, ys, s) for s in CALIBRATION_GRID]
    assert np.allclose(trained, scored, rtol=1e-12, atol=1e-15)
