"""A store that cannot be written: read-only file or directory, a full disk, an unwritable home.

Each is one line and a documented exit code, never a traceback; what was
stored stays; reads keep working where the data can be read.

Root ignores file modes, so for root (CI runs as root) "read-only" is the
immutable flag (`chattr +i`), which stops root too; a user gets `chmod a-w`.
"Full" is SQLite's own SQLITE_FULL, raised by capping the connection's pages
(`PRAGMA max_page_count`), which behaves as a full disk does for SQLite.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from ci_risk_hook.outcomes import store as store_module
from ci_risk_hook.outcomes.store import Store, open_store
from testing.repos import Repo, lines
from testing.repos import run_cli as run


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make a file or directory unwritable for this process, root included, and writable again after."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    try:
        flagged = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    except FileNotFoundError:
        flagged = False
    if not flagged:
        pytest.skip("running as root without the immutable flag (chattr) here: cannot make a path read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def one_line_error(err: str) -> str:
    assert "Traceback" not in err, err
    assert err.strip().count("\n") == 0, f"expected one line, got {err!r}"
    return err.strip()


def build_rows(db: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT commit_sha, status, job_id FROM builds ORDER BY id").fetchall()


def csv_file(tmp_path: Path, shas: list[str], rows: int) -> Path:
    f = tmp_path / "outcomes.csv"
    f.write_text(
        "commit,status,branch,started_at,job_id\n"
        + "".join(
            f"{shas[i % len(shas)]},{'failed' if i % 5 == 0 else 'passed'},main,{1_700_000_000 + 60 * i},{i}\n"
            for i in range(rows)
        )
    )
    return f


# -- read-only ---------------------------------------------------------------


def test_a_read_only_store_file_is_still_read_and_a_write_is_one_line(
    project: Repo, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["record", "--status", "fail"], capsys)[0] == 0
    before = build_rows(db)
    project.commit({"src/app.py": lines(80)}, "next")
    with read_only(db):
        code, _, err = run(["record", "--status", "pass"], capsys)
        assert code == 1
        assert "read-only" in one_line_error(err) and "nothing recorded" in err
        code, out, err = run(["history", "--format", "json"], capsys)
        assert code == 0, err
        assert [b["status"] for b in json.loads(out)["builds"]] == ["fail"]
    assert build_rows(db) == before


def test_a_read_only_store_directory_still_allows_reads(
    project: Repo, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLite's WAL mode needs a -shm file beside the store: in a read-only directory it cannot be made."""
    assert run(["record", "--status", "fail"], capsys)[0] == 0
    project.commit({"src/app.py": lines(90)}, "the change being pushed")
    assert not (db.parent / "history.sqlite-shm").exists(), "the last writer removed its WAL files"
    with read_only(db.parent):
        code, out, err = run(["history"], capsys)
        assert code == 0, err
        assert "record    fail" in out and "total" in out
        code, out, err = run(["check", "--from", "HEAD~1", "--format", "json"], capsys)  # the hook's own path
        assert code == 0, err
        report = json.loads(out)["ranges"][0]
        assert report["features"]["prev_build_failed"] == 1.0
        assert "notes" in report and not any("build history unavailable" in note for note in report["notes"]), report
        code, _, err = run(["record", "--status", "pass"], capsys)
        assert code == 1 and "read-only" in one_line_error(err)
    assert [row[1] for row in build_rows(db)] == ["fail"]


