"""Thresholds and calibration judged on later builds the training never saw, not on the slice that chose them."""

from __future__ import annotations

import warnings

import numpy as np

from ci_risk_hook.features.extract import FEATURE_NAMES
from ci_risk_hook.model.dataset import DEMO_FEATURES, Table
from ci_risk_hook.model.training import fit, train

warnings.filterwarnings("ignore", category=UserWarning)
COL = {name: i for i, name in enumerate(FEATURE_NAMES)}


def history(n: int, seed: int, base_rate: float = 0.05) -> Table:
    """Failures follow CI-config changes and newcomers strongly, plus noise; `base_rate` sets the background."""
    rng = np.random.default_rng(seed)
    X = np.full((n, len(FEATURE_NAMES)), np.nan)
    ci = rng.random(n) < 0.25
    newcomer = rng.random(n) < 0.25
    X[:, COL["files_ci"]] = ci
    X[:, COL["author_first_commit"]] = newcomer
    X[:, COL["la"]] = rng.integers(1, 500, n)
    p = np.minimum(base_rate + 0.55 * ci + 0.3 * newcomer, 0.95)
    y = (rng.random(n) < p).astype(int)
    started = np.arange(n, dtype=np.int64) * 3600
    return Table(
        X,
        y,
        started,
        started + 600,
        np.zeros(n),
        rng.random((n, len(DEMO_FEATURES))),
        [f"{i:040x}" for i in range(n)],
        ["main"] * n,
        "ci",
    )


def test_warn_and_block_thresholds_hold_on_later_builds_they_were_not_chosen_on() -> None:
    table = history(1600, seed=5)
    past, future = table.subset(range(1000)), table.subset(range(1000, 1600))
    result = train(past, candidates=("gbdt",), target_recall=0.9, target_precision=0.6)
    p = result.model.predict(future.X)
    warn, block = result.thresholds["warn"], result.thresholds["block"]
    flagged = p >= warn
    assert flagged[future.y == 1].mean() >= 0.8, f"warn catches {flagged[future.y == 1].mean():.0%} of later failures"
    assert flagged.mean() <= 0.7, f"warn flags {flagged.mean():.0%} of all builds: a warning that always fires"
    assert block < 1.0, "a reachable precision target must give a block threshold below 1"
    blocked = p >= block
    assert blocked.any() and future.y[blocked].mean() >= 0.5, "block precision on later builds far below target"
    assert warn <= block


def test_calibration_is_learnt_on_the_later_slice_not_on_the_rows_the_model_was_fitted_on() -> None:
    # The failure rate drifts up between the fitting slice and the calibration slice: a calibration
    # learnt on the fitting rows would keep predicting the old, lower rate.
    fit_rows = history(900, seed=8, base_rate=0.02)
    cal_rows = history(600, seed=9, base_rate=0.3)
    fitted = fit("forest", fit_rows, cal_rows)
    assert fitted.calibration is not None and fitted.calibration["kind"] == "isotonic"
    # Isotonic regression reproduces the mean of the data it was fitted on.
    assert abs(fitted.predict(cal_rows.X).mean() - cal_rows.y.mean()) < 1e-6
