"""Training and backtesting on constructed histories where the right answer is known."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from ci_risk_hook.cli import main as cli
from ci_risk_hook.features.extract import FEATURE_NAMES
from ci_risk_hook.model.backtest import LeakError, assert_no_future, backtest, parrot_deferrable, training_rows
from ci_risk_hook.model.dataset import DEMO_FEATURES, Table, ci_table
from ci_risk_hook.model.scoring import PortableModel
from ci_risk_hook.model.training import CANDIDATES, TrainError, export, fit, train
from ci_risk_hook.outcomes.store import open_store
from testing.modelkit import imported_history
from testing.repos import Repo
from testing.wording import raw_metric_ids

warnings.filterwarnings("ignore", category=UserWarning)
COL = {name: i for i, name in enumerate(FEATURE_NAMES)}


def synthetic(n: int = 600, seed: int = 3) -> Table:
    """Builds whose failures follow CI-config changes, newcomers and the previous outcome, plus noise."""
    rng = np.random.default_rng(seed)
    X = np.full((n, len(FEATURE_NAMES)), np.nan)
    ci = rng.random(n) < 0.2
    newcomer = rng.random(n) < 0.25
    X[:, COL["files_ci"]] = ci
    X[:, COL["author_first_commit"]] = newcomer
    X[:, COL["la"]] = rng.integers(1, 500, n)
    y = np.zeros(n, dtype=int)
    prev = 0
    for i in range(n):
        X[i, COL["prev_build_failed"]] = prev
        p = 0.05 + 0.5 * ci[i] + 0.25 * newcomer[i] + 0.3 * prev
        y[i] = int(rng.random() < min(p, 0.95))
        prev = y[i]
    started = np.arange(n, dtype=np.int64) * 3600
    return Table(
        X,
        y,
        started,
        started + 600,
        X[:, COL["prev_build_failed"]].copy(),
        np.zeros((n, len(DEMO_FEATURES))) + rng.random((n, len(DEMO_FEATURES))),
        [f"{i:040x}" for i in range(n)],
        ["main"] * n,
        "ci",
    )


def test_thresholds_meet_their_targets_on_validation_data() -> None:
    table = synthetic()
    result = train(table, target_recall=0.9, target_precision=0.6)
    tail = table.subset(range(int(len(table) * 0.8), len(table)))
    p = result.model.predict(tail.X)
    caught = (p >= result.thresholds["warn"])[tail.y == 1].mean()
    assert caught >= 0.9, f"warn threshold catches only {caught:.0%} of validation failures"
    flagged = p >= result.thresholds["block"]
    if result.thresholds["block"] < 1.0:
        assert tail.y[flagged].mean() >= 0.6, "block threshold's precision is below its target"


def test_a_real_signal_beats_the_baseline_in_backtest() -> None:
    """Candidates learnt from this history find its signal. The bundled one is left out: on a short validation slice
    it is kept unless beaten by a clear margin, and how it ranks these made-up builds (most features unknown) says
    nothing about learning."""
    own = tuple(name for name in CANDIDATES if not name.endswith("bundled"))
    result = backtest(synthetic(400), retrain_every=80, candidates=own)
    assert "bundled" not in result.chosen
    assert result.model.roc_auc > result.parrot.roc_auc + 0.05
    assert result.predicted >= 300 and result.retrains >= 4


def test_exported_artifact_equals_the_fitted_model_including_calibration_and_rule() -> None:
    table = synthetic()
    a, b = 360, 480
    from ci_risk_hook.gate.evaluate import bundled_model_path

    # The bundled candidates score through a memo of each row's score; their artifacts must still score the same.
    borrowed = ["bundled", "rule+bundled"] if bundled_model_path() else []
    names = ["forest", "gbdt", "logistic", "parrot", "rule+forest"] + borrowed
    for name in names:
        fitted = fit(name, table.subset(range(a)), table.subset(range(a, b)))
        result = train(table, candidates=(name,))
        artifact = export(result._replace(model=fitted), {"test": True})
        portable = PortableModel.from_dict(artifact)
        rows = [[None if np.isnan(v) else float(v) for v in row] for row in table.X[b:]]
        names = list(portable.feature_names)
        picked = [[row[COL[n]] for n in names] for row in rows]
        got = np.array(portable.predict_proba(picked))
        assert np.max(np.abs(got - fitted.predict(table.X[b:]))) <= 1e-9, name


def test_the_bundled_candidate_scores_a_row_the_same_however_often_it_is_asked() -> None:
    from ci_risk_hook.gate.evaluate import bundled_model_path
    from ci_risk_hook.model.training import PortableEstimator, _portable

    path = bundled_model_path()
    if path is None:
        pytest.skip("no bundled model in this checkout")
    X = synthetic(120).X
    fresh = PortableEstimator(path).model
    rows = [[None if np.isnan(v) else float(v) for v in row] for row in X[:, _portable(path).columns]]
    expected = np.array(fresh.predict_proba(rows, calibrated=False))
    cached = _portable(path)
    assert cached is _portable(path), "the artifact is loaded once per file version"
    first = cached.predict_proba(X[:, cached.columns])[:, 1]
    again = cached.predict_proba(X[::-1][:, cached.columns])[:, 1][::-1]
    assert np.array_equal(first, expected) and np.array_equal(again, expected)


def test_the_bundled_candidates_memory_filling_up_never_loses_a_row_it_was_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past its bound the memory is emptied; rows remembered before and asked again must still be scored."""
    from ci_risk_hook.gate.evaluate import bundled_model_path
    from ci_risk_hook.model import training

    path = bundled_model_path()
    if path is None:
        pytest.skip("no bundled model in this checkout")
    monkeypatch.setattr(training, "MEMO_ROWS", 100)
    portable = training.PortableEstimator(path)
    X = synthetic(120).X[:, portable.columns]
    expected = portable.predict_proba(X[:80])[:, 1]
    # 40 remembered rows and 40 new ones: 80 + 40 > 100 empties the memory in the middle of this call.
    both = portable.predict_proba(X[40:120])[:, 1]
    assert np.array_equal(both[:40], expected[40:80])


