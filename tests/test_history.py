"""Outcomes flowing in (record, run, import, backfill) and back out as build-history features."""
from __future__ import annotations

import json
import re
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ci_risk_hook import git
from ci_risk_hook.analysis import analyze
from ci_risk_hook.backfill import backfill_commits
from ci_risk_hook.features import FEATURE_NAMES, Limits, store_features
from ci_risk_hook.ranges import PushRange
from ci_risk_hook.store import PriorBuild, open_store

from conftest import Repo, lines, make_repo, run_cli as run

CI_RISK = str(Path(sys.executable).parent / "ci-risk")


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "store" / "history.sqlite"
    monkeypatch.setenv("CI_RISK_DB", str(path))
    return path


@pytest.fixture
def project(history_repo: Repo, monkeypatch: pytest.MonkeyPatch, db: Path) -> Repo:
    monkeypatch.chdir(history_repo.path)
    return history_repo


def builds(db: Path) -> list:
    store = open_store(str(db))
    try:
        repo = store.execute("SELECT id FROM repositories").fetchone()[0]
        return store.builds(repo)
    finally:
        store.close()


# -- history features ------------------------------------------------------

def prior(branch: str, failed: bool, t: int, author: str = "a@x", files: tuple[str, ...] = ("f.py",)) -> PriorBuild:
    return PriorBuild("c" * 40, branch, failed, t, t + 60, author, frozenset(files))


def test_store_features_from_earlier_builds() -> None:
    history = [prior("main", True, 0), prior("main", False, 100), prior("dev", True, 150, files=("g.py",)),
               prior("main", False, 200, author="b@x"), prior("main", True, 300, files=("g.py",)),
               prior("main", False, 400)]
    v = store_features(history, "main", ["f.py"], "a@x", now=400 + 7200)
    assert v["prev_build_failed"] == 0.0
    assert v["fail_rate_last5"] == pytest.approx(2 / 5)  # main: fail, pass, pass, fail, pass
    assert v["fail_rate_last20"] == pytest.approx(2 / 5)
    assert v["builds_since_failure"] == 1
    assert v["hours_since_prev_build"] == pytest.approx(2.0)
    assert v["touched_files_fail_rate"] == pytest.approx(1 / 4)  # four earlier builds touched f.py
    assert v["author_fail_rate"] == pytest.approx(3 / 5)  # a@x: 0 (fail), 100, 150 (fail), 300 (fail), 400
    assert v["prev_any_failed"] == 0.0 and v["fail_rate_any_last5"] == pytest.approx(2 / 5)  # 100..400, any branch


def test_a_new_branch_still_sees_the_repositorys_latest_builds() -> None:
    v = store_features([prior("main", False, 0), prior("main", True, 100)], "feature-x", ["f.py"], "a@x", now=500)
    assert v["prev_build_failed"] is None  # nothing on this branch yet
    assert v["prev_any_failed"] == 1.0 and v["fail_rate_any_last5"] == pytest.approx(1 / 2)


def test_store_features_are_unknown_without_history() -> None:
    v = store_features([prior("dev", True, 0)], "main", ["x.py"], "nobody@x", now=100)
    assert v["prev_build_failed"] is None and v["fail_rate_last5"] is None
    assert v["touched_files_fail_rate"] is None and v["author_fail_rate"] is None


# -- record and run --------------------------------------------------------

def test_record_is_idempotent_and_computes_features(project: Repo, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["record", "--status", "fail"], capsys)
    assert code == 0 and "recorded fail" in out and "(new)" in out
    code, out, _ = run(["record", "--status", "fail"], capsys)
    assert "already recorded" in out
    rows = builds(db)
    assert len(rows) == 1 and rows[0].commit == project.head() and rows[0].branch == "main"
    store = open_store(str(db))
    features = store.build_features(store.execute("SELECT id FROM repositories").fetchone()[0])
    store.close()
    (author, files, values), = features.values()
    assert author == "maint@example.com" and files == ["src/app.py", "tests/test_app.py"]
    assert list(values) == list(FEATURE_NAMES)


def test_record_rerun_from_ci_marks_flaky(project: Repo, db: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "1")
    run(["record", "--status", "fail"], capsys)
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "2")
    run(["record", "--status", "pass"], capsys)
    code, out, _ = run(["history"], capsys)
    assert code == 0 and "(flaky)" in out
    assert {(b.attempt, b.status, b.flaky, b.job_id) for b in builds(db)} == {
        (1, "fail", True, "4242"), (2, "pass", False, "4242")}


def test_record_unknown_commit_is_an_error(project: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["record", "--status", "pass", "--commit", "deadbeef" * 5], capsys)
    assert code == 1 and "not a commit" in err


