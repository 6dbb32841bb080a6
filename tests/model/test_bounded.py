"""The bounded reader of `retrain --all-repos` gives the in-memory path's training rows, and samples fairly."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from ci_risk_hook.cli import main as cli
from ci_risk_hook.model.bounded import sampled_ci_table, shares
from ci_risk_hook.model.dataset import Table, ci_table, concat
from ci_risk_hook.outcomes.store import open_store
from testing.modelkit import grow_history
from testing.postgres import fresh_schema
from testing.repos import Repo, make_repo

warnings.filterwarnings("ignore", category=UserWarning)


def record_history(repo: Repo, csv: Path, commits: int, seed: int, start: int, duration: int) -> None:
    """Simulated CI outcomes of a real history, imported by the real command (features computed by ci-risk)."""
    labels = grow_history(repo, commits=commits, seed=seed, root=f"{seed}\n")  # else two repositories would be one
    rows = ["commit,status,branch,started_at,duration_s"]
    for i, (sha, label) in enumerate(labels.items()):
        branch = "main" if i % 3 else "feature"
        rows.append(f"{sha},{'failed' if label else 'passed'},{branch},{start + i * 3600},{duration}")
    csv.write_text("\n".join(rows) + "\n")


@pytest.fixture(params=["sqlite", "postgresql"])
def two_repos(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A store holding the recorded builds of two real repositories (overlapping builds, two branches)."""

    def fill(url: str) -> str:
        monkeypatch.setenv("CI_RISK_DB", url)
        for name, seed, start in (("one", 11, 1_600_000_000), ("two", 5, 1_600_001_800)):
            repo = make_repo(tmp_path / name)
            record_history(repo, tmp_path / f"{name}.csv", 70, seed, start, 3 * 3600)
            monkeypatch.chdir(repo.path)
            assert cli.main(["import", str(tmp_path / f"{name}.csv"), "--format", "csv"]) == 0
        return url

    if request.param == "sqlite":
        yield fill(str(tmp_path / "history.sqlite"))
        return
    with fresh_schema() as url:
        yield fill(url)


def in_memory(url: str) -> Table:
    store = open_store(url)
    try:
        return concat([ci_table(store, r[0]) for r in store.repositories()])
    finally:
        store.close()


def test_bounded_reading_gives_the_in_memory_rows_when_everything_fits(two_repos: str) -> None:
    expected = in_memory(two_repos)
    store = open_store(two_repos)
    try:
        got = sampled_ci_table(store, [r[0] for r in store.repositories()], max_rows=10_000)
    finally:
        store.close()
    assert len(got) == len(expected) == 140
    assert got.X.dtype == np.float32
    assert np.array_equal(got.X, expected.X.astype(np.float32), equal_nan=True)
    assert np.array_equal(got.demo, expected.demo.astype(np.float32))
    assert np.array_equal(got.y, expected.y)
    assert np.array_equal(got.started, expected.started) and np.array_equal(got.finished, expected.finished)
    assert np.array_equal(got.parrot, expected.parrot)
    assert got.commits == expected.commits and got.branches == expected.branches


def test_a_sample_is_proportional_by_repository_spread_over_time_and_its_rows_are_the_full_rows(
    two_repos: str,
) -> None:
    full = in_memory(two_repos)
    store = open_store(two_repos)
    try:
        ids = [r[0] for r in store.repositories()]
        plan = shares(store, ids, 35)
        sample = sampled_ci_table(store, ids, max_rows=35)
    finally:
        store.close()
    assert [s.quota for s in plan] == [18, 17] or [s.quota for s in plan] == [17, 18]
    assert len(sample) == 35
    # Each sampled build keeps the features it has in the full table: its history window is the full history's.
    where = {c: i for i, c in enumerate(full.commits)}
    idx = [where[c] for c in sample.commits]
    assert np.array_equal(sample.X, full.X[idx].astype(np.float32), equal_nan=True)
    # Spread over time: every fifth build or so, from the first quarter of the history to the last.
    span = full.started.max() - full.started.min()
    assert sample.started.min() - full.started.min() < span / 4
    assert full.started.max() - sample.started.max() < span / 4


def test_the_scheduled_retrain_compares_with_the_current_model_on_the_newest_builds(
    two_repos: str, tmp_path: Path
) -> None:
    from ci_risk_hook.model.workflow import holdout_score, installed_model, run_scheduled_retrain

    out = str(tmp_path / "org.json")
    store = open_store(two_repos)
    try:
        ids = [r[0] for r in store.repositories()]
        first = run_scheduled_retrain(store, ids, ["one", "two"], out, max_rows=10_000)
        assert first.old is None and first.trained is not None and first.rows == 140
        installed = installed_model(out)()
        assert installed is not None and installed["provenance"]["sampled_rows"] == 140
        before = Path(out).read_bytes()
        seen: list[bool] = []

        def published() -> dict | None:  # where `model pull`'s reader plugs in
            seen.append(True)
            return installed

        second = run_scheduled_retrain(store, ids, ["one", "two"], out, max_rows=10_000, current=published)
        table = sampled_ci_table(store, ids, 10_000)
    finally:
        store.close()
    assert seen and second.old == holdout_score(installed, table)
    if second.old is not None and second.new < second.old:
        assert second.trained is None and Path(out).read_bytes() == before
    else:
        assert second.trained is not None and Path(out).read_bytes() != before
