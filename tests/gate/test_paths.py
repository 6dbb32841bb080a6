"""Where ci-risk keeps its files: one module names them, and each override moves only what it says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ci_risk_hook import paths
from ci_risk_hook.gate import evaluate as gate
from testing.repos import Repo, lines, run_cli


def test_index_dir_moves_only_the_index(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """CI_RISK_INDEX_DIR moves the history index; the model and the scored log stay in .git/ci-risk."""
    elsewhere = tmp_path / "index-elsewhere"
    monkeypatch.setenv("CI_RISK_INDEX_DIR", str(elsewhere))
    monkeypatch.chdir(repo.path)
    repo.commit({"src/app.py": lines(20)})
    repo.commit({"src/app.py": lines(40)})
    git_dir = repo.path / ".git"
    bundled = gate.bundled_model_path()
    assert bundled is not None
    model = git_dir / "ci-risk" / "model.json"
    model.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bundled, model)

    code, out, _ = run_cli(["check", "--from", "HEAD~1", "--format", "json"], capsys)

    assert code == 0
    assert json.loads(out)["model"]["source"] == "repository"  # found in .git/ci-risk, not in the index dir
    assert (elsewhere / "history-index.sqlite").exists()
    assert (git_dir / "ci-risk" / "scored.jsonl").exists()
    assert sorted(p.name for p in elsewhere.iterdir() if not p.name.startswith("history-index")) == []
    assert paths.repo_model(str(git_dir)) == str(model)
    assert paths.scored_log(str(git_dir)) == str(git_dir / "ci-risk" / "scored.jsonl")
    assert paths.index_file(str(git_dir)) == str(elsewhere / "history-index.sqlite")