def test_run_streams_output_records_and_keeps_the_exit_code(project: Repo, db: Path) -> None:
    ok = subprocess.run([CI_RISK, "run", "--", sys.executable, "-c", "print('tests: 3 passed')"],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout == "tests: 3 passed\n"
    project.commit({"src/app.py": lines(99)}, "break it")
    bad = subprocess.run([CI_RISK, "run", "--", sys.executable, "-c", "import sys; print('1 failed'); sys.exit(3)"],
                         capture_output=True, text=True)
    assert bad.returncode == 3 and bad.stdout == "1 failed\n"
    assert "recorded fail" in bad.stderr
    statuses = [(b.status, b.source) for b in builds(db)]
    assert statuses == [("pass", "run"), ("fail", "run")]
    assert all(b.duration_s is not None and b.duration_s >= 0 for b in builds(db))


def test_hook_uses_recorded_history(project: Repo, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(["record", "--status", "fail"], capsys)
    project.commit({"src/app.py": lines(70)}, "next change")
    code, out, _ = run(["check", "--from", "HEAD~1", "--format", "json"], capsys)
    assert code == 0
    values = json.loads(out)["ranges"][0]["features"]
    assert values["prev_build_failed"] == 1.0 and values["fail_rate_last5"] == 1.0
    assert values["touched_files_fail_rate"] == 1.0 and values["builds_since_failure"] == 0


# -- import ----------------------------------------------------------------

def test_import_csv_reports_unknown_commits_and_skipped(project: Repo, db: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    shas = project.git("rev-list", "--reverse", "HEAD").split()
    rows = ["commit,status,branch,started_at,duration_s"]
    rows += [f"{sha},{'failed' if i % 2 else 'passed'},main,2024-01-0{i + 1} 10:00:00,30" for i, sha in enumerate(shas)]
    rows += ["0123456789abcdef0123456789abcdef01234567,success,main,2024-01-09 10:00:00,30",
             f"{shas[0]},cancelled,main,2024-01-09 11:00:00,1"]
    f = tmp_path / "outcomes.csv"
    f.write_text("\n".join(rows) + "\n")
    code, out, _ = run(["import", str(f), "--format", "csv"], capsys)
    assert code == 0, out
    assert "8 rows read, 7 outcomes recorded (7 new)" in out
    assert "1 status cancelled" in out or "cancelled" in out
    assert "1 outcomes name commits not in this clone (e.g. 0123456789)" in out
    assert "features computed for 6 builds" in out
    assert len(builds(db)) == 7
    code, out, _ = run(["import", str(f), "--format", "csv"], capsys)
    assert "(0 new)" in out and len(builds(db)) == 7


def test_import_malformed_row_writes_nothing(project: Repo, db: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    sha = project.head()
    f = tmp_path / "bad.csv"
    f.write_text(f"commit,status\n{sha},passed\n{sha},exploded\n")
    code, _, err = run(["import", str(f), "--format", "csv"], capsys)
    assert code == 2
    assert err.strip().count("\n") == 0 and f"{f}:3: status" in err and "nothing imported" in err
    assert not db.exists() or builds(db) == []
    code, out, err = run(["import", str(f), "--format", "csv", "--skip-bad"], capsys)
    assert code == 0 and f"{f}:3: status" in err and "1 outcomes recorded" in out


def test_import_github_runs(project: Repo, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sha = project.head()
    runs = [{"headSha": sha, "headBranch": "main", "conclusion": "failure", "createdAt": "2024-03-01T10:00:00Z",
             "updatedAt": "2024-03-01T10:05:00Z", "event": "push", "databaseId": 11},
            {"headSha": sha, "headBranch": "main", "conclusion": "success", "createdAt": "2024-03-01T11:00:00Z",
             "updatedAt": "2024-03-01T11:04:00Z", "event": "push", "databaseId": 12}]
    f = tmp_path / "runs.json"
    f.write_text(json.dumps(runs))
    code, out, _ = run(["import", str(f), "--format", "github"], capsys)
    assert code == 0 and "2 outcomes recorded" in out
    rows = sorted(builds(db), key=lambda b: b.job_id)
    assert [(b.job_id, b.status, b.duration_s, b.flaky) for b in rows] == [("11", "fail", 300.0, True),
                                                                            ("12", "pass", 240.0, False)]


def test_corrupt_store_is_one_line_and_untouched(project: Repo, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"not a database at all" * 50)
    code, _, err = run(["record", "--status", "pass"], capsys)
    assert code == 1 and "left untouched" in err and err.strip().count("\n") == 0
    assert db.read_bytes() == b"not a database at all" * 50


# -- backfill --------------------------------------------------------------

def test_backfill_features_equal_the_hooks_features(history_repo: Repo, tmp_path: Path) -> None:
    """Training-serving skew check: backfill's streaming history answers exactly as the index does."""
    r = history_repo
    r.commit({"lib/a.py": lines(10), "docs/x.md": "x\n"}, "add lib", author="Other <other@example.com>")
    r.commit({"lib/a.py": lines(12), "src/app.py": lines(40)}, "Fix lib", author="Maintainer <maint@example.com>")
    r.commit({".github/workflows/ci.yml": lines(5)}, "ci", author="Other <other@example.com>")
    store = open_store(str(tmp_path / "h.sqlite"))
    repo_id = store.repository_id(r.git("rev-list", "--max-parents=0", "HEAD"))
    stats = backfill_commits(store, repo_id, cwd=str(r.path))
    assert stats.commits_added == 9
    stored = {sha: values for sha, _, _, values in store.commit_features(repo_id)}
    info = git.repo_info(str(r.path))
    for sha in r.git("rev-list", "HEAD").split():
        parents = r.git("rev-list", "--parents", "-n", "1", sha).split()[1:]
        push = PushRange(tip=sha, exclude=tuple(parents[:1]))
        expected = analyze(push, info, Limits(), cwd=str(r.path)).values
        assert stored[sha] == expected, sha
    store.close()


def test_backfill_resumes_and_never_duplicates(history_repo: Repo, tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "h.sqlite"))
    repo_id = store.repository_id("e" * 40)
    first = backfill_commits(store, repo_id, cwd=str(history_repo.path), max_commits=4)
    assert first.commits_added == 4
    second = backfill_commits(store, repo_id, cwd=str(history_repo.path))
    assert second.commits_added == 2 and second.commits_seen == 6
    third = backfill_commits(store, repo_id, cwd=str(history_repo.path))
    assert third.commits_added == 0
    assert len(list(store.commit_features(repo_id))) == 6
    store.close()


def _big_history(path: Path, commits: int) -> Repo:
    """Many commits quickly, through fast-import."""
    repo = make_repo(path)
    parts: list[str] = []
    for i in range(commits):
        message, content = f"change {i}", f"{i}\n"
        parts.append(f"commit refs/heads/main\nmark :{i + 1}\n"
                     f"committer Dev{i % 7} <dev{i % 7}@example.com> {1_600_000_000 + i * 60} +0000\n"
                     f"data {len(message)}\n{message}\n")
        if i:
            parts.append(f"from :{i}\n")
        parts.append(f"M 100644 inline src/m{i % 50}.py\ndata {len(content)}\n{content}\n")
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input="".join(parts).encode(), check=True)
    repo.git("reset", "-q", "--hard", "main")
    return repo


def test_backfill_killed_midway_completes_on_the_next_run(tmp_path: Path) -> None:
    repo = _big_history(tmp_path / "big", 6000)
    db = tmp_path / "h.sqlite"
    env = {**os.environ, "CI_RISK_DB": str(db)}
    proc = subprocess.Popen([CI_RISK, "backfill", "--no-szz"], cwd=repo.path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    stored = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(db, timeout=5) as conn:
                stored = conn.execute("SELECT COUNT(*) FROM commit_features").fetchone()[0]
        except Exception:  # noqa: BLE001 - the file may not exist yet
            stored = 0
        if stored > 0:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert 0 < stored < 6000, f"could not interrupt the backfill mid-way (stored {stored})"
    done = subprocess.run([CI_RISK, "backfill", "--no-szz"], cwd=repo.path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as conn:
        total, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT commit_sha) FROM commit_features").fetchone()
    assert total == distinct == 6000


def test_import_travis_with_a_misspelled_repository_is_a_usage_error(project: Repo, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "builds.csv"
    f.write_text("repo,lang,build_id,commit,pull_req,branch,status,duration_s,started_at,event_type,n_jobs\n"
                 f"owner/real,python,1,{project.head()},,main,passed,60,2020-01-01 10:00:00 UTC,push,1\n")
    code, _, err = run(["import", str(f), "--format", "travis", "--travis-repo", "owner/typo"], capsys)
    assert code == 2 and "no rows for repository 'owner/typo'" in err
    code, out, _ = run(["import", str(f), "--format", "travis", "--travis-repo", "owner/real"], capsys)
    assert code == 0 and "1 outcomes recorded" in out


# -- which store a command uses ---------------------------------------------------------

def test_commands_follow_the_repositorys_store_and_only_recording_repoints_it(
        history_repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Reading (history, train, backtest, report) with the default store or another CI_RISK_DB must not take the
    hook's build history away; without --db or CI_RISK_DB a command reads the store the repository records into."""
    monkeypatch.chdir(history_repo.path)
    own = tmp_path / "own" / "history.sqlite"
    assert run(["record", "--status", "fail", "--db", str(own)], capsys)[0] == 0
    pointer = history_repo.path / ".git" / "ci-risk" / "store"
    before = pointer.read_bytes()
    assert before.decode().strip() == str(own)

    code, out, _ = run(["history"], capsys)  # no --db, no CI_RISK_DB: the recorded store, not the default one
    assert code == 0 and re.search(r"total\s+1\b", out), out
    assert pointer.read_bytes() == before
    assert run(["backtest"], capsys)[0] == 1  # too little history, said in one line; still a read
    assert pointer.read_bytes() == before

    other = tmp_path / "other" / "history.sqlite"
    monkeypatch.setenv("CI_RISK_DB", str(other))
    code, out, _ = run(["history", "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["builds"] == []
    assert pointer.read_bytes() == before, "reading another store repointed the hook"

    assert run(["record", "--status", "pass"], capsys)[0] == 0  # recording elsewhere says so
    assert pointer.read_text().strip() == str(other)
