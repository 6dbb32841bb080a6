"""`ci-risk report`: real PNG images of the expected size, and one HTML page holding them and the metrics."""

from __future__ import annotations

import html
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from ci_risk_hook.views import demo
from ci_risk_hook.views.report import CHARTS

CI_RISK = str(Path(sys.executable).parent / "ci-risk")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG file"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "demo"
    demo.build(str(path), seed=5, commits=150)
    return path


def test_report_writes_each_chart_and_a_self_contained_page(demo_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env_db = str(demo_repo / ".git" / "ci-risk" / "history.sqlite")
    scored = subprocess.run(
        [CI_RISK, "check", "--from", "main", "--to", "new-ci", "--db", env_db],
        cwd=demo_repo,
        capture_output=True,
        text=True,
    )
    assert scored.returncode == 0 and scored.stdout.startswith("ci-risk: risk"), scored.stderr
    proc = subprocess.run(
        [CI_RISK, "report", "--out", str(out), "--html", "--db", env_db], cwd=demo_repo, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    for name in CHARTS:
        assert png_size(out / f"{name}.png") == (800, 500), name
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(CHARTS)
    assert '<table id="metrics">' in page and "<th>roc_auc</th>" in page and "<th>deferrable_at_90</th>" in page
    assert "Reasons for the latest builds" in page
    pushes = page.split('<ul id="scored">')[1].split("</ul></li></ul>")[0]
    assert "main..new-ci: risk 0." in pushes
    # Each reason the check gave for that push (the demo's simulation decides which ones they are).
    last = json.loads((demo_repo / ".git" / "ci-risk" / "scored.jsonl").read_text().splitlines()[-1])
    assert last["range"] == "main..new-ci" and len(last["reasons"]) == 3
    assert all(html.escape(reason) in pushes for reason in last["reasons"]), (last["reasons"], pushes)
    assert 'src="http' not in page and 'href="http' not in page  # readable offline: nothing fetched


def test_report_without_recorded_history_is_a_one_line_error(tmp_path: Path, history_repo: object) -> None:
    db = tmp_path / "h.sqlite"
    proc = subprocess.run(
        [CI_RISK, "report", "--db", str(db)],
        cwd=history_repo.path,  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("Error: nothing to backtest") and proc.stderr.count("\n") == 1


def test_report_skips_damaged_lines_of_the_scored_log(demo_repo: Path, tmp_path: Path) -> None:
    """A torn write, a stray editor or another tool's garbage in scored.jsonl costs those lines, not the report."""
    log = demo_repo / ".git" / "ci-risk" / "scored.jsonl"
    kept = log.read_bytes() if log.exists() else None
    good = b'{"time": 1, "range": "main..good", "probability": 0.5, "decision": "warn", "reasons": ["a reason"]}\n'
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(
            good + b'[1, 2]\n"text"\n42\n{"range": "main..no-probability"}\n'
            b'{"range": "main..typed", "probability": "0.5", "decision": "warn", "reasons": []}\n'
            b'{"range": "main..reasons", "probability": 0.5, "decision": "warn", "reasons": "x"}\n'
            b'{"range": "main..nan", "probability": NaN, "decision": "warn", "reasons": []}\n'
            b"\xff\xfe\x00 binary garbage \x80\n" + b"[" * 100_000 + b"\n" + b'{"unterminated": '
        )
        env_db = str(demo_repo / ".git" / "ci-risk" / "history.sqlite")
        proc = subprocess.run(
            [CI_RISK, "report", "--out", str(tmp_path / "out"), "--html", "--db", env_db],
            cwd=demo_repo,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        pushes = (tmp_path / "out" / "report.html").read_text().split('<ul id="scored">')[1].split("</ul>\n")[0]
        assert "main..good: risk 0.50 (warn)" in pushes and "a reason" in pushes
        for damaged in ("no-probability", "typed", "reasons", "nan", "unterminated"):
            assert damaged not in pushes
    finally:
        if kept is None:
            log.unlink()
        else:
            log.write_bytes(kept)