def test_backtest_never_trains_on_a_build_that_finished_after_the_predicted_one_started() -> None:
    table = synthetic(120)
    # Plant a leak: build 10 started long ago but finished after build 100 started.
    table.finished[10] = table.started[100] + 1
    rows = training_rows(table, int(table.started[100]))
    assert 10 not in rows and 9 in rows
    with pytest.raises(LeakError, match="finished at or after"):
        assert_no_future(table, np.append(rows, 10), int(table.started[100]))


def test_parrot_deferral_is_the_expected_share_at_ninety_percent_recall() -> None:
    parrot = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    # Parrot catches 1 of 2 failures; reaching 90 % means flagging 80 % of its 8 "passes" at random.
    assert parrot_deferrable(parrot, y) == pytest.approx(8 * 0.2 / 10)


# -- through the store and the CLI -------------------------------------------


@pytest.fixture
def recorded(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """A repository with 120 commits whose simulated CI outcomes are recorded in the store."""
    imported_history(repo, tmp_path / "history.sqlite", commits=120, seed=11, interval=7200, duration=600)
    monkeypatch.setenv("CI_RISK_DB", str(tmp_path / "history.sqlite"))
    monkeypatch.chdir(repo.path)
    return repo


def test_training_features_use_only_builds_finished_before(recorded: Repo, tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "history.sqlite"))
    repo_id = store.repositories()[0][0]
    table = ci_table(store, repo_id)
    store.close()
    prev = table.X[:, COL["prev_build_failed"]]
    assert np.isnan(prev[0])  # nothing had finished before the first build
    assert np.array_equal(prev[1:], table.y[:-1])  # each build finished before the next started


def test_train_writes_a_model_the_hook_uses_and_keeps_the_previous(
    recorded: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["train"]) == 0
    out = capsys.readouterr().out
    assert "trained on 120 builds" in out and "chose " in out
    model = recorded.path / ".git" / "ci-risk" / "model.json"
    provenance = json.loads(model.read_text())["provenance"]
    assert provenance["rows"] == 120 and provenance["labels"] == "ci"
    assert cli.main(["train"]) == 0
    assert (recorded.path / ".git" / "ci-risk" / "model.prev.json").exists()
    recorded.commit({"src/core.py": "x = 1\n"}, "tweak")
    assert cli.main(["check", "--from", "HEAD~1"]) == 0
    assert "ci-risk: risk " in capsys.readouterr().out
    assert cli.main(["model", "show"]) == 0
    shown = capsys.readouterr().out
    assert "(repository)" in shown and "chosen candidate" in shown and "on 120 builds" in shown


