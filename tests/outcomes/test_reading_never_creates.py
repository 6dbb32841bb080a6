"""Commands that only read the history store refuse a store that is not there instead of creating an empty one.

A mistyped `--db` used to answer "no history" from a new empty SQLite file, and leave the file behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testing.repos import Repo
from testing.repos import run_cli as run

READERS = [
    ["history"],
    ["monitor"],
    ["backtest"],
    ["train", "--out", "model.json"],
    ["retrain"],
    ["retrain", "--all-repos", "--out", "model.json"],
    ["report", "--out", "charts"],
]


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_reading_command_refuses_a_store_that_is_not_there_and_creates_none(
    project: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    absent = tmp_path / "typo" / "history.sqlite"
    code, out, err = run([*command, "--db", str(absent)], capsys)
    assert code == 1, (out, err)
    assert err == f"Error: {absent}: no history store there (reading commands never create one; " + (
        "`record` or `import` do)\n"
    )
    assert not absent.exists() and not absent.parent.exists()


def test_the_same_command_reads_the_store_once_one_is_recorded(
    project: Repo, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["record", "--status", "pass", "--commit", "HEAD"], capsys)[0] == 0  # the default store: created
    code, out, err = run(["history"], capsys)
    assert code == 0, err
    assert db.exists()