def test_a_reader_never_migrates_or_writes_the_store(
    project: Repo, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The hook opens the store read-only: no schema upgrade (an index on a big table) inside a push."""
    assert run(["record", "--status", "fail"], capsys)[0] == 0
    with contextlib.closing(sqlite3.connect(db)) as conn:  # as an older ci-risk left it: schema 1
        conn.execute("DELETE FROM schema_migrations WHERE version > 1")
        conn.execute("DROP INDEX builds_repo_branch_order")
        conn.commit()
    reader = open_store(str(db), create=False)
    try:
        assert reader.read_only and reader.schema_version() == 1
        assert (
            len(
                reader.prior_builds(
                    reader.find_repository(project.git("rev-list", "--max-parents=0", "HEAD")) or 0, 2**40, "main"
                )
            )
            == 1
        )
    finally:
        reader.close()
    assert open_store(str(db)).schema_version() == store_module.SCHEMA_VERSION  # a writer upgrades it


# -- full ----------------------------------------------------------------------


def cap_pages(patch: pytest.MonkeyPatch, extra_pages: int) -> None:
    """Every store opened from now on may grow by `extra_pages` pages at most, as on a nearly full disk."""
    original = store_module._open_sqlite

    def capped(path: str, *args: Any, **kwargs: Any) -> Store:
        opened = original(path, *args, **kwargs)
        pages = opened.execute("PRAGMA page_count").fetchone()[0]
        opened.execute(f"PRAGMA max_page_count = {pages + extra_pages}")
        return opened

    patch.setattr(store_module, "_open_sqlite", capped)


def test_a_full_store_is_one_line_and_nothing_is_imported(
    project: Repo, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["record", "--status", "pass"], capsys)[0] == 0
    before = build_rows(db)
    shas = project.git("rev-list", "HEAD").split()
    f = csv_file(tmp_path, shas, 3000)
    with pytest.MonkeyPatch.context() as full:
        cap_pages(full, 5)
        code, out, err = run(["import", str(f), "--format", "csv"], capsys)
    assert code == 1
    assert "database or disk is full" in one_line_error(err) and "nothing imported" in err
    assert build_rows(db) == before


def test_a_store_that_fills_up_during_features_keeps_the_outcomes_and_resumes(
    project: Repo, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shas = project.git("rev-list", "HEAD").split()
    f = csv_file(tmp_path, shas, 1500)
    original = Store.set_build_features
    calls = {"n": 0}

    def fills_up(self: Store, rows: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the disk is full from the second batch of features on
            pages = self.execute("PRAGMA page_count").fetchone()[0]
            self.execute(f"PRAGMA max_page_count = {pages}")
        original(self, rows)

    with pytest.MonkeyPatch.context() as full:
        full.setattr(Store, "set_build_features", fills_up)
        code, out, err = run(["import", str(f), "--format", "csv"], capsys)
    assert code == 1
    assert "1,500 outcomes recorded" in out
    assert "database or disk is full" in one_line_error(err) and "ci-risk backfill" in err
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM builds").fetchone()[0] == 1500
        kept = conn.execute("SELECT COUNT(*) FROM build_features").fetchone()[0]
    assert 0 < kept < 1500, "the first batch of features was written before the disk filled up"
    code, out, err = run(["backfill", "--no-szz"], capsys)
    assert code == 0, err
    assert f"features computed for {1500 - kept:,} recorded builds" in out
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM build_features").fetchone()[0] == 1500


# -- unwritable home -----------------------------------------------------------


def test_an_unwritable_home_is_one_line(
    history_repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A home whose parent is a regular file: no one can create it, root included."""
    monkeypatch.chdir(history_repo.path)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file\n")
    monkeypatch.setenv("CI_RISK_HOME", str(blocker / "ci-risk"))
    f = csv_file(tmp_path, [history_repo.head()], 3)
    for args in (["record", "--status", "pass"], ["import", str(f), "--format", "csv"]):
        code, _, err = run(args, capsys)
        assert code == 1, args
        assert f"{blocker / 'ci-risk' / 'history.sqlite'}: cannot create its directory" in one_line_error(err)
    code, _, err = run(["history"], capsys)  # a reader creates nothing: there is no store to read
    assert code == 1 and f"{blocker / 'ci-risk' / 'history.sqlite'}: no history store there" in one_line_error(err)
    code, out, err = run(["check", "--from", "HEAD~1"], capsys)  # the push path needs no home
    assert code == 0 and out.startswith("ci-risk: risk"), err
    assert blocker.read_text() == "a file\n"


def test_a_real_push_reads_build_history_from_a_read_only_store_directory(
    project: Repo, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ci_risk = str(Path(sys.executable).parent / "ci-risk")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    project.git("remote", "add", "origin", str(remote))
    project.git("push", "-q", "--no-verify", "-u", "origin", "main")
    assert subprocess.run([ci_risk, "install"], cwd=project.path, capture_output=True).returncode == 0
    assert run(["record", "--status", "fail"], capsys)[0] == 0
    project.commit({"src/app.py": lines(95)}, "the change being pushed")
    with read_only(db.parent):
        pushed = subprocess.run(["git", "push", "origin", "main"], cwd=project.path, capture_output=True, text=True)
    output = pushed.stdout + pushed.stderr
    assert pushed.returncode == 0, output
    assert "ci-risk: risk" in output and "build history unavailable" not in output and "warning" not in output


def test_a_read_only_directory_with_a_writer_still_at_work_shows_its_latest_outcomes(tmp_path: Path) -> None:
    """Outcomes still in the -wal file (not yet copied into the store) are read, not skipped."""
    from ci_risk_hook.outcomes.records import BuildRecord

    path = tmp_path / "store" / "history.sqlite"
    writer = open_store(str(path))
    try:
        repo_id = writer.repository_id("a" * 40)
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.add_builds(repo_id, [BuildRecord("b" * 40, "fail", "csv", started_at=5)])
        assert (tmp_path / "store" / "history.sqlite-wal").stat().st_size > 0
        with read_only(path.parent):
            reader = open_store(str(path), create=False)
            try:
                assert reader.read_only and [b.status for b in reader.builds(repo_id)] == ["fail"]
            finally:
                reader.close()
    finally:
        writer.close()


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
@pytest.mark.parametrize(
    "command",
    [["record", "--status", "pass"], ["import", "outcomes.csv", "--format", "csv"], ["backfill"]],
    ids=" ".join,
)
def test_a_store_path_that_is_no_regular_file_is_one_line_for_a_writer_instead_of_a_hang(
    project: Repo, tmp_path: Path, kind: str, command: list[str]
) -> None:
    """SQLite opening a FIFO waits for a writer at its other end: `record --db FIFO` never returned."""
    where = tmp_path / "not-a-store"
    if kind == "fifo":
        os.mkfifo(where)
    elif kind == "device":
        where.symlink_to(os.devnull)
    else:
        where.mkdir()
    (project.path / "outcomes.csv").write_text(f"commit,status\n{project.head()},pass\n")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ci-risk"), *command, "--db", str(where)],
        cwd=project.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert one_line_error(done.stderr) == (
        f"Error: {where} is not a regular file (a directory, FIFO or device): not a history store"
    )
