"""Text from a hostile repository, import file or model never reaches the terminal raw.

File names, commit subjects, branch names and provenance can hold escape
sequences that clear the screen or move the cursor up to print a fake
"ci-risk: risk 0.01 - low risk" over the real verdict. Every test commits or
imports such text for real and reads the bytes a terminal would receive.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from ci_risk_hook.features.extract import FEATURE_NAMES
from ci_risk_hook.model.scoring import FORMAT, FORMAT_VERSION, artifact_sha256
from ci_risk_hook.safetext import clean, csv_cell
from testing.repos import Repo, lines

CI_RISK = str(Path(sys.executable).parent / "ci-risk")
FAKE_VERDICT = "ci-risk: risk 0.01 - low risk"
CLEAR = "\x1b[2J"
UP_AND_OVERWRITE = f"\x1b[1A\r{FAKE_VERDICT}"
TITLE = "\x1b]0;owned\x07"  # sets the window title; click's own stripping misses it
CSI_8BIT = "\u009b2J"  # C1 control: a terminal in 8-bit mode clears the screen
BIDI = "\u202e"  # right-to-left override (Trojan Source)
# What no byte stream we print may contain (NO_COLOR is set, so not even our own colours).
FORBIDDEN = ("\x1b", "\r", "\x07", "\u009b", "\u202e", "\u2028")

HOSTILE_CI_FILE = f".github/workflows/a{CLEAR}b\n{UP_AND_OVERWRITE}.yml"
HOSTILE_SUBJECT = f"fix {TITLE}{UP_AND_OVERWRITE}"


def assert_inert(text: str) -> None:
    found = [c for c in FORBIDDEN if c in text]
    assert not found, (found, text)
    assert not any(line.startswith(FAKE_VERDICT) for line in text.splitlines()), text


def write_model(path: Path, provenance: dict[str, object]) -> None:
    """A logistic model that blames CI files, fix subjects and new files: the reasons then quote them."""
    names = list(FEATURE_NAMES)
    weights = {"files_ci": 3.0, "msg_fix": 2.5, "new_files": 2.0}
    artifact = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "feature_names": names,
        "thresholds": {"warn": 0.5, "block": 0.9},
        "provenance": provenance,
        "model": {
            "kind": "logistic",
            "missing": "impute",
            "coef": [weights.get(n, 0.0) for n in names],
            "intercept": -3.0,
            "feature_means": [0.0] * len(names),
        },
        "imputation": {n: 0.0 for n in names},
    }
    artifact["sha256"] = artifact_sha256(artifact)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(artifact))


@pytest.fixture
def hostile(history_repo: Repo, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """A repository whose latest commit has an escape-laden CI file name and subject."""
    write_model(
        history_repo.path / ".git" / "ci-risk" / "model.json",
        {"chosen": f"logistic{TITLE}", "rows": 10, "trained_at": f"2024{CLEAR}", "data": UP_AND_OVERWRITE},
    )
    history_repo.commit({HOSTILE_CI_FILE: lines(30, "step")}, HOSTILE_SUBJECT)
    monkeypatch.chdir(history_repo.path)
    return history_repo


def ci_risk(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, output read as raw as a terminal would get it."""
    return subprocess.run(
        [CI_RISK, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="surrogateescape",
        env={**os.environ, **(env or {})},
    )


def on_terminal(args: list[str], cwd: Path) -> str:
    """stdout and stderr of `ci-risk ARGS` when they are a terminal (click strips nothing then)."""
    leader, follower = pty.openpty()
    attrs = termios.tcgetattr(follower)
    attrs[1] &= ~termios.OPOST  # no "\n" -> "\r\n": every "\r" read back was printed by ci-risk
    termios.tcsetattr(follower, termios.TCSANOW, attrs)
    proc = subprocess.Popen([CI_RISK, *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait() == 0
    return b"".join(chunks).decode("utf-8", "surrogateescape")


def test_check_shows_hostile_paths_and_subjects_escaped_on_one_line(hostile: Repo) -> None:
    proc = ci_risk(["check", "--from", "HEAD~1"], hostile.path)
    assert proc.returncode == 0, proc.stderr
    assert_inert(proc.stdout + proc.stderr)
    verdicts = [line for line in proc.stdout.splitlines() if line.startswith("ci-risk: risk")]
    assert len(verdicts) == 1 and "risky" in verdicts[0], proc.stdout
    # Still recognisable: the escapes are shown, and the file name stays on its reason's line.
    assert "touches CI configuration: .github/workflows/a\\x1b[2Jb\\n\\x1b[1A\\rci-risk: risk 0.01" in proc.stdout
    assert '"fix \\x1b]0;owned\\x07\\x1b[1A\\rci-risk: risk 0.01' in proc.stdout
    assert "model: repository, logistic\\x1b]0;owned\\x07" in proc.stdout


def test_check_json_stays_lossless(hostile: Repo) -> None:
    proc = ci_risk(["check", "--from", "HEAD~1", "--format", "json"], hostile.path)
    assert proc.returncode == 0 and "\x1b" not in proc.stdout  # json.dumps escapes it as \u001b
    texts = [r["text"] for r in json.loads(proc.stdout)["ranges"][0]["reasons"]]
    assert any(HOSTILE_SUBJECT[:40] in t for t in texts), texts


def test_hook_from_pre_commit_shows_a_hostile_branch_escaped(hostile: Repo) -> None:
    branch = f"refs/heads/x{CLEAR}{BIDI}{CSI_8BIT}"
    env = {
        "PRE_COMMIT_FROM_REF": hostile.git("rev-parse", "HEAD~1"),
        "PRE_COMMIT_TO_REF": hostile.head(),
        "PRE_COMMIT_REMOTE_BRANCH": branch,
        "PRE_COMMIT_REMOTE_NAME": "origin",
    }
    proc = ci_risk(["hook"], hostile.path, env)
    assert proc.returncode == 0, proc.stderr
    assert_inert(proc.stdout + proc.stderr)
    assert "  refs/heads/x\\x1b[2J\\u202e\\x9b2J: 1 commit(s)" in proc.stdout


def test_raw_hook_on_a_real_push_prints_no_escapes(hostile: Repo, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    hostile.git("remote", "add", "origin", str(remote))
    hostile.git("push", "-q", "--no-verify", "origin", "HEAD~1:refs/heads/main")
    assert ci_risk(["install"], hostile.path).returncode == 0
    branch = f"feature{BIDI}{CSI_8BIT}"  # git refuses ASCII controls in ref names, not these
    hostile.git("branch", branch)
    push = subprocess.run(
        ["git", "push", "origin", branch],
        cwd=hostile.path,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="surrogateescape",
    )
    assert push.returncode == 0, push.stderr
    hook = push.stdout + "".join(line for line in push.stderr.splitlines(True) if "ci-risk" in line)
    assert "ci-risk: risk" in hook, push.stdout + push.stderr
    assert_inert(hook)  # git's own lines, not ci-risk's, show the branch name raw
    assert "refs/heads/feature\\u202e\\x9b2J -> refs/heads/feature\\u202e\\x9b2J: 1 commit(s)" in hook


def test_errors_quoting_a_revision_or_setting_are_escaped(hostile: Repo) -> None:
    proc = ci_risk(["check", "--from", f"no{CLEAR}such"], hostile.path)
    assert proc.returncode == 2
    assert_inert(proc.stderr)
    assert "not a commit: no\\x1b[2Jsuch" in proc.stderr

    (hostile.path / ".ci-risk.ini").write_text(f"[ci-risk]\nbogus{TITLE} = 1\n")
    proc = ci_risk(["check", "--from", "HEAD~1"], hostile.path)
    assert_inert(proc.stdout + proc.stderr)
    assert "bogus\\x1b]0;owned\\x07" in proc.stderr


def test_click_errors_quoting_user_data_are_escaped(hostile: Repo) -> None:
    proc = ci_risk(["record", "--status", "pass", "--commit", f"nope{TITLE}"], hostile.path)
    assert proc.returncode == 1
    assert_inert(proc.stderr)
    assert "not a commit: nope\\x1b]0;owned\\x07" in proc.stderr
    proc = ci_risk(["history", f"--bogus{UP_AND_OVERWRITE}"], hostile.path)
    assert proc.returncode == 2
    assert_inert(proc.stderr)
    assert "No such option '--bogus\\x1b[1A\\rci-risk: risk 0.01" in proc.stderr


def test_model_show_escapes_provenance(hostile: Repo) -> None:
    text = on_terminal(["model", "show"], hostile.path)
    assert_inert(text)
    assert "chosen candidate logistic\\x1b]0;owned\\x07" in text and "data: \\x1b[1A\\rci-risk" in text


HOSTILE_BRANCHES = [
    f"main{CLEAR}",
    UP_AND_OVERWRITE,
    f"rel{TITLE}",
    f"x{BIDI}y{CSI_8BIT}",
    '=HYPERLINK("http://evil.example/","click")',
    "+1+2",
    "-2+3",
    "@SUM(A1:A2)",
]


@pytest.fixture
def imported(hostile: Repo, tmp_path: Path) -> Repo:
    """Outcomes imported from a CSV whose branch names carry escapes and spreadsheet formulas."""
    shas = hostile.git("rev-list", "--reverse", "HEAD").split()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["commit", "status", "branch", "started_at", "duration_s", "job_id"])
    for i, branch in enumerate(HOSTILE_BRANCHES):
        writer.writerow([shas[i % len(shas)], "failed" if i % 2 else "passed", branch, 1_600_000_000 + 600 * i, 60, i])
    writer.writerow([f"beef{CLEAR}", "passed", "main", 1_700_000_000, 60, 99])  # a bad row, quoted in the warning
    data = tmp_path / "outcomes.csv"
    data.write_text(out.getvalue(), encoding="utf-8")
    proc = ci_risk(
        ["import", str(data), "--format", "csv", "--skip-bad", "--db", str(tmp_path / "h.sqlite")], hostile.path
    )
    assert proc.returncode == 0, proc.stderr
    assert_inert(proc.stdout + proc.stderr)
    assert "beef\\x1b[2J" in proc.stderr
    hostile.db = str(tmp_path / "h.sqlite")  # type: ignore[attr-defined]
    return hostile


def test_history_table_on_a_terminal_shows_imported_branches_escaped(imported: Repo) -> None:
    text = on_terminal(["history", "--db", imported.db], imported.path)  # type: ignore[attr-defined]
    assert_inert(text)
    assert "main\\x1b[2J" in text and "\\x1b[1A\\rci-risk: risk 0.01" in text and "x\\u202ey\\x9b2J" in text


def test_history_csv_neutralises_formulas_and_escapes(imported: Repo) -> None:
    proc = ci_risk(["history", "--format", "csv", "--db", imported.db], imported.path)  # type: ignore[attr-defined]
    assert proc.returncode == 0, proc.stderr
    assert_inert(proc.stdout)
    branches = [row["branch"] for row in csv.DictReader(io.StringIO(proc.stdout))]
    assert sorted(branches) == sorted(clean(b) if b[0] not in "=+-@" else "'" + b for b in HOSTILE_BRANCHES)
    assert not any(b.startswith(("=", "+", "-", "@")) for b in branches)


def test_history_json_keeps_the_imported_text_exactly(imported: Repo) -> None:
    proc = ci_risk(["history", "--format", "json", "--db", imported.db], imported.path)  # type: ignore[attr-defined]
    assert proc.returncode == 0 and "\x1b" not in proc.stdout
    assert sorted(b["branch"] for b in json.loads(proc.stdout)["builds"]) == sorted(HOSTILE_BRANCHES)


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("plain text, ünïcödé and a \\ backslash", "plain text, ünïcödé and a \\ backslash"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("one\ntwo\r\tthree", "one\\ntwo\\r\\tthree"),
        ("del\x7f c1\x85\x9b", "del\\x7f c1\\x85\\x9b"),
        ("bidi \u202e\u2066\u200f ls \u2028", "bidi \\u202e\\u2066\\u200f ls \\u2028"),
        ("undecodable \udcff byte", "undecodable \\xff byte"),
    ],
)
def test_clean_shows_every_dangerous_character_as_an_escape(raw: str, shown: str) -> None:
    assert clean(raw) == shown
    assert clean(shown) == shown  # idempotent: the escapes themselves are printable


def test_csv_cells_that_a_spreadsheet_would_evaluate_are_prefixed() -> None:
    for cell in ("=1+1", "+1", "-1", "@A1", "\t=1", "\r=1"):
        assert csv_cell(cell).startswith("'"), cell
    assert csv_cell("main") == "main" and csv_cell(-1) == -1 and csv_cell(None) is None


def test_backtest_predictions_csv_neutralises_formulas(tmp_path: Path) -> None:
    from ci_risk_hook.model.backtest import BacktestResult, Prediction, write_predictions

    hostile = Prediction("=cmd|' /C calc'!A0", f"+{CLEAR}main", 1_600_000_000, 1, 0.9, 1, 1.0, 0.5)
    result = BacktestResult(None, None, None, None, [hostile], 1, 1, 0, {}, 0.0)  # type: ignore[arg-type]
    out = tmp_path / "predictions.csv"
    write_predictions(result, str(out))
    row = next(csv.DictReader(out.open(encoding="utf-8")))
    assert row["commit"] == "'=cmd|' /C calc'!A0" and row["branch"] == "'+\\x1b[2Jmain"
