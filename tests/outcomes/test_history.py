"""Outcomes flowing in (record, run, import, backfill) and back out as build-history features."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ci_risk_hook.features.analysis import analyze
from ci_risk_hook.features.extract import FEATURE_NAMES, Limits, store_features
from ci_risk_hook.git import repo as git
from ci_risk_hook.git.ranges import PushRange
from ci_risk_hook.mining.backfill import SCHEMA_VERSION, backfill_commits
from ci_risk_hook.outcomes.store import PriorBuild, Store, open_store
from testing.postgres import fresh_schema
from testing.repos import Repo, lines, make_repo
from testing.repos import run_cli as run

CI_RISK = str(Path(sys.executable).parent / "ci-risk")


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
    history = [
        prior("main", True, 0),
        prior("main", False, 100),
        prior("dev", True, 150, files=("g.py",)),
        prior("main", False, 200, author="b@x"),
        prior("main", True, 300, files=("g.py",)),
        prior("main", False, 400),
    ]
    v = store_features(history, "main", ["f.py"], "a@x", now=400 + 7200)
    assert v["prev_build_failed"] == 0.0
    assert v["fail_rate_last5"] == pytest.approx(2 / 5)  # main: fail, pass, pass, fail, pass
    assert v["fail_rate_last20"] == pytest.approx(2 / 5)
    assert v["builds_since_failure"] == 1
    assert v["hours_since_prev_build"] == pytest.approx(2.0)
    assert v["touched_files_fail_rate"] == pytest.approx(1 / 4)  # four earlier builds touched f.py
    assert v["author_fail_rate"] == pytest.approx(3 / 5)  # a@x: 0 (fail), 100, 150 (fail), 300 (fail), 400
    assert v["prev_any_failed"] == 0.0 and v["fail_rate_any_last5"] == pytest.approx(2 / 5)  # 100..400, any branch


def test_a_run_of_failures_and_the_push_that_returns_to_their_files() -> None:
    history = [
        prior("main", False, 0),
        prior("main", True, 100, files=("a.py", "b.py")),
        prior("dev", False, 150, files=("a.py",)),
        prior("main", True, 200, files=("a.py", "c.py")),
    ]
    v = store_features(history, "main", ["a.py", "z.py"], "a@x", now=200 + 3 * 3600)
    assert v["fail_streak"] == 2.0  # the two latest builds on main failed; dev's pass does not end the run
    assert v["hours_since_failure"] == pytest.approx(3.0)
    assert v["fixes_last_failure"] == pytest.approx(1 / 2)  # a.py of the latest failure's a.py and c.py


def test_after_a_pass_the_streak_is_zero_and_the_last_failure_is_still_known() -> None:
    history = [prior("main", True, 0, files=("a.py",)), prior("main", False, 3600)]
    v = store_features(history, "main", ["b.py"], "a@x", now=7200)
    assert v["fail_streak"] == 0.0 and v["hours_since_failure"] == pytest.approx(2.0)
    assert v["fixes_last_failure"] == 0.0
    never = store_features([prior("main", False, 0)], "main", ["a.py"], "a@x", now=100)
    assert never["fail_streak"] == 0.0 and never["hours_since_failure"] is None and never["fixes_last_failure"] is None


def test_a_new_branch_still_sees_the_repositorys_latest_builds() -> None:
    v = store_features([prior("main", False, 0), prior("main", True, 100)], "feature-x", ["f.py"], "a@x", now=500)
    assert v["prev_build_failed"] is None  # nothing on this branch yet
    assert v["prev_any_failed"] == 1.0 and v["fail_rate_any_last5"] == pytest.approx(1 / 2)


def test_store_features_are_unknown_without_history() -> None:
    v = store_features([prior("dev", True, 0)], "main", ["x.py"], "nobody@x", now=100)
    assert v["prev_build_failed"] is None and v["fail_rate_last5"] is None
    assert v["touched_files_fail_rate"] is None and v["author_fail_rate"] is None


# -- record and run --------------------------------------------------------


def test_record_is_idempotent_and_computes_features(
    project: Repo, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["record", "--status", "fail"], capsys)
    assert code == 0 and "recorded fail" in out and "(new)" in out
    code, out, _ = run(["record", "--status", "fail"], capsys)
    assert "already recorded" in out
    rows = builds(db)
    assert len(rows) == 1 and rows[0].commit == project.head() and rows[0].branch == "main"
    store = open_store(str(db))
    features = store.build_features(store.execute("SELECT id FROM repositories").fetchone()[0])
    store.close()
    ((author, files, values),) = features.values()
    assert author == "maint@example.com" and files == ["src/app.py", "tests/test_app.py"]
    assert list(values) == list(FEATURE_NAMES)


def test_record_rerun_from_ci_marks_flaky(
    project: Repo, db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "1")
    run(["record", "--status", "fail"], capsys)
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "2")
    run(["record", "--status", "pass"], capsys)
    code, out, _ = run(["history"], capsys)
    assert code == 0 and "(flaky)" in out
    assert {(b.attempt, b.status, b.flaky, b.job_id) for b in builds(db)} == {
        (1, "fail", True, "4242"),
        (2, "pass", False, "4242"),
    }


def test_record_unknown_commit_is_an_error(project: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["record", "--status", "pass", "--commit", "deadbeef" * 5], capsys)
    assert code == 1 and "not a commit" in err


def test_run_streams_output_records_and_keeps_the_exit_code(project: Repo, db: Path) -> None:
    ok = subprocess.run(
        [CI_RISK, "run", "--", sys.executable, "-c", "print('tests: 3 passed')"], capture_output=True, text=True
    )
    assert ok.returncode == 0 and ok.stdout == "tests: 3 passed\n"
    project.commit({"src/app.py": lines(99)}, "break it")
    bad = subprocess.run(
        [CI_RISK, "run", "--", sys.executable, "-c", "import sys; print('1 failed'); sys.exit(3)"],
        capture_output=True,
        text=True,
    )
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


# -- where the push goes ---------------------------------------------------


def test_check_says_whether_the_push_goes_to_the_mainline(project: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    def mainline(*args: str) -> object:
        code, out, _ = run(["check", "--from", "HEAD~1", "--format", "json", *args], capsys)
        assert code == 0, out
        return json.loads(out)["ranges"][0]["features"]["branch_mainline"]

    project.commit({"src/app.py": lines(70)}, "on main")
    assert mainline() == 1.0  # no outcome recorded: the push feature is known anyway
    project.git("checkout", "-q", "-b", "feature/login")
    project.commit({"src/app.py": lines(75)}, "on a side branch")
    assert mainline() == 0.0
    assert mainline("--branch", "master") == 1.0  # the branch CI builds, as --branch names it
    project.git("checkout", "-q", "--detach")
    assert mainline() is None  # a detached HEAD goes to no known branch


def test_a_recorded_builds_branch_reaches_the_table_without_being_stored(
    project: Repo, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ci_risk_hook.model.dataset import ci_table

    assert run(["record", "--status", "fail", "--branch", "main"], capsys)[0] == 0
    project.git("checkout", "-q", "-b", "topic")
    project.commit({"src/app.py": lines(75)}, "on a side branch")
    assert run(["record", "--status", "pass", "--branch", "topic"], capsys)[0] == 0
    store = open_store(str(db))
    try:
        repo_id = store.execute("SELECT id FROM repositories").fetchone()[0]
        stored = [values for _, _, values in store.build_features(repo_id).values()]
        table = ci_table(store, repo_id)
    finally:
        store.close()
    # Computed when the table is read, from the build's branch: stores made before it existed need no backfill.
    assert all(values.get("branch_mainline") is None for values in stored)
    assert list(table.X[:, FEATURE_NAMES.index("branch_mainline")]) == [1.0, 0.0]


def test_stored_features_of_the_previous_release_stay_current() -> None:
    # Stores written since issue 12 hold features under this version; a new push feature must not make
    # every user's stored features stale (a full recomputation on the next backfill).
    assert SCHEMA_VERSION == "features-v2:50"


# -- import ----------------------------------------------------------------


def test_import_csv_reports_unknown_commits_and_skipped(
    project: Repo, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shas = project.git("rev-list", "--reverse", "HEAD").split()
    rows = ["commit,status,branch,started_at,duration_s"]
    rows += [f"{sha},{'failed' if i % 2 else 'passed'},main,2024-01-0{i + 1} 10:00:00,30" for i, sha in enumerate(shas)]
    rows += [
        "0123456789abcdef0123456789abcdef01234567,success,main,2024-01-09 10:00:00,30",
        f"{shas[0]},cancelled,main,2024-01-09 11:00:00,1",
    ]
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


def test_import_malformed_row_writes_nothing(
    project: Repo, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
    runs = [
        {
            "headSha": sha,
            "headBranch": "main",
            "conclusion": "failure",
            "createdAt": "2024-03-01T10:00:00Z",
            "updatedAt": "2024-03-01T10:05:00Z",
            "event": "push",
            "databaseId": 11,
        },
        {
            "headSha": sha,
            "headBranch": "main",
            "conclusion": "success",
            "createdAt": "2024-03-01T11:00:00Z",
            "updatedAt": "2024-03-01T11:04:00Z",
            "event": "push",
            "databaseId": 12,
        },
    ]
    f = tmp_path / "runs.json"
    f.write_text(json.dumps(runs))
    code, out, _ = run(["import", str(f), "--format", "github"], capsys)
    assert code == 0 and "2 outcomes recorded" in out
    rows = sorted(builds(db), key=lambda b: b.job_id)
    assert [(b.job_id, b.status, b.duration_s, b.flaky) for b in rows] == [
        ("11", "fail", 300.0, True),
        ("12", "pass", 240.0, False),
    ]


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


def _store_old_features(store: Store, stale: str) -> None:
    """Mark every stored feature row as computed by an older ci-risk, with values that are wrong now."""
    execute = store.execute
    with store.transaction():
        execute("UPDATE commit_features SET schema_version = ?, features = ?", (stale, json.dumps({"nf": -1.0})))
        execute("UPDATE build_features SET schema_version = ?, features = ?", (stale, json.dumps({"nf": -1.0})))


def _assert_current(store: Store, repo_id: int) -> None:
    execute = store.execute
    versions = {r[0] for r in execute("SELECT schema_version FROM commit_features").fetchall()}
    versions |= {r[0] for r in execute("SELECT schema_version FROM build_features").fetchall()}
    assert versions == {SCHEMA_VERSION}
    assert all(values["nf"] != -1.0 for _, _, _, values in store.commit_features(repo_id))


def test_backfill_recomputes_features_stored_by_an_older_schema(
    project: Repo, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["record", "--status", "fail"], capsys)[0] == 0
    assert run(["backfill", "--no-szz"], capsys)[0] == 0
    store = open_store(str(db))
    repo_id = store.execute("SELECT id FROM repositories").fetchone()[0]
    _store_old_features(store, "features-v1:" + str(len(FEATURE_NAMES)))
    store.close()
    code, out, _ = run(["backfill", "--no-szz"], capsys)
    assert code == 0 and "features stored for 6 new" in out and "features computed for 1 recorded builds" in out, out
    store = open_store(str(db))
    _assert_current(store, repo_id)
    assert list(store.build_features(repo_id).values())[0][2]["nf"] == 2
    store.close()


def test_backfill_recomputes_older_features_on_postgresql(history_repo: Repo) -> None:
    with fresh_schema() as url:
        store = open_store(url)
        try:
            repo_id = store.repository_id("f" * 40)
            backfill_commits(store, repo_id, cwd=str(history_repo.path))
            _store_old_features(store, "features-v1:0")
            again = backfill_commits(store, repo_id, cwd=str(history_repo.path))
            assert again.commits_added == 6
            _assert_current(store, repo_id)
            assert backfill_commits(store, repo_id, cwd=str(history_repo.path)).commits_added == 0
        finally:
            store.close()


def _big_history(path: Path, commits: int) -> Repo:
    """Many commits quickly, through fast-import."""
    repo = make_repo(path)
    parts: list[str] = []
    for i in range(commits):
        message, content = f"change {i}", f"{i}\n"
        parts.append(
            f"commit refs/heads/main\nmark :{i + 1}\n"
            f"committer Dev{i % 7} <dev{i % 7}@example.com> {1_600_000_000 + i * 60} +0000\n"
            f"data {len(message)}\n{message}\n"
        )
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
    proc = subprocess.Popen(
        [CI_RISK, "backfill", "--no-szz"], cwd=repo.path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
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


def test_import_travis_with_a_misspelled_repository_is_a_usage_error(
    project: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "builds.csv"
    f.write_text(
        "repo,lang,build_id,commit,pull_req,branch,status,duration_s,started_at,event_type,n_jobs\n"
        f"owner/real,python,1,{project.head()},,main,passed,60,2020-01-01 10:00:00 UTC,push,1\n"
    )
    code, _, err = run(["import", str(f), "--format", "travis", "--travis-repo", "owner/typo"], capsys)
    assert code == 2 and "no rows for repository 'owner/typo'" in err
    code, out, _ = run(["import", str(f), "--format", "travis", "--travis-repo", "owner/real"], capsys)
    assert code == 0 and "1 outcomes recorded" in out


# -- bad values from CI's environment and from import files --------------------


@pytest.mark.parametrize("attempt", ["abc", "1.5", "\u00b2", "0", "99999999999999999999999"])
def test_a_ci_attempt_that_is_not_a_number_is_one_line_and_records_nothing(
    project: Repo, db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, attempt: str
) -> None:
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", attempt)
    code, _, err = run(["record", "--status", "pass"], capsys)
    assert code == 2 and "Traceback" not in err and err.strip().count("\n") == 0
    assert "GITHUB_RUN_ATTEMPT" in err and "nothing recorded" in err
    assert not db.exists() or builds(db) == []
    code, out, _ = run(["record", "--status", "pass", "--attempt", "2"], capsys)  # the option wins over the variable
    assert code == 0 and [(b.job_id, b.attempt) for b in builds(db)] == [("4242", 2)]


def test_a_ci_job_id_is_any_text_and_run_keeps_the_commands_exit_code(
    project: Repo, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "BUILD_ID": " 2024-05-01_10-00-00 "}  # Jenkins' old ids are dates
    ok = subprocess.run([CI_RISK, "record", "--status", "pass"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert [b.job_id for b in builds(db)] == ["2024-05-01_10-00-00"]
    env = {**os.environ, "GITHUB_RUN_ID": "7", "GITHUB_RUN_ATTEMPT": "second"}
    failing = subprocess.run(
        [CI_RISK, "run", "--", sys.executable, "-c", "raise SystemExit(4)"], capture_output=True, text=True, env=env
    )
    assert failing.returncode == 4
    assert "outcome not recorded: GITHUB_RUN_ATTEMPT: not a whole number" in failing.stderr
    assert "Traceback" not in failing.stderr and len(builds(db)) == 1


def _json_export(fmt: str, sha: str, **change: object) -> str:
    if fmt == "github":
        item: dict[str, object] = {
            "headSha": sha,
            "headBranch": "main",
            "conclusion": "success",
            "event": "push",
            "createdAt": "2024-03-01T10:00:00Z",
            "updatedAt": "2024-03-01T10:05:00Z",
            "databaseId": 1,
        }
    else:
        item = {
            "id": 1,
            "sha": sha,
            "ref": "main",
            "status": "success",
            "source": "push",
            "started_at": "2024-03-01T10:00:00Z",
            "finished_at": "2024-03-01T10:05:00Z",
            "duration": 300,
        }
    item.update(change)
    return json.dumps([item], allow_nan=True)


HUGE = 10**400  # json.dumps writes every digit


@pytest.mark.parametrize(
    "fmt, make, where",
    [
        (
            "csv",
            lambda sha: f"commit,status,attempt\n{sha},passed,100000000000000000000000\n",
            ":2: attempt: out of range",
        ),
        (
            "csv",
            lambda sha: f"commit,status,started_at\n{sha},passed,10000000000000000000\n",
            ":2: started_at: out of range",
        ),
        ("csv", lambda sha: f"commit,status,started_at\n{sha},passed,1714560000000\n", ":2: started_at: out of range"),
        (
            "csv",
            lambda sha: f"commit,status,started_at,duration_s\n{sha},passed,1000,1e300\n",
            ":2: duration_s: out of range",
        ),
        ("csv", lambda sha: f"commit,status,duration_s\n{sha},passed,inf\n", ":2: duration_s: not a number"),
        ("csv", lambda sha: f"commit,status,duration_s\n{sha},passed,NaN\n", ":2: duration_s: not a number"),
        ("csv", lambda sha: f"commit,status,duration_s\n{sha},passed,-60\n", ":2: duration_s: negative"),
        (
            "github",
            lambda sha: _json_export("github", sha, createdAt="10000000000000000000"),
            ":item 1: createdAt: out of range",
        ),
        ("github", lambda sha: _json_export("github", sha, attempt=10**23), ":item 1: attempt: out of range"),
        ("gitlab", lambda sha: _json_export("gitlab", sha, duration=1e300), ":item 1: duration: out of range"),
        ("gitlab", lambda sha: _json_export("gitlab", sha, duration=HUGE), ":item 1: duration: out of range"),
        (
            "gitlab",
            lambda sha: _json_export("gitlab", sha, duration=float("nan")),
            ":item 1: duration: expected a number",
        ),
        (
            "gitlab",
            lambda sha: _json_export("gitlab", sha, duration=-1),
            ":item 1: duration: expected a number of seconds >= 0",
        ),
        (
            "gitlab",
            lambda sha: _json_export("gitlab", sha, started_at="0001-01-01T00:00:00+01:00"),
            ":item 1: started_at: out of range",
        ),
        (
            "travis",
            lambda sha: (
                "repo,build_id,commit,pull_req,branch,status,duration_s,started_at,event_type\n"
                f"o/r,1,{sha},,main,passed,1e300,2024-01-01 00:00:00 UTC,push\n"
            ),
            ":2: duration_s: out of range",
        ),
        (
            "travis",
            lambda sha: (
                "repo,build_id,commit,pull_req,branch,status,duration_s,started_at,event_type\n"
                f"o/r,1,{sha},,main,passed,60,10000000000000000000,push\n"
            ),
            ":2: started_at: out of range",
        ),
    ],
)
def test_out_of_range_numbers_in_an_import_are_one_line_and_write_nothing(
    project: Repo, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, make: object, where: str
) -> None:
    f = tmp_path / f"export.{'json' if fmt in ('github', 'gitlab') else 'csv'}"
    f.write_text(make(project.head()))  # type: ignore[operator]
    code, _, err = run(["import", str(f), "--format", fmt], capsys)
    assert code == 2, err
    assert "Traceback" not in err and err.strip().count("\n") == 0
    assert f"{f}{where}" in err and "nothing imported" in err
    assert not db.exists(), "a bad file is refused before the store is touched"


# -- large imports: batches, one transaction, bounded memory, progress -------------


def test_an_import_in_many_batches_is_still_one_transaction(
    project: Repo, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ci_risk_hook.outcomes import record as capture

    monkeypatch.setattr(capture, "BATCH_ROWS", 7)
    shas = project.git("rev-list", "HEAD").split()
    good = [
        f"{shas[i % len(shas)]},{'failed' if i % 4 == 0 else 'passed'},main,{1_700_000_000 + i},{i}" for i in range(60)
    ]
    f = tmp_path / "outcomes.csv"
    f.write_text(
        "commit,status,branch,started_at,job_id\n" + "\n".join(good + [f"{shas[0]},passed,main,soon,60"]) + "\n"
    )
    code, _, err = run(["import", str(f), "--format", "csv"], capsys)
    assert code == 2 and f"{f}:62: started_at: not a time" in err
    assert builds(db) == [], "the batches stored before the bad row were rolled back"
    f.write_text("commit,status,branch,started_at,job_id\n" + "\n".join(good) + "\n")
    code, out, err = run(["import", str(f), "--format", "csv"], capsys)
    assert code == 0, err
    assert "60 outcomes recorded (60 new)" in out and "features computed for 60 builds" in out
    stored = builds(db)
    assert len(stored) == 60
    # every commit failed in one batch and passed in another: each failure is flaky
    assert all(b.flaky for b in stored if b.status == "fail") and not any(b.flaky for b in stored if b.status == "pass")


def test_build_features_page_through_the_builds_and_follow_the_branch(history_repo: Repo, tmp_path: Path) -> None:
    """A build's range starts at the previous known build's commit on its branch, else at its first parent."""
    from ci_risk_hook.outcomes.record import Target, compute_build_features
    from ci_risk_hook.outcomes.records import BuildRecord

    r = history_repo
    c = r.git("rev-list", "--reverse", "HEAD").split()  # c[0] .. c[5]
    store = open_store(str(tmp_path / "h.sqlite"))
    target = Target(store, store.repository_id(c[0]), git.repo_info(str(r.path)))

    def record(sha: str, t: int, branch: str | None = "main") -> BuildRecord:
        return BuildRecord(sha, "pass", "csv", branch=branch, started_at=t, job_id=str(t))

    plan = [
        record(c[1], 10),
        record(c[1], 20),
        record(c[4], 30),
        record(c[3], 40, branch="dev"),
        record("f" * 40, 50),
        record(c[5], 60),
        record(c[2], 70, branch=None),
        record(c[3], 80, branch=None),
    ]
    store.add_builds(target.repo_id, plan, [rec.commit != "f" * 40 for rec in plan])
    seen: list[tuple[int, int]] = []
    assert (
        compute_build_features(target, str(r.path), batch=3, progress=lambda done, total: seen.append((done, total)))
        == 7
    )
    features = store.build_features(target.repo_id)
    commits_in_range = {
        b.started_at: features[b.id][2]["n_commits"] if b.id in features else None for b in store.builds(target.repo_id)
    }
    assert commits_in_range == {
        10: 1,  # first build: c0..c1
        20: 1,  # the same commit again: its first parent, not an empty range
        30: 3,  # c1..c4
        40: 1,  # first on dev
        50: None,  # a commit this clone lacks: no features, and not anyone's previous build
        60: 1,  # c4..c5, past the unknown commit
        70: 1,  # no branch: first of its kind
        80: 1,  # c2..c3 on the same (missing) branch
    }
    assert seen == [(3, 7), (6, 7), (7, 7)]
    store.close()


def test_import_prints_progress_lines_off_a_terminal(
    project: Repo, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ci_risk_hook import progress
    from ci_risk_hook.outcomes import record as capture

    monkeypatch.setattr(progress, "EVERY_S", 0.0)  # a line at every step instead of every few seconds
    monkeypatch.setattr(capture, "BATCH_ROWS", 10)
    monkeypatch.setattr(capture, "FEATURE_BATCH", 10)
    sha = project.head()
    f = tmp_path / "outcomes.csv"
    f.write_text("commit,status,job_id\n" + "".join(f"{sha},passed,{i}\n" for i in range(25)))
    code, out, err = run(["import", str(f), "--format", "csv"], capsys)
    assert code == 0, err
    lines_ = err.splitlines()
    assert "\r" not in err and "\x1b" not in err, "plain lines off a terminal"
    assert [line.split(",")[0] for line in lines_ if "reading outcomes" in line] == [
        "ci-risk: reading outcomes: 10 rows",
        "ci-risk: reading outcomes: 20 rows",
        "ci-risk: reading outcomes: 25 rows",
    ]
    assert [line.split(" (")[0] for line in lines_ if "computing features" in line] == [
        "ci-risk: computing features: 10 of 25 builds",
        "ci-risk: computing features: 20 of 25 builds",
        "ci-risk: computing features: 25 of 25 builds",
    ]


# -- which store a command uses ---------------------------------------------------------


def test_commands_follow_the_repositorys_store_and_only_recording_repoints_it(
    history_repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
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
    code, _, err = run(["history", "--format", "json"], capsys)  # a store that is not there: refused, not made
    assert code == 1 and "no history store there" in err and not other.exists()
    assert pointer.read_bytes() == before, "reading another store repointed the hook"

    assert run(["record", "--status", "pass"], capsys)[0] == 0  # recording elsewhere says so
    assert pointer.read_text().strip() == str(other)
