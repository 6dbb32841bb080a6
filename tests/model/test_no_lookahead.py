"""No figure may see the future: backtests, training tables and labels, with builds that overlap in time.

The other fixtures space builds far apart (each finishes long before the next
starts), where "started before" and "finished before" cannot be told apart.
Here every build runs for three build intervals, so at any moment the three
previous builds are still running, and only a pipeline that waits for
*finished* builds passes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from ci_risk_hook.cli import main as cli
from ci_risk_hook.features.extract import FEATURE_NAMES
from ci_risk_hook.model.backtest import backtest
from ci_risk_hook.model.dataset import Table, ci_table, szz_table
from ci_risk_hook.outcomes.store import open_store
from testing.modelkit import imported_history
from testing.repos import Repo, lines

warnings.filterwarnings("ignore", category=UserWarning)
COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
INTERVAL = 3600
DURATION = 3 * INTERVAL  # each build still runs while the next two start


@pytest.fixture
def overlapping(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """120 commits whose simulated CI builds overlap: three run at any time."""
    imported_history(repo, tmp_path / "history.sqlite", commits=120, seed=11, interval=INTERVAL, duration=DURATION)
    monkeypatch.setenv("CI_RISK_DB", str(tmp_path / "history.sqlite"))
    monkeypatch.chdir(repo.path)
    return repo


def overlapping_table(tmp_path: Path) -> Table:
    store = open_store(str(tmp_path / "history.sqlite"))
    try:
        return ci_table(store, store.repositories()[0][0])
    finally:
        store.close()


def test_build_history_features_come_from_builds_finished_before_the_build_started(
    overlapping: Repo, tmp_path: Path
) -> None:
    table = overlapping_table(tmp_path)
    prev = table.X[:, COL["prev_build_failed"]]
    # Builds 0..2 start while nothing has finished yet.
    assert np.isnan(prev[:3]).all(), prev[:3]
    # Build k starts when build k-3 has just finished (k-3 finished at k*INTERVAL, not strictly before), so the
    # newest finished build is k-4: its outcome, not that of k-1 (still running), is what the hook could know.
    assert np.array_equal(prev[4:], table.y[:-4]), "previous outcome is not the last build *finished* before"
    assert table.parrot[4:].tolist() == table.y[:-4].astype(float).tolist()


def test_every_retrain_of_the_backtest_learns_only_from_builds_finished_before_its_block(
    overlapping: Repo, tmp_path: Path
) -> None:
    table = overlapping_table(tmp_path)
    seen: list[tuple[Table, Table]] = []
    result = backtest(
        table, retrain_every=15, min_train=40, on_retrain=lambda history, block: seen.append((history, block))
    )
    assert result.retrains == len(seen) >= 3
    for history, block in seen:
        first_start = int(block.started.min())
        assert int(history.finished.max()) < first_start, "a retrain learnt from a build still running"
        # ...and it used everything that had finished: nothing silently dropped either.
        expected = int((table.finished < first_start).sum())
        assert len(history) == expected
        assert not set(history.commits) & set(block.commits), "a retrain learnt from the builds it predicts"


def test_the_published_baseline_is_the_previous_finished_build(overlapping: Repo, tmp_path: Path) -> None:
    """Every figure is compared with Parrot as a hook knows it; push order is reported beside it, not instead."""
    table = overlapping_table(tmp_path)
    result = backtest(table, retrain_every=15, min_train=40)
    predicted = {p.commit: p for p in result.predictions}
    index = {c: i for i, c in enumerate(table.commits)}
    for commit, p in predicted.items():
        k = index[commit]
        expected = float(table.y[k - 4]) if k >= 4 else 0.0
        assert p.baseline_score == expected, commit
    # With overlapping builds the two baselines disagree on this history, so the pin above means something.
    assert result.parrot != result.parrot_ordered


def test_szz_labels_are_known_only_once_their_fix_exists(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.commit({"src/geometry.py": "def area(w, h):\n    return w * h\n"}, "add area", at=1_600_000_000)
    buggy = repo.commit({"src/geometry.py": "def area(w, h):\n    return w + h\n"}, "refactor area", at=1_600_003_600)
    for i in range(5):
        repo.commit({f"docs/page{i}.md": lines(3)}, f"docs {i}", at=1_600_007_200 + i * 3600)
    fix = repo.commit({"src/geometry.py": "def area(w, h):\n    return w * h\n"}, "fix wrong area", at=1_600_030_000)
    monkeypatch.setenv("CI_RISK_DB", str(tmp_path / "history.sqlite"))
    monkeypatch.chdir(repo.path)
    assert cli.main(["backfill"]) == 0
    capsys.readouterr()
    store = open_store(str(tmp_path / "history.sqlite"))
    try:
        table = szz_table(store, store.repositories()[0][0])
    finally:
        store.close()
    k = table.commits.index(buggy)
    assert table.y[k] == 1, "SZZ should blame the refactor"
    assert int(table.started[k]) == 1_600_003_600
    assert int(table.finished[k]) == 1_600_030_000, "the label became known when the fix was committed"
    # A push between the bug and its fix must not learn that the bug was bad.
    between = 1_600_010_000
    assert table.finished[k] >= between
    clean = table.commits.index(fix)
    assert table.finished[clean] == table.started[clean]
