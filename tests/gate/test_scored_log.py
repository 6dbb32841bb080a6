"""The gate's log of scored pushes (.git/ci-risk/scored.jsonl): damaged lines are skipped, never fatal.

The log is best effort: a push is never stopped or warned about because of it,
and whatever damaged it (a torn write, a full disk, another tool) costs only
the damaged lines, both when it is read and when the gate trims it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ci_risk_hook.gate.evaluate import scored_pushes
from ci_risk_hook.git import repo as git
from ci_risk_hook.paths import SCORED_LOG
from testing.repos import Repo, lines
from testing.repos import run_cli as run

VALID = {"time": 1, "range": "main..ok", "commits": 1, "probability": 0.25, "decision": "pass", "reasons": ["r"]}
DAMAGED_LINES = [
    b"[1, 2]",
    b'"a string"',
    b"42",
    b"null",
    b"{}",
    b'{"range": "main..x", "decision": "pass", "reasons": []}',  # no probability
    b'{"range": "main..x", "probability": "0.3", "decision": "pass", "reasons": []}',
    b'{"range": "main..x", "probability": true, "decision": "pass", "reasons": []}',
    b'{"range": "main..x", "probability": NaN, "decision": "pass", "reasons": []}',
    b'{"range": "main..x", "probability": 50, "decision": "pass", "reasons": []}',
    b'{"range": 7, "probability": 0.3, "decision": "pass", "reasons": []}',
    b'{"range": "main..x", "probability": 0.3, "decision": "pass", "reasons": [1]}',
    b"\xff\xfe\x00\x80 binary garbage",
    b"[" * 100_000,
    b'{"range": "main..torn", "probab',
]


def log_path(repo: Repo) -> Path:
    return repo.path / ".git" / "ci-risk" / SCORED_LOG


def test_reading_the_log_skips_every_damaged_line(history_repo: Repo) -> None:
    path = log_path(history_repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\n".join([json.dumps(VALID).encode(), *DAMAGED_LINES, json.dumps({**VALID, "range": "main..last"}).encode()])
        + b"\n"
    )
    entries = scored_pushes(git.repo_info(str(history_repo.path)))
    assert [e["range"] for e in entries] == ["main..ok", "main..last"]


@pytest.mark.parametrize("size", ["small", "over the trimming size"])
def test_a_push_appends_to_a_damaged_log_and_trims_it_to_valid_entries(
    history_repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, size: str
) -> None:
    monkeypatch.chdir(history_repo.path)
    history_repo.commit({"src/app.py": lines(70)}, "the change")
    path = log_path(history_repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    damage = b"\n".join([json.dumps(VALID).encode(), *DAMAGED_LINES])  # ends in a torn line, no newline
    if size != "small":
        damage = b"\xff" * 300_000 + b"\n" + damage  # past 256 KB: the gate trims the log
    path.write_bytes(damage)
    code, out, err = run(["check", "--from", "HEAD~1"], capsys)
    assert code == 0 and out.startswith("ci-risk: risk"), err
    assert "warning" not in err and "internal error" not in err
    entries = scored_pushes(git.repo_info(str(history_repo.path)))
    assert [e["range"] for e in entries] == ["main..ok", "HEAD~1..HEAD"]
    if size != "small":
        text = path.read_text(encoding="utf-8")  # trimmed: valid UTF-8, one valid entry a line
        assert [json.loads(line)["range"] for line in text.splitlines()] == [e["range"] for e in entries]
