"""Predictions recorded by a real `git push` through the hook and by `check --ci`; observation mode.

The store is a real SQLite file or a real PostgreSQL schema; outcomes arrive
afterwards through `ci-risk record`, and `ci-risk monitor` joins the two.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from ci_risk_hook.outcomes import spool as spool_lib
from ci_risk_hook.outcomes.store import Prediction, open_store
from testing.postgres import fresh_schema
from testing.repos import Repo, built_once, lines, make_repo, shallow_clone
from testing.repos import run_cli as run

CI_RISK = str(Path(sys.executable).parent / "ci-risk")
NEWCOMER = "New Person <new@example.com>"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "store" / "history.sqlite")
    else:
        with fresh_schema() as url:
            yield url


@pytest.fixture
def project(tmp_path: Path) -> Repo:
    """A project with history and a bare remote holding main (scored by the bundled model)."""
    repo = make_repo(tmp_path / "project")
    built_once(repo, "recorded project", _seven_commits)
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    repo.git("remote", "add", "origin", str(remote))
    repo.git("push", "-q", "--no-verify", "-u", "origin", "main")
    return repo


def _seven_commits(repo: Repo) -> None:
    repo.commit({"src/app.py": lines(50), "README.md": "# app\n"}, "initial import")
    for i in range(6):
        repo.commit({"src/app.py": lines(51 + i), "tests/test_app.py": lines(10 + i, "t")}, f"improve app {i}")


def risky_change(repo: Repo) -> str:
    return repo.commit(
        {".github/workflows/ci.yml": lines(280, "new step"), "requirements.txt": lines(120, "pkg")},
        "rework CI",
        author=NEWCOMER,
    )


def cli(repo: Repo, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CI_RISK, *args], cwd=repo.path, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def push(repo: Repo, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "push", "origin", "main"], cwd=repo.path, capture_output=True, text=True, env={**os.environ, **env}
    )


def predictions(url: str) -> list[tuple]:
    store = open_store(url, create=False)
    try:
        return [
            tuple(r)
            for r in store.execute(
                "SELECT commit_sha, base_sha, branch, score, decision, mode, model_sha256, warn_at, block_at, place, "
                "ci_run, author FROM predictions ORDER BY id"
            ).fetchall()
        ]
    finally:
        store.close()


def test_a_real_push_through_the_hook_records_its_prediction_and_monitor_joins_the_outcome(
    project: Repo, store_url: str
) -> None:
    env = {"CI_RISK_DB": store_url}
    base = project.head()
    assert cli(project, "record", "--status", "pass", "--commit", base, "--branch", "main", env=env).returncode == 0
    assert cli(project, "install").returncode == 0
    tip = risky_change(project)
    expected = json.loads(cli(project, "check", "--format", "json", "--warn-at", "0.01", env=env).stdout)

    pushed = push(project, {**env, "CI_RISK_WARN_AT": "0.01"})
    assert pushed.returncode == 0, pushed.stderr
    assert "risky: this push may fail CI" in pushed.stdout + pushed.stderr

    # The push's own row is spooled (the push waits for no commit of its own) and moved in by the next push's
    # store worker, or by `monitor`; a store that answers after the push scored may take it in at once.
    assert cli(project, "monitor", env=env).returncode == 0
    assert not (project.path / ".git" / "ci-risk" / "predictions-pending.jsonl").exists()
    rows = [r for r in predictions(store_url) if r[9] == "hook"]
    assert len(rows) == 1, predictions(store_url)
    commit, recorded_base, branch, score, decision, mode, sha, warn_at, block_at, place, ci_run, author = rows[0]
    assert (commit, recorded_base, branch, decision, mode, ci_run) == (tip, base, "main", "warn", "warn", "")
    assert score == pytest.approx(expected["ranges"][0]["probability"])
    assert sha == expected["model"]["sha256"] and (warn_at, block_at) == (0.01, expected["block_at"])
    assert author == "new@example.com"

    recorded = cli(project, "record", "--status", "fail", "--commit", tip, "--branch", "main", env=env)
    assert recorded.returncode == 0, recorded.stderr
    shown = cli(project, "monitor", "--format", "json", env=env)
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert summary["joined"] == 1
    window = summary["windows"][0]
    assert (window["builds"], window["failures"]) == (1, 1)
    assert window["model"]["recall"] == 1.0 and window["deferred_failures"] == []
    assert window["overrides"] == {"warned": 1, "warned_failed": 1, "blocked": 0, "blocked_failed": 0}
    assert window["baseline"]["recall"] == 0.0  # the previous build on main passed
    text = cli(project, "monitor", env=env)
    assert "failures caught (recall)" in text.stdout and "pushed after a warning: 1 (failed: 1)" in text.stdout


def test_recording_off_records_nothing(project: Repo, tmp_path: Path) -> None:
    url = str(tmp_path / "store.sqlite")
    assert cli(project, "record", "--status", "pass", "--commit", "HEAD", env={"CI_RISK_DB": url}).returncode == 0
    assert cli(project, "install").returncode == 0
    risky_change(project)
    assert push(project, {"CI_RISK_DB": url, "CI_RISK_RECORD_PREDICTIONS": "false"}).returncode == 0
    assert not (project.path / ".git" / "ci-risk" / "predictions-pending.jsonl").exists()
    assert predictions(url) == []


def test_a_push_never_creates_a_store_to_record_into(project: Repo, tmp_path: Path) -> None:
    url = tmp_path / "absent" / "store.sqlite"
    assert cli(project, "install").returncode == 0
    risky_change(project)
    pushed = push(project, {"CI_RISK_DB": str(url)})
    assert pushed.returncode == 0, pushed.stderr
    assert not url.exists()


def test_check_ci_records_with_the_run_id(
    project: Repo, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = project.head()
    tip = risky_change(project)
    project.git("push", "-q", "--no-verify", "origin", "main")
    monkeypatch.setenv("CI_RISK_DB", store_url)
    monkeypatch.chdir(project.path)
    assert run(["record", "--status", "pass", "--commit", before, "--branch", "main"], capsys)[0] == 0
    clone = shallow_clone(project, tmp_path / "clone", "main")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"before": before, "after": tip}))
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REF_NAME": "main",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_JOB": "gate",
        "GITHUB_REPOSITORY": "owner/project",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(clone.path)
    code, out, err = run(["check", "--ci", "--format", "json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    rows = predictions(store_url)
    assert [(r[0], r[1], r[2], r[9], r[10]) for r in rows] == [(tip, before, "main", "ci", "4242")]
    assert rows[0][3] == pytest.approx(report["ranges"][0]["probability"])
    monkeypatch.chdir(project.path)
    for name in ("GITHUB_ACTIONS", "GITHUB_EVENT_PATH"):
        monkeypatch.delenv(name)
    code, out, err = run(["check", "--from", before, "--to", tip], capsys)  # by hand: recorded as manual
    assert code == 0, err
    assert [r[9] for r in predictions(store_url)] == ["ci", "manual"]


@pytest.mark.parametrize("where", ["hook", "check", "check --ci"])
def test_observe_mode_prints_nothing_exits_0_and_records(
    project: Repo, tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(tmp_path / "store.sqlite")
    env = {"CI_RISK_DB": url, "CI_RISK_MODE": "observe", "CI_RISK_WARN_AT": "0", "CI_RISK_BLOCK_AT": "0"}
    assert cli(project, "record", "--status", "pass", "--commit", "HEAD", env={"CI_RISK_DB": url}).returncode == 0
    before = project.head()
    tip = risky_change(project)
    if where == "hook":
        assert cli(project, "install").returncode == 0
        proc = push(project, env)
        assert project.git("ls-remote", "origin", "refs/heads/main").split()[0] == tip  # never blocked
    elif where == "check":
        proc = cli(project, "check", "--strict", env=env)
    else:
        event = tmp_path / "event.json"
        event.write_text(json.dumps({"before": before, "after": tip}))
        ci = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(event)}
        proc = cli(project, "check", "--ci", "--format", "json", env={**env, **ci, "GITHUB_REF_NAME": "main"})
    assert proc.returncode == 0
    if where != "hook":  # git itself prints its own push lines
        assert (proc.stdout, proc.stderr) == ("", "")
    else:
        assert "ci-risk" not in proc.stdout + proc.stderr
    if where == "hook":
        assert cli(project, "monitor", env={"CI_RISK_DB": url}).returncode == 0  # moves the pending row in
    rows = predictions(url)
    assert [(r[0], r[4], r[5]) for r in rows] == [(tip, "warn", "observe")]  # scored at 0 thresholds: a warning


def test_observe_mode_exits_0_even_when_scoring_fails(project: Repo, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not a model")
    risky_change(project)
    proc = cli(project, "check", "--strict", env={"CI_RISK_MODE": "observe", "CI_RISK_MODEL": str(broken)})
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    loud = cli(project, "check", "--strict", env={"CI_RISK_MODEL": str(broken)})
    assert loud.returncode != 0  # the same failure outside observation mode


def test_observe_mode_is_silent_when_git_fails_or_a_setting_is_bad_even_with_strict(project: Repo) -> None:
    observe = {"CI_RISK_MODE": "observe", "CI_RISK_STRICT": "1"}
    no_git = cli(project, "check", env={**observe, "GIT_DIR": str(project.path / "no-such-git-dir")})
    assert (no_git.returncode, no_git.stdout, no_git.stderr) == (0, "", "")
    tip = project.head()
    hook = subprocess.run(  # a bad setting, in the hook (tolerant): --strict would refuse it, observe does not
        [CI_RISK, "hook", "origin", "x"],
        cwd=project.path,
        input=f"refs/heads/main {tip} refs/heads/main {'0' * 40}\n",
        capture_output=True,
        text=True,
        env={**os.environ, **observe, "CI_RISK_MAX_COMMITS": "many"},
    )
    assert (hook.returncode, hook.stdout, hook.stderr) == (0, "", "")
    loud = cli(project, "check", env={"CI_RISK_STRICT": "1", "GIT_DIR": str(project.path / "no-such-git-dir")})
    assert loud.returncode != 0  # the same failure outside observation mode


def test_a_push_never_upgrades_an_older_store_and_records_once_a_command_has(project: Repo, tmp_path: Path) -> None:
    import sqlite3

    url = tmp_path / "store.sqlite"
    assert cli(project, "record", "--status", "pass", "--commit", "HEAD", env={"CI_RISK_DB": str(url)}).returncode == 0
    with sqlite3.connect(url) as conn:  # as ci-risk before the predictions table left it
        conn.execute("DROP TABLE predictions")
        conn.execute("DELETE FROM schema_migrations WHERE version = 4")
    assert cli(project, "install").returncode == 0
    risky_change(project)
    assert push(project, {"CI_RISK_DB": str(url)}).returncode == 0
    with sqlite3.connect(url) as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone() == (3,)
    assert cli(project, "history", env={"CI_RISK_DB": str(url)}).returncode == 0  # a command upgrades it
    tip = risky_change(project)
    assert push(project, {"CI_RISK_DB": str(url)}).returncode == 0
    assert cli(project, "monitor", env={"CI_RISK_DB": str(url)}).returncode == 0
    assert [r[0] for r in predictions(str(url))][-1] == tip


def test_the_next_push_moves_pending_predictions_into_the_store_once(project: Repo, store_url: str) -> None:
    env = {"CI_RISK_DB": store_url}
    assert cli(project, "record", "--status", "pass", "--commit", "HEAD", "--branch", "main", env=env).returncode == 0
    assert cli(project, "install").returncode == 0
    first = risky_change(project)
    spool = project.path / ".git" / "ci-risk" / "predictions-pending.jsonl"
    row = Prediction(first, None, "main", 0.5, "warn", "warn", "f" * 64, 0.3, 0.8, "hook", "", "new@example.com", 1)
    spool_lib.append(str(project.path / ".git"), [row])  # a push's own row, as the push leaves it
    pending = spool.read_text()
    assert first in pending and predictions(store_url) == []
    # A push that exited in the middle of moving them left its claimed file behind: moved once, not twice.
    (spool.parent / (spool.name + ".999999.moving")).write_text(pending + "torn line\n")
    second = project.commit({"src/app.py": lines(60, "more")}, "more")
    assert push(project, env).returncode == 0
    assert first in [r[0] for r in predictions(store_url)]  # moved in by the next push
    assert cli(project, "monitor", env=env).returncode == 0
    assert [r[0] for r in predictions(store_url)] == [first, second]  # each once
    assert not list(spool.parent.glob("*.moving")) and not spool.exists()


def test_a_store_of_hashed_authors_holds_the_prediction_author_hashed(project: Repo, tmp_path: Path) -> None:
    from ci_risk_hook.outcomes import authors

    key = "k" * 32
    env = {"CI_RISK_DB": str(tmp_path / "store.sqlite"), authors.KEY_ENV: key}
    assert cli(project, "record", "--hash-authors", "--status", "pass", "--commit", "HEAD", env=env).returncode == 0
    before = project.head()
    tip = risky_change(project)
    assert cli(project, "check", "--from", before, "--to", tip, env=env).returncode == 0
    assert cli(project, "install").returncode == 0
    assert push(project, env).returncode == 0
    assert cli(project, "monitor", env=env).returncode == 0
    hashed = authors.hasher(key.encode())("new@example.com")
    assert [(r[9], r[11]) for r in predictions_with_key(env)] == [("manual", hashed), ("hook", hashed)]


def predictions_with_key(env: dict[str, str]) -> list[tuple]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        return predictions(env["CI_RISK_DB"])


def test_hash_authors_without_its_key_keeps_the_build_history_and_records_nothing(
    project: Repo, tmp_path: Path
) -> None:
    url = str(tmp_path / "store.sqlite")
    assert cli(project, "record", "--status", "fail", "--commit", "HEAD", env={"CI_RISK_DB": url}).returncode == 0
    risky_change(project)
    proc = cli(project, "check", "--format", "json", env={"CI_RISK_DB": url, "CI_RISK_HASH_AUTHORS": "1"})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert not any("build history unavailable" in n for r in report["ranges"] for n in r["notes"]), report
    assert predictions(url) == []


GOOD = Prediction("a" * 40, None, "main", 0.5, "warn", "warn", "f" * 64, 0.3, 0.8, "hook", "", None, 1_700_000_000)


@pytest.mark.parametrize(
    "field, value",
    [
        ("score", float("inf")),
        ("score", -0.5),
        ("score", 1e300),
        ("warn_at", float("nan")),
        ("predicted_at", 10**30),
        ("predicted_at", 1.7e9),
        ("commit", "\x1b[31m\u202e<script>alert(1)</script>"),
        ("base", "<b>not a sha</b>"),
        ("decision", "<b>pass</b>"),
        ("mode", "\x1b]0;title\x07"),
        ("model_sha256", "\u202esha"),
        ("place", "elsewhere"),
    ],
)
def test_a_hostile_pending_line_never_reaches_the_store_as_a_prediction(
    tmp_path: Path, field: str, value: object
) -> None:
    common = str(tmp_path / "gitdir")
    spool_lib.append(common, [GOOD])
    path = Path(common) / "ci-risk" / "predictions-pending.jsonl"
    hostile = GOOD._replace(**{field: value})
    with path.open("a") as fh:
        fh.write(json.dumps(list(hostile)) + "\n")
    assert spool_lib.read(spool_lib.claim(common)) == [GOOD]


def test_a_pending_file_that_is_a_symlink_is_neither_written_through_nor_read(tmp_path: Path) -> None:
    common = str(tmp_path / "gitdir")
    path = Path(common) / "ci-risk" / "predictions-pending.jsonl"
    path.parent.mkdir(parents=True)
    victim = tmp_path / "victim.jsonl"
    victim.write_text(json.dumps(list(GOOD)) + "\n")
    path.symlink_to(victim)
    spool_lib.append(common, [GOOD._replace(commit="b" * 40)])
    assert victim.read_text() == json.dumps(list(GOOD)) + "\n"  # the file it points at is untouched
    assert spool_lib.read(spool_lib.claim(common)) == []  # and its rows are not taken for this clone's


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_push_with_a_fifo_in_place_of_the_pending_file_does_not_hang(project: Repo, tmp_path: Path) -> None:
    url = tmp_path / "history.sqlite"
    env = {"CI_RISK_DB": str(url)}
    assert cli(project, "record", "--status", "pass", "--commit", "HEAD", "--branch", "main", env=env).returncode == 0
    assert cli(project, "install").returncode == 0
    spool = project.path / ".git" / "ci-risk" / "predictions-pending.jsonl"
    spool.parent.mkdir(exist_ok=True)
    os.mkfifo(spool)  # nobody ever opens its other end: an append or read that waits for one waits forever
    risky_change(project)
    done = subprocess.run(
        ["git", "push", "origin", "main"],
        cwd=project.path,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,  # a hang guard, not a timing: the push takes about a second
    )
    assert done.returncode in (0, 1), done.stderr
    assert cli(project, "monitor", env=env).returncode == 0  # monitor moves pending files too: it must not wait


def fill_to_the_cap(common_dir: Path) -> Path:
    """A pending file at its cap, as months without a reachable store leave it (its line is no prediction)."""
    spool = common_dir / "ci-risk" / "predictions-pending.jsonl"
    spool.parent.mkdir(parents=True, exist_ok=True)
    spool.write_bytes(b"x" * spool_lib.MAX_BYTES + b"\n")
    return spool


def test_predictions_dropped_at_the_cap_are_counted_and_monitor_says_so_once(project: Repo, tmp_path: Path) -> None:
    env = {"CI_RISK_DB": str(tmp_path / "store.sqlite")}
    assert cli(project, "record", "--status", "pass", "--commit", "HEAD", env=env).returncode == 0
    spool = fill_to_the_cap(project.path / ".git")
    spool_lib.append(str(project.path / ".git"), [GOOD])
    spool_lib.append(str(project.path / ".git"), [GOOD._replace(commit="b" * 40), GOOD._replace(commit="c" * 40)])
    assert spool.stat().st_size == spool_lib.MAX_BYTES + 1  # nothing more written: dropped

    shown = cli(project, "monitor", env=env)
    assert shown.returncode == 0, shown.stderr
    warnings = [line for line in shown.stderr.splitlines() if "could not be kept" in line]
    assert warnings == [
        "ci-risk: warning: 3 predictions of this clone could not be kept for the store (the pending file was over "
        "its 1 MB cap or could not be written) and were not recorded"
    ]
    again = cli(project, "monitor", env=env)
    assert "could not be kept" not in again.stderr  # said once, by the move that took the rows in
    assert not list(spool.parent.glob("predictions-dropped*"))


def test_a_push_whose_prediction_was_dropped_is_named_by_the_next_push(project: Repo, tmp_path: Path) -> None:
    url = tmp_path / "later" / "store.sqlite"
    env = {"CI_RISK_DB": str(url)}
    assert cli(project, "install").returncode == 0
    fill_to_the_cap(project.path / ".git")
    risky_change(project)
    first = push(project, env)  # no store yet: the row goes to the spool, which is full
    assert first.returncode == 0, first.stderr
    assert "could not be kept" not in first.stdout + first.stderr
    assert cli(project, "record", "--status", "pass", "--commit", "HEAD~1", env=env).returncode == 0  # a store now
    project.commit({"src/app.py": lines(70, "more")}, "more")
    second = push(project, env)  # its store worker moves the pending file in and finds the drop
    assert second.returncode == 0, second.stderr
    assert "ci-risk: 1 prediction of this clone could not be kept for the store" in second.stdout + second.stderr


def test_a_directory_in_place_of_the_pending_file_is_left_alone_and_named(project: Repo, tmp_path: Path) -> None:
    env = {"CI_RISK_DB": str(tmp_path / "store.sqlite")}
    assert cli(project, "record", "--status", "pass", "--commit", "HEAD", env=env).returncode == 0
    spool = project.path / ".git" / "ci-risk" / "predictions-pending.jsonl"
    spool.mkdir(parents=True)
    (spool / "someone's.txt").write_text("not ours\n")
    for _ in range(2):
        shown = cli(project, "monitor", env=env)
        assert shown.returncode == 0, shown.stderr
        assert f"ci-risk: warning: {spool} is not a regular file: left alone" in shown.stderr
    assert (spool / "someone's.txt").read_text() == "not ours\n"  # where it was, as it was
    assert not list(spool.parent.glob("*.moving"))


def test_leftover_moving_entries_that_are_no_files_are_cleared_and_files_are_read(tmp_path: Path) -> None:
    common = str(tmp_path / "gitdir")
    spool_lib.append(common, [GOOD])
    spool = Path(common) / "ci-risk" / "predictions-pending.jsonl"
    crashed = spool.parent / (spool.name + ".4242.moving")  # a mover that died after its rename
    spool.rename(crashed)
    (spool.parent / (spool.name + ".4243.moving")).mkdir()  # what an older ci-risk made of a directory
    victim = tmp_path / "victim.jsonl"
    victim.write_text("kept\n")
    (spool.parent / (spool.name + ".4244.moving")).symlink_to(victim)
    full = spool.parent / (spool.name + ".4245.moving")
    full.mkdir()
    (full / "inside").write_text("not ours\n")
    claimed = spool_lib.claim(common)
    assert claimed == [str(crashed)] and spool_lib.read(claimed) == [GOOD]
    assert sorted(p.name for p in spool.parent.iterdir()) == [crashed.name, full.name]  # the link, not its target
    assert victim.read_text() == "kept\n"
    notes: list[str] = []
    spool_lib.claim(common, notes=notes)
    assert notes == [f"{full} is not a regular file and could not be removed: left alone, remove it"]
