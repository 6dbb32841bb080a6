"""Fixtures for the outcome tests: a store file named by CI_RISK_DB and a project repository as the cwd."""

from __future__ import annotations

from pathlib import Path

import pytest

from testing.repos import Repo


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "store" / "history.sqlite"
    monkeypatch.setenv("CI_RISK_DB", str(path))
    return path


@pytest.fixture
def project(history_repo: Repo, monkeypatch: pytest.MonkeyPatch, db: Path) -> Repo:
    monkeypatch.chdir(history_repo.path)
    return history_repo
