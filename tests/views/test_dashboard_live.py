"""The dashboard's /api/live: `ci-risk monitor`'s figures for the page's live panel."""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path

import pytest

from ci_risk_hook.outcomes.monitor import empty_summary, live_summary
from ci_risk_hook.outcomes.store import open_store
from ci_risk_hook.views import dashboard
from testing.repos import Repo, lines
from testing.repos import run_cli as run


def get_live(state: dashboard.State) -> dict:
    server = dashboard.make_server(state, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        with urllib.request.urlopen(f"http://{host}:{port}/api/live") as response:
            return json.loads(response.read())
    finally:
        server.shutdown()
        server.server_close()


def test_api_live_serves_the_monitor_figures(
    history_repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(tmp_path / "store.sqlite")
    monkeypatch.chdir(history_repo.path)
    monkeypatch.setenv("CI_RISK_DB", url)
    base = history_repo.head()
    assert run(["record", "--status", "pass", "--commit", base, "--branch", "main"], capsys)[0] == 0
    tip = history_repo.commit({".github/workflows/ci.yml": lines(200, "step")}, "rework CI")
    assert run(["check", "--from", base, "--to", tip, "--branch", "main"], capsys)[0] == 0
    assert run(["record", "--status", "fail", "--commit", tip, "--branch", "main"], capsys)[0] == 0

    live = get_live(dashboard.load_state(cwd=str(history_repo.path)))
    store = open_store(url, create=False)
    try:
        repo_id = store.find_repository(history_repo.git("rev-list", "--max-parents=0", "HEAD"))
        assert repo_id is not None
        expected = live_summary(store, repo_id)
    finally:
        store.close()
    assert live["predictions"] == 1 and live["joined"] == 1
    assert live["windows"] == json.loads(json.dumps(expected["windows"]))


def test_api_live_without_a_store_has_empty_windows(history_repo: Repo) -> None:
    live = get_live(dashboard.load_state(cwd=str(history_repo.path)))
    assert live == json.loads(json.dumps(empty_summary()))
    assert [w["name"] for w in live["windows"]] == ["last 50 builds", "last 200 builds", "last 30 days"]
