"""`ci-risk monitor`: live figures from recorded predictions and later outcomes, checked against figures
computed here, independently, from the same rows; drift on a planted run of missed failures only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ci_risk_hook.errors import EXIT_DRIFT
from ci_risk_hook.outcomes.monitor import live_summary
from ci_risk_hook.outcomes.records import BuildRecord
from ci_risk_hook.outcomes.store import Prediction, Store, open_store
from testing.repos import Repo, built_once, make_repo
from testing.repos import run_cli as run

WARN_AT, BLOCK_AT = 0.2, 0.8
SCORES = (0.1, 0.3, 0.5, 0.7, 0.9)  # one per calibration bucket
DAY = 86400


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    repo = make_repo(tmp_path / "project")
    built_once(repo, "monitor project", _three_developers)
    monkeypatch.chdir(repo.path)
    return repo


def _three_developers(repo: Repo) -> None:
    for i in range(130):
        repo.commit({"src/app.py": f"v{i}\n"}, f"change {i}", author=f"Dev{i % 3} <dev{i % 3}@example.com>")


class Row:
    """One planted build with what was predicted for its commit (or nothing: a push without the hook)."""

    def __init__(self, commit: str, branch: str, failed: bool, score: float | None, started: int, place: str) -> None:
        self.commit, self.branch, self.failed, self.score, self.started, self.place = (
            commit,
            branch,
            failed,
            score,
            started,
            place,
        )
        self.finished = started + 300


def healthy_rows(commits: list[str], start: int) -> list[Row]:
    """Calibrated by construction: in each run of ten builds at score s, exactly 10*s fail."""
    rows = []
    for i, commit in enumerate(commits):
        score = SCORES[i % 5]
        failed = (i // 5) % 10 < round(score * 10)
        branch = "dev" if i % 7 == 3 else "main"
        score_or_none = None if i % 11 == 5 else score  # pushed without the hook
        place = "ci" if i % 13 == 4 else "hook"
        rows.append(Row(commit, branch, failed, score_or_none, start + i * 3 * 3600, place))
    return rows


def plant(store: Store, repo_id: int, rows: list[Row]) -> None:
    records = [
        BuildRecord(
            commit=r.commit,
            status="fail" if r.failed else "pass",
            source="record",
            branch=r.branch,
            started_at=r.started,
            finished_at=r.finished,
            job_id=f"job-{n}",
        )
        for n, r in enumerate(rows)
    ]
    store.add_builds(repo_id, records)
    store.add_commit_features(
        repo_id, [(r.commit, r.started - 100, f"dev{n % 3}@example.com", "v", {}) for n, r in enumerate(rows)]
    )
    store.add_predictions(
        repo_id,
        [
            Prediction(
                r.commit,
                None,
                r.branch,
                r.score,
                "block" if r.score >= BLOCK_AT else "warn" if r.score >= WARN_AT else "pass",
                "warn",
                "sha-of-model",
                WARN_AT,
                BLOCK_AT,
                r.place,
                "",
                None,
                r.started - 60,
            )
            for r in rows
            if r.score is not None
        ],
    )


def open_project(url: str, project: Repo) -> tuple[Store, int]:
    store = open_store(url)
    return store, store.repository_id(project.git("rev-list", "--max-parents=0", "HEAD"))


def expected_window(rows: list[Row], name: str) -> dict:
    """The figures of one window, computed directly from the planted rows."""
    ordered = sorted(rows, key=lambda r: r.finished)
    previous: dict[int, bool] = {}
    last_on: dict[str, Row] = {}
    for r in sorted(rows, key=lambda r: r.started):  # builds never overlap here: the previous one had finished
        previous[id(r)] = last_on[r.branch].failed if r.branch in last_on else False
        last_on[r.branch] = r
    joined = [r for r in ordered if r.score is not None]
    now = int(time.time())
    chosen = {
        "last 50 builds": joined[-50:],
        "last 200 builds": joined[-200:],
        "last 30 days": [r for r in joined if r.finished >= now - 30 * DAY],
    }[name]

    def figures(flag: list[bool]) -> dict:
        y = [r.failed for r in chosen]
        tp = sum(f and t for f, t in zip(flag, y))
        fp = sum(f and not t for f, t in zip(flag, y))
        fn = sum(t and not f for f, t in zip(flag, y))
        return {
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
        }

    assert all(r.score is not None for r in chosen)
    buckets = []
    for i, s in enumerate(SCORES):
        inside = [r for r in chosen if r.score == s]
        if inside:
            buckets.append((i / 5, (i + 1) / 5, s, sum(r.failed for r in inside) / len(inside), len(inside)))
    hooked = [r for r in chosen if r.place == "hook"]
    return {
        "builds": len(chosen),
        "failures": sum(r.failed for r in chosen),
        "model": figures([r.score >= WARN_AT for r in chosen]),  # type: ignore[operator]
        "baseline": figures([previous[id(r)] for r in chosen]),
        "deferred_share": sum(r.score < WARN_AT for r in chosen) / len(chosen),  # type: ignore[operator]
        "deferred_failures": [r.commit for r in chosen if r.failed and r.score < WARN_AT],  # type: ignore[operator]
        "calibration": buckets,
        "overrides": {
            "warned": sum(WARN_AT <= r.score < BLOCK_AT for r in hooked),  # type: ignore[operator]
            "warned_failed": sum(r.failed and WARN_AT <= r.score < BLOCK_AT for r in hooked),  # type: ignore[operator]
            "blocked": sum(r.score >= BLOCK_AT for r in hooked),  # type: ignore[operator]
            "blocked_failed": sum(r.failed and r.score >= BLOCK_AT for r in hooked),  # type: ignore[operator]
        },
    }


def test_monitor_figures_equal_figures_computed_from_the_same_rows(
    project: Repo, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    commits = project.git("rev-list", "--reverse", "HEAD").split()[1:]
    rows = healthy_rows(commits, int(time.time()) - 40 * DAY)
    store, repo_id = open_project(store_url, project)
    try:
        plant(store, repo_id, rows)
        summary = live_summary(store, repo_id)
    finally:
        store.close()
    assert summary["predictions"] == sum(r.score is not None for r in rows)
    assert summary["joined"] == summary["predictions"]
    assert [w["name"] for w in summary["windows"]] == ["last 50 builds", "last 200 builds", "last 30 days"]
    for window in summary["windows"]:
        expected = expected_window(rows, window["name"])
        assert window["builds"] == expected["builds"] and window["failures"] == expected["failures"]
        for side in ("model", "baseline"):
            for key in ("precision", "recall", "f1"):
                assert window[side][key] == pytest.approx(expected[side][key]), (window["name"], side, key)
        assert window["deferred_share"] == pytest.approx(expected["deferred_share"])
        assert [d["commit"] for d in window["deferred_failures"]] == expected["deferred_failures"]
        calibration = [(b["low"], b["high"], b["predicted"], b["observed"], b["builds"]) for b in window["calibration"]]
        assert len(calibration) == len(expected["calibration"])
        for got, want in zip(calibration, expected["calibration"]):
            assert got == pytest.approx(want)
        assert window["overrides"] == expected["overrides"]
    assert summary["drift"] == [] and summary["retrain_would_help"] is False

    # Bypass: per author, builds since the first hook prediction and those whose commit no hook scored.
    since = min(r.started - 60 for r in rows if r.place == "hook" and r.score is not None)
    counted: dict[str, list[int]] = {}
    for n, r in enumerate(rows):
        if r.started >= since:
            entry = counted.setdefault(f"dev{n % 3}@example.com", [0, 0])
            entry[0] += 1
            entry[1] += r.score is None or r.place != "hook"
    assert {b["author"]: [b["builds"], b["without_prediction"]] for b in summary["bypass"]} == counted

    code, out, err = run(["monitor", "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["windows"] == json.loads(json.dumps(summary["windows"]))
    code, out, err = run(["monitor", "--window", "50"], capsys)
    assert code == 0, err
    assert "last 50 builds: 50 build(s)" in out and "last 200 builds" not in out
    assert "failures caught (recall)" in out and "previous build rule" in out and "drift: none found" in out
    assert run(["monitor", "--fail-on-drift"], capsys)[0] == 0


def test_drift_fires_on_a_planted_run_of_missed_failures_and_not_before(
    project: Repo, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    commits = project.git("rev-list", "--reverse", "HEAD").split()[1:]
    start = int(time.time()) - 40 * DAY
    healthy = healthy_rows(commits[:100], start)
    store, repo_id = open_project(store_url, project)
    try:
        plant(store, repo_id, healthy)
    finally:
        store.close()
    assert run(["monitor", "--fail-on-drift"], capsys)[0] == 0

    missed = [  # the latest builds: half fail, and the gate scored every one of them low
        Row(c, "main", i % 2 == 0, 0.1, start + (100 + i) * 3 * 3600, "hook") for i, c in enumerate(commits[100:])
    ]
    store, repo_id = open_project(store_url, project)
    try:
        plant(store, repo_id, missed)
        summary = live_summary(store, repo_id)
    finally:
        store.close()
    kinds = [d["kind"] for d in summary["drift"]]
    assert "recall" in kinds, summary["drift"]
    assert summary["retrain_would_help"] is True
    code, out, err = run(["monitor", "--fail-on-drift"], capsys)
    assert code == EXIT_DRIFT, err
    assert "`ci-risk retrain` would help" in out
    assert run(["monitor"], capsys)[0] == 0  # without --fail-on-drift it only says so


def test_rows_with_scores_no_gate_writes_are_left_out_not_fatal(
    project: Repo, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    commits = project.git("rev-list", "--reverse", "HEAD").split()[1:]
    rows = healthy_rows(commits[:20], int(time.time()) - 10 * DAY)
    store, repo_id = open_project(store_url, project)
    try:
        plant(store, repo_id, rows)
        planted = [r.commit for r in rows if r.score is not None]
        # SQLite stores NaN as NULL (refused by the column): only PostgreSQL can hold one.
        hostile = ["Infinity", "-3", "7"] + (["NaN"] if store_url.startswith("postgresql") else [])
        for commit, score in zip(planted, hostile):
            store.execute("UPDATE predictions SET score = ? WHERE commit_sha = ?", (float(score), commit))
        store.conn.commit()
        summary = live_summary(store, repo_id)
    finally:
        store.close()
    assert summary["predictions"] == len(planted) - len(hostile)
    code, out, err = run(["monitor", "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["predictions"] == len(planted) - len(hostile)
    code, out, err = run(["monitor"], capsys)
    assert code == 0, err


@pytest.mark.parametrize("option", ["--target-recall", "--calibration-margin"])
def test_a_nan_threshold_is_a_usage_error_not_a_crash_or_silence(
    project: Repo, store_url: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["monitor", option, "nan", "--format", "json"], capsys)
    assert code == 2 and out == "" and "expected a number between 0 and 1" in err


def test_a_build_time_no_platform_can_show_is_a_question_mark_not_a_crash(
    project: Repo, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ci_risk_hook.views import live

    commits = project.git("rev-list", "--reverse", "HEAD").split()[1:]
    rows = [Row(commits[0], "main", True, 0.1, int(time.time()) - DAY, "hook")]  # a deferred failure: listed
    store, repo_id = open_project(store_url, project)
    try:
        plant(store, repo_id, rows)
        store.execute("UPDATE builds SET finished_at = ?", (2**62,))  # forged by hand or a foreign tool
        store.conn.commit()
        summary = live_summary(store, repo_id)
    finally:
        store.close()
    code, out, err = run(["monitor"], capsys)
    assert code == 0, err
    assert f"{commits[0][:10]} on main, risk 0.10, failed ?" in out
    assert "failed ?" in live.live_html(summary)


def test_a_server_that_is_down_is_one_line_and_exit_1(project: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["monitor", "--db", "postgresql://postgres@127.0.0.1:1/none"], capsys)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and "cannot connect" in err