def test_a_worse_challenger_is_not_installed(recorded: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    from ci_risk_hook.model.export import seal_artifact

    assert cli.main(["train"]) == 0
    model = recorded.path / ".git" / "ci-risk" / "model.json"
    artifact = json.loads(model.read_text())
    artifact["provenance"]["backtest"] = {"model": {"f1": 0.99}}  # a current model that backtested superbly
    model.write_text(json.dumps(seal_artifact(artifact)))
    before = model.read_bytes()
    capsys.readouterr()
    assert cli.main(["retrain", "--metric", "f1"]) == 0
    said = capsys.readouterr().out
    assert "kept the current model" in said and not raw_metric_ids(said), said  # the metric under its name
    assert model.read_bytes() == before


def test_backtest_report_and_predictions_file(
    recorded: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    predictions = tmp_path / "predictions.csv"
    assert cli.main(["backtest", "--retrain-every", "30", "--format", "json", "--predictions", str(predictions)]) == 0
    report = json.loads(capsys.readouterr().out)
    for who in ("model", "parrot", "parrot_ordered", "demo"):
        assert set(report[who]) >= {"precision", "recall", "f1", "roc_auc", "pr_auc", "brier", "deferrable_at_90"}
    lines = predictions.read_text().splitlines()
    assert lines[0] == "commit,branch,started_at,label,score,decision,baseline_score,demo_score"
    assert len(lines) == report["predicted"] + 1


def test_fitting_candidates_in_parallel_changes_nothing() -> None:
    """n_jobs only changes who fits the candidates: every score, threshold and choice is the same."""
    table = synthetic(500)
    one, two = train(table, n_jobs=1), train(table, n_jobs=2)
    assert one.model.name == two.model.name
    assert one.validation == two.validation and one.thresholds == two.thresholds
    assert np.array_equal(one.model.predict(table.X), two.model.predict(table.X))
    serial, parallel = backtest(table, retrain_every=60, n_jobs=1), backtest(table, retrain_every=60, n_jobs=2)
    same = {**serial.as_dict(), "seconds": None} == {**parallel.as_dict(), "seconds": None}  # NaN as None
    assert same, (serial.as_dict(), parallel.as_dict())
    assert serial.predictions == parallel.predictions


# -- time features beyond anything seen in training ------------------------------


def with_time(table: Table, seed: int = 5) -> Table:
    """`synthetic` plus the hours since the previous build, as a real history has them (a few hours)."""
    X = table.X.copy()
    X[:, COL["hours_since_prev_build"]] = np.random.default_rng(seed).uniform(0.5, 30.0, len(table))
    return table.with_features(X)


def test_an_extreme_time_value_weighs_no_more_than_the_most_extreme_one_seen_in_training() -> None:
    """A history dated years back (the old demo: 25,603 hours) must not swamp every other reason."""
    table = with_time(synthetic())
    artifact = export(train(table, candidates=("logistic",)), {})
    model = PortableModel.from_dict(artifact)
    lo, hi = artifact["feature_ranges"]["hours_since_prev_build"]
    assert 0.5 <= lo < hi <= 30.0
    row = {name: float(v) for name, v in zip(FEATURE_NAMES, table.X[0]) if v == v}
    at_edge = model.explain({**row, "hours_since_prev_build": hi})
    for extreme in (25_603.0, 1e12, float("inf")):
        beyond = model.explain({**row, "hours_since_prev_build": extreme})
        assert beyond.contributions["hours_since_prev_build"] == at_edge.contributions["hours_since_prev_build"]
        assert beyond.probability == at_edge.probability
    below = model.explain({**row, "hours_since_prev_build": -1e9})
    assert below.probability == model.explain({**row, "hours_since_prev_build": lo}).probability


def test_training_and_scoring_clip_the_same_way() -> None:
    """Calibration, thresholds and backtests see exactly what the hook will score."""
    table = with_time(synthetic())
    result = train(table, candidates=("logistic",))
    model = PortableModel.from_dict(export(result, {}))
    X = table.X[:50].copy()
    X[:, COL["hours_since_prev_build"]] = np.linspace(-1e6, 1e7, 50)
    X[:, COL["la"]] = 1e9
    picked = [[r[COL[n]] for n in model.feature_names] for r in X.tolist()]
    rows = [[None if v != v else float(v) for v in r] for r in picked]
    assert np.allclose(model.predict_proba(rows), result.model.predict(X), atol=1e-9)


def test_an_older_scaled_logistic_artifact_without_ranges_is_still_bounded() -> None:
    table = with_time(synthetic())
    result = train(table, candidates=("logistic",))
    artifact = {k: v for k, v in export(result, {}).items() if k != "feature_ranges"}
    from ci_risk_hook.model.export import seal_artifact

    model = PortableModel.from_dict(seal_artifact(artifact))
    row = {name: float(v) for name, v in zip(FEATURE_NAMES, table.X[0]) if v == v}
    far = model.explain({**row, "hours_since_prev_build": 1e12}).contributions["hours_since_prev_build"]
    farther = model.explain({**row, "hours_since_prev_build": 1e15}).contributions["hours_since_prev_build"]
    assert far == farther and abs(far) < 100


def test_named_recall90_cut_is_kept_whatever_the_warn_target() -> None:
    table = synthetic()
    result = train(table, target_recall=0.5)
    tail = table.subset(range(int(len(table) * 0.8), len(table)))
    p = result.model.predict(tail.X)
    assert (p >= result.thresholds["recall90"])[tail.y == 1].mean() >= 0.9
    assert result.thresholds["recall90"] <= result.thresholds["warn"]


def test_platt_calibration_of_perfectly_separated_builds_stays_short_of_certainty() -> None:
    """A short history whose calibration slice the scores separate must not score every push 0 % or 100 %."""
    from ci_risk_hook.model.training import _calibrate

    p = np.linspace(0.0, 1.0, 40)
    y = (p > 0.5).astype(int)
    cal = _calibrate(p, y)
    assert cal is not None and cal["kind"] == "platt"
    calibrated = 1.0 / (1.0 + np.exp(cal["a"] * p + cal["b"]))
    assert 0.001 < calibrated.min() < 0.2 and 0.8 < calibrated.max() < 0.999
    assert np.all(np.diff(calibrated) > 0)


def test_the_bundled_candidates_cuts_are_chosen_on_every_finished_build_of_the_repository() -> None:
    # The shipped model never saw this repository: all its builds are out of sample for it, not only the newest 20 %.
    from ci_risk_hook.gate.evaluate import bundled_model_path
    from ci_risk_hook.model.training import RECALL_WINDOW, _portable, threshold_for_f1, threshold_for_recall

    if bundled_model_path() is None:
        pytest.skip("no bundled model in this checkout")
    table = synthetic(300)
    # Facts of many values, so that the shipped model's scores take many values and the two cuts can differ.
    rng = np.random.default_rng(5)
    for name, top in (("ld", 300), ("nf", 30), ("author_exp", 500), ("days_since_file_change", 400), ("lt", 5000)):
        table.X[:, COL[name]] = rng.random(len(table)) * top
    # Early failures the shipped model scores lowest, later ones its highest: the recall cut must follow the latest
    # builds. (Later failures follow the scores closely, so recalibrating on all builds keeps the scores apart.)
    shipped = _portable(bundled_model_path() or "")
    score = shipped.predict_proba(table.X[:, shipped.columns])[:, 1]
    early, late = score[:150], score[150:]
    y = np.concatenate([early <= np.quantile(early, 0.1), late >= np.quantile(late, 0.6)]).astype(int)
    table = Table(
        table.X, y, table.started, table.finished, table.parrot, table.demo, table.commits, table.branches, "ci"
    )
    result = train(table, candidates=("bundled",))
    every = result.model.predict(table.X)
    assert result.thresholds["f1"] == threshold_for_f1(every, table.y)
    recent = slice(-RECALL_WINDOW, None)  # recall cuts follow the latest builds
    assert result.thresholds["recall90"] == threshold_for_recall(every[recent], table.y[recent], 0.9)
    assert result.thresholds["recall90"] != threshold_for_recall(every, table.y, 0.9)


def test_a_rule_candidate_whose_rule_feature_would_be_left_out_is_not_fitted() -> None:
    """Previous outcome known only as "failed": past the rule nothing knows it, and the export would be unloadable."""
    table = synthetic()
    prev = table.X[:, COL["prev_build_failed"]]
    prev[prev == 0.0] = np.nan
    with pytest.raises(TrainError, match="never known"):
        fit("rule+gbdt", table.subset(range(300)), table.subset(range(300, 400)), 0)
    result = train(table)  # the other candidates still train, and the model loads
    PortableModel.from_dict(export(result, {}))


def test_a_recall_cut_chosen_on_few_failures_keeps_its_promise_on_the_builds_that_follow() -> None:
    """A cut that flags exactly 90 % of 30 past failures catches less than 90 % of the next ones about half the time.

    The cut aims higher the fewer failures it was chosen on, so on fresh failures from the same scores it falls
    short of the 0.88 floor (bench/backtest_travis.py) clearly less often than the exact cut does.
    """
    from ci_risk_hook.model import training
    from ci_risk_hook.model.training import RECALL_MARGIN_Z, threshold_for_recall

    rng = np.random.default_rng(7)

    def short_of_floor(margin: float) -> float:
        training.RECALL_MARGIN_Z = margin
        misses = 0
        for _ in range(400):
            past, fresh = rng.beta(4, 2, 30), rng.beta(4, 2, 2000)  # failures' scores, before and after the cut
            cut = threshold_for_recall(past, np.ones(30, dtype=int), 0.9)
            misses += (fresh >= cut).mean() < 0.88
        return misses / 400

    try:
        exact, aimed = short_of_floor(0.0), short_of_floor(RECALL_MARGIN_Z)
    finally:
        training.RECALL_MARGIN_Z = RECALL_MARGIN_Z
    assert exact > 0.4 and aimed < exact - 0.1, (exact, aimed)
    # With many failures the aim is the target itself, give or take one failure: no margin where none is needed.
    many = np.linspace(0.0, 1.0, 10_000)
    assert (many >= threshold_for_recall(many, np.ones(10_000, dtype=int), 0.9)).mean() < 0.91
