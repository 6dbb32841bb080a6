"""An import is one transaction: a failure while writing row N leaves the store exactly as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ci_risk_hook.outcomes.store import open_store
from testing.repos import Repo
from testing.repos import run_cli as run


def test_a_store_failure_midway_through_an_import_writes_nothing(
    history_repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "history.sqlite"
    monkeypatch.setenv("CI_RISK_DB", str(db))
    monkeypatch.chdir(history_repo.path)
    shas = [history_repo.commit({"src/app.py": f"x = {i}\n"}, f"change {i}") for i in range(30)]
    rows = ["commit,status,branch,started_at,duration_s"]
    rows += [
        f"{sha},{'failed' if i % 3 == 0 else 'passed'},main,{1_600_000_000 + i * 3600},60" for i, sha in enumerate(shas)
    ]
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text("\n".join(rows) + "\n")
    open_store(str(db)).close()
    # The database itself refuses the 20th row, as a full disk or a constraint would: after 19 good rows.
    with sqlite3.connect(db) as conn:
        conn.execute(f"""CREATE TRIGGER refuse_row BEFORE INSERT ON builds WHEN NEW.commit_sha = '{shas[19]}'
                         BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END""")
    code, out, err = run(["import", str(outcomes), "--format", "csv"], capsys)
    assert code != 0 and "simulated write failure" in err, (code, out, err)
    assert len(err.strip().splitlines()) == 1, err
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM builds").fetchone()[0] == 0, "rows before the failure were kept"
