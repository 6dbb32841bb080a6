"""The 90 %-recall cut that moves with the outcomes: it keeps its promise where a fixed cut drifts away, learns
only from scores given before the outcomes were known, and reaches `check --warn-at recall90` through the store."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from ci_risk_hook.model.backtest import adaptive_defer_cuts
from ci_risk_hook.model.dataset import Table
from ci_risk_hook.model.recall_cut import MIN_FAILURES, RecallCut, replay
from ci_risk_hook.outcomes.records import BuildRecord, ScoredFailure
from ci_risk_hook.outcomes.store import Prediction, open_store
from testing.repos import Repo, lines, make_repo
from testing.repos import run_cli as run

HOUR = 3600


def drifting_failures(n: int = 300, seed: int = 3, duration: int = HOUR // 2) -> list[ScoredFailure]:
    """Failures whose scores sink as the project changes under the model: 0.6 on average at first, 0.2 at the end.
    One starts every hour."""
    rng = random.Random(seed)
    return [
        ScoredFailure(min(1.0, max(0.0, rng.gauss(0.6 - 0.4 * i / n, 0.1))), i * HOUR, i * HOUR + duration)
        for i in range(n)
    ]


def realised_recall(failures: list[ScoredFailure], cuts: list[float | None]) -> float:
    met = [(f, c) for f, c in zip(failures, cuts) if c is not None]
    return sum(f.score >= c for f, c in met) / len(met)


def test_the_moving_cut_keeps_its_promise_where_a_cut_fixed_at_training_drifts_away() -> None:
    failures = drifting_failures()
    fixed = sorted(f.score for f in failures[:50])[5]  # 90 % of the first 50 failures at or above it
    state, cuts = RecallCut(0.9), []
    for f in failures:  # each failure finishes before the next one starts
        cuts.append(state.cut())
        state.finished(f.score, cuts[-1])
    assert realised_recall(failures[50:], [fixed] * 250) < 0.6
    assert realised_recall(failures, cuts) >= 0.85  # within a few points of 0.9 while the drift goes on


def test_no_cut_of_its_own_until_enough_failures_and_each_counts_only_once_it_has_finished() -> None:
    failures = [ScoredFailure(0.5, i * HOUR, i * HOUR + HOUR // 2) for i in range(MIN_FAILURES)]
    assert replay(failures[:-1], now=MIN_FAILURES * HOUR) is None
    assert replay(failures, now=MIN_FAILURES * HOUR) == 0.5
    assert replay(failures, now=(MIN_FAILURES - 1) * HOUR) is None  # the last one is still running


def test_the_backtest_moves_the_cut_as_the_gate_does() -> None:
    """`adaptive_defer_cuts` (backtest, fed in time order) and `replay` (gate, from the store) agree build by build."""
    failures = drifting_failures(120, duration=5 * HOUR // 2)  # builds overlap: two or three run at once
    n = len(failures)
    table = Table(
        np.zeros((n, 1)),
        np.ones(n, dtype=int),
        np.array([f.started_at for f in failures]),
        np.array([f.finished_at for f in failures]),
        np.zeros(n),
        np.zeros((n, 3)),
        [f"{i:040x}" for i in range(n)],
        ["main"] * n,
        "ci",
    )
    scores = np.array([f.score for f in failures])
    cuts = adaptive_defer_cuts(table, scores, np.full(n, -1.0), 0.9)
    moved = 0
    for k in range(n):  # the gate at build k's start: the failures started before it, those finished counted
        expected = replay(failures[:k], now=failures[k].started_at - 1)
        assert cuts[k] == (-1.0 if expected is None else expected), k
        moved += expected is not None
    assert moved > n // 2


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    repo = make_repo(tmp_path / "project")
    for i in range(30):
        repo.commit({"src/app.py": lines(10 + i)}, f"change {i}")
    monkeypatch.chdir(repo.path)
    return repo


def plant_failures(url: str, project: Repo, score: float, scored_after_start: bool) -> None:
    """Every commit but the tip built and failed, its commit scored `score` before (or after) the build started."""
    commits = project.git("rev-list", "--reverse", "HEAD").split()[:-1]
    store = open_store(url)
    try:
        repo_id = store.repository_id(commits[0])
        start = 1_700_000_000
        store.add_builds(
            repo_id,
            [
                BuildRecord(
                    commit=c,
                    status="fail",
                    source="record",
                    branch="main",
                    started_at=start + i * HOUR,
                    finished_at=start + i * HOUR + 600,
                    job_id=f"job-{i}",
                )
                for i, c in enumerate(commits)
            ],
        )
        delay = 60 if scored_after_start else -60
        store.add_predictions(
            repo_id,
            [
                Prediction(
                    c, None, "main", score, "warn", "warn", "sha", 0.1, 0.9, "hook", "", None, start + i * HOUR + delay
                )
                for i, c in enumerate(commits)
            ],
        )
    finally:
        store.close()


def check_json(capsys: pytest.CaptureFixture[str]) -> dict:
    code, out, _ = run(["check", "--from", "HEAD~1", "--warn-at", "recall90", "--format", "json"], capsys)
    assert code == 0, out
    return json.loads(out)


def test_check_warns_from_the_cut_the_scored_failures_moved(
    store_url: str, project: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    bundled = check_json(capsys)["warn_at"]  # no outcomes yet: the model's own 90 %-recall cut
    plant_failures(store_url, project, 0.6, scored_after_start=False)
    report = check_json(capsys)
    assert report["warn_at"] == pytest.approx(0.6) != pytest.approx(bundled)
    assert any("90 %-recall cut" in note for note in report["notes"]), report["notes"]


def test_scores_given_after_a_build_started_never_move_the_cut(
    store_url: str, project: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    bundled = check_json(capsys)["warn_at"]
    plant_failures(store_url, project, 0.6, scored_after_start=True)  # said once the outcome may have been known
    assert check_json(capsys)["warn_at"] == pytest.approx(bundled)


@pytest.fixture
def hand_edited(project: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[sqlite3.Connection]:
    """An SQLite store of scored failures, open to edit by hand: SQLite keeps text where numbers belong
    (PostgreSQL would refuse it)."""
    url = str(tmp_path / "store" / "history.sqlite")
    monkeypatch.setenv("CI_RISK_DB", url)
    plant_failures(url, project, 0.6, scored_after_start=False)
    conn = sqlite3.connect(url, isolation_level=None)
    yield conn
    conn.close()


def test_a_hand_edited_score_is_left_out_and_the_others_still_move_the_cut(
    hand_edited: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    hand_edited.execute("UPDATE predictions SET score = 'high' WHERE id = (SELECT MIN(id) FROM predictions)")
    assert check_json(capsys)["warn_at"] == pytest.approx(0.6)


def test_a_build_row_with_text_for_a_time_is_one_note_and_the_push_is_still_scored(
    hand_edited: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    hand_edited.execute("UPDATE builds SET started_at = 'soon' WHERE id = (SELECT MAX(id) FROM builds)")
    report = check_json(capsys)
    assert report["decision"] != "error", report
    assert report["ranges"][0]["probability"] is not None
    notes = report["notes"] + report["ranges"][0].get("notes", [])
    assert any("build history unavailable" in note and "what no ci-risk writes" in note for note in notes), report
