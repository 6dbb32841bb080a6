"""A push never waits long for ci-risk's own data, and says plainly why history is unknown.

The history index gets a time budget on the push path and is finished by one
detached builder; the outcomes store gets a budget too; an unusable index
directory is named as the cause, not mistaken for a shallow clone. Real
repositories, real pushes through the installed hook, real processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from ci_risk_hook import paths
from ci_risk_hook.features.analysis import analyze
from ci_risk_hook.features.extract import Limits
from ci_risk_hook.features.history_index import BuildLock, HistoryIndex
from ci_risk_hook.git import repo as git
from ci_risk_hook.git.ranges import PushRange
from testing.repos import Repo, lines, make_repo, run_cli

CI_RISK = str(Path(sys.executable).parent / "ci-risk")
AUTHORS = ("Ada <ada@example.com>", "Bo <bo@example.com>", "Cy <cy@example.com>", "Di <di@example.com>")
BIG = 3000  # commits: a build that takes a few seconds, long enough to race and to kill
PG_URL = os.environ.get("CI_RISK_TEST_POSTGRES_URL")  # read before the fixtures clear CI_RISK_*


def grow(repo: Repo, n: int) -> None:
    """n commits on main in one `git fast-import`: 40 files in 8 directories, four authors, an hour apart."""
    stream = []
    for i in range(n):
        name, _, email = AUTHORS[i % len(AUTHORS)].partition(" <")
        when = 1_500_000_000 + i * 3600
        stream.append(
            f"commit refs/heads/main\nauthor {name} <{email} {when} +0000\n"
            f"committer {name} <{email} {when} +0000\ndata 9\nchange {i % 10}\n"
        )
        for j in range(1 + i % 3):
            path = f"pkg{(i + j) % 8}/mod{(i * 7 + j) % 40}.py"
            body = f"value = {i}\n" * (1 + (i + j) % 5)
            stream.append(f"M 100644 inline {path}\ndata {len(body.encode())}\n{body}\n")
    repo.git("fast-import", "--quiet", input="".join(stream).encode())
    repo.git("reset", "-q", "--hard", "main")
    repo.clock = 1_500_000_000 + n * 3600


@pytest.fixture
def big(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """A repository of BIG commits with a bare remote holding main, and ci-risk's raw pre-push hook."""
    repo = make_repo(tmp_path / "big")
    grow(repo, BIG)
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    repo.git("remote", "add", "origin", str(remote))
    repo.git("push", "-q", "--no-verify", "-u", "origin", "main")
    subprocess.run([CI_RISK, "install"], cwd=repo.path, check=True, capture_output=True)
    monkeypatch.chdir(repo.path)
    return repo


def push(repo: Repo, **env: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["git", "push", "origin", "main"], cwd=repo.path, capture_output=True, text=True, env={**os.environ, **env}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def index_path(repo: Repo) -> str:
    return paths.index_file(str(repo.path / ".git"))


def builder_idle(repo: Repo) -> bool:
    lock = BuildLock(paths.index_lock(index_path(repo)))
    if not lock.acquire(wait=False):
        return False
    lock.release()
    return True


def wait_for_builder(repo: Repo, timeout: float = 300) -> None:
    """Poll, generously: the background builder is a separate process on a shared machine."""
    deadline = time.monotonic() + timeout
    while not builder_idle(repo):
        if time.monotonic() > deadline:
            raise AssertionError("the background index build did not finish")
        time.sleep(0.2)


def covered(repo: Repo, sha: str) -> bool:
    index = HistoryIndex(index_path(repo))
    try:
        return index.covered([sha]) == {sha}
    finally:
        index.close()


def builders_started(repo: Repo) -> int:
    log = Path(index_path(repo)).parent / paths.INDEX_BUILD_LOG
    return log.read_text().count("building the history index") if log.exists() else 0


def features(repo: Repo, base: str, budget: float | None = None) -> tuple[dict[str, float | None], list[str]]:
    info = git.repo_info(str(repo.path))
    result = analyze(
        PushRange(tip=repo.head(), exclude=(base,)), info, Limits(), cwd=str(repo.path), index_budget=budget
    )
    return result.values, result.notes


HISTORY = ("file_age_days", "nuc", "ndev", "lt", "author_exp", "author_sexp", "author_tenure_days")


def test_both_budgets_default_to_a_second_and_take_seconds() -> None:
    from ci_risk_hook import config

    settings = config.resolve({}, env={})
    assert (settings.index_budget, settings.store_budget) == (1.0, 1.0)
    settings = config.resolve({}, env={"CI_RISK_INDEX_BUDGET": "0", "CI_RISK_STORE_BUDGET": "2.5"})
    assert (settings.index_budget, settings.store_budget) == (0.0, 2.5)
    for bad in ("-1", "soon", "inf", "nan"):
        with pytest.raises(config.ConfigError, match="CI_RISK_INDEX_BUDGET"):
            config.resolve({}, env={"CI_RISK_INDEX_BUDGET": bad})


# -- item 10: the history index on the push path --------------------------------


def test_a_cold_index_past_the_budget_is_finished_in_the_background_and_the_next_push_is_warm(big: Repo) -> None:
    base = big.head()
    big.commit({"pkg1/mod3.py": lines(30)}, "first push", author=AUTHORS[0])
    first = push(big, CI_RISK_INDEX_BUDGET="0")
    out = first.stdout + first.stderr
    assert (
        "history features unknown: indexing this repository's history takes more than 0 s; "
        "finishing it in the background (pid " in out
    ), out
    assert "shallow" not in out
    wait_for_builder(big)
    assert covered(big, base)
    assert builders_started(big) == 1
    assert "done, 3,000 commits added" in (Path(index_path(big)).parent / paths.INDEX_BUILD_LOG).read_text()

    indexed = HistoryIndex(index_path(big))
    before = indexed.commit_count()
    indexed.close()
    big.commit({"pkg2/mod5.py": lines(40)}, "second push", author=AUTHORS[1])
    second = push(big, CI_RISK_INDEX_BUDGET="600")
    assert "history features unknown" not in second.stdout + second.stderr
    after = HistoryIndex(index_path(big))
    assert after.commit_count() == before + 1  # only the first push's commit: the rest was warm
    after.close()
    assert builders_started(big) == 1


def test_the_budget_gives_unknown_never_partial_history(big: Repo) -> None:
    base = big.head()
    big.commit({"pkg1/mod3.py": lines(30)}, "change", author=AUTHORS[0])
    values, notes = features(big, base, budget=0)
    assert all(values[name] is None for name in HISTORY), values
    assert any("finishing it in the background" in n for n in notes), notes
    wait_for_builder(big)
    values, notes = features(big, base, budget=0)
    assert values["author_exp"] == BIG / len(AUTHORS) and values["author_first_commit"] == 0.0
    assert not any("unknown" in n for n in notes), notes


def test_two_concurrent_pushes_start_at_most_one_builder(big: Repo, tmp_path: Path) -> None:
    big.commit({"pkg1/mod3.py": lines(30)}, "change", author=AUTHORS[0])
    env = {**os.environ, "CI_RISK_INDEX_BUDGET": "0"}
    procs = [
        subprocess.Popen(
            [CI_RISK, "check"], cwd=big.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert all("history features unknown" in out for out in outputs), outputs
    wait_for_builder(big)
    assert builders_started(big) == 1, outputs
    assert sum("finishing it in the background" in out for out in outputs) == 1, outputs


def test_a_killed_builder_frees_the_lock_and_its_walk_is_completed_correctly(
    big: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = big.head()
    big.commit({"pkg1/mod3.py": lines(30)}, "change", author=AUTHORS[0])
    proc = subprocess.run(
        [CI_RISK, "check"],
        cwd=big.path,
        capture_output=True,
        text=True,
        env={**os.environ, "CI_RISK_INDEX_BUDGET": "0"},
    )
    pid = int(proc.stdout.split("background (pid ")[1].split(";")[0])
    os.killpg(pid, signal.SIGKILL)  # the builder leads its own session: its git goes too
    wait_for_builder(big, timeout=60)  # the kernel frees an flock with its holder
    assert Path(paths.index_lock(index_path(big))).exists()  # a stale lock file, which locks nothing
    assert not covered(big, base)

    warm, notes = features(big, base, budget=600)  # the next build completes the killed one
    assert not any("unknown" in n for n in notes), notes
    monkeypatch.setenv("CI_RISK_INDEX_DIR", str(tmp_path / "fresh"))
    fresh, _ = features(big, base)
    assert warm == fresh


def test_an_interrupted_build_never_passes_for_a_complete_one(big: Repo) -> None:
    """Ctrl-C in the middle of the first build (then, or with the first release)."""
    base = big.head()
    big.commit({"pkg1/mod3.py": lines(30)}, "change", author=AUTHORS[0])
    index = HistoryIndex(index_path(big), str(big.path))

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        index.ensure_covers([base], interrupt)
    assert index.known([base]) == {base}  # written first: git log starts at the newest commit
    assert index.covered([base]) == set()
    # The first release kept no record of an unfinished walk: its leftovers are recognised on opening.
    index.db.execute("DELETE FROM meta WHERE key LIKE 'walk_%'")
    index.close()
    reopened = HistoryIndex(index_path(big), str(big.path))
    assert reopened.covered([base]) == set()
    reopened.close()
    values, notes = features(big, base, budget=600)
    assert values["author_exp"] == BIG / len(AUTHORS), notes


def test_ci_risk_index_in_the_foreground_waits_for_the_background_build(
    big: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    base = big.head()
    big.commit({"pkg1/mod3.py": lines(30)}, "change", author=AUTHORS[0])
    subprocess.run(
        [CI_RISK, "check"], cwd=big.path, capture_output=True, env={**os.environ, "CI_RISK_INDEX_BUDGET": "0"}
    )
    code, out, err = run_cli(["index"], capsys)
    assert code == 0, err
    assert covered(big, base)
    assert f"{BIG + 1:,} commits" in out
    assert builders_started(big) == 1


# -- item 9: an outcomes store that never answers --------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_store_that_never_answers_is_skipped_and_the_push_goes_on(
    history_repo: Repo, silent_server: int, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    history_repo.git("remote", "add", "origin", str(remote))
    history_repo.git("push", "-q", "--no-verify", "origin", "main")
    subprocess.run([CI_RISK, "install"], cwd=history_repo.path, check=True, capture_output=True)
    history_repo.commit({"src/app.py": lines(70)}, "next change")
    url = f"postgresql://ci@127.0.0.1:{silent_server}/x"
    proc = push(history_repo, CI_RISK_DB=url, CI_RISK_STORE_BUDGET="1")
    out = proc.stdout + proc.stderr
    assert f"build history skipped: the outcomes store {url} did not answer within 1 s" in out, out
    assert "ci-risk: risk" in out  # scored with everything else
    assert history_repo.git("ls-remote", "origin", "refs/heads/main").split()[0] == history_repo.head()


def test_the_push_asks_the_driver_for_its_budget_and_commands_keep_their_wait(
    history_repo: Repo, silent_server: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    psycopg = pytest.importorskip("psycopg")
    asked: list[object] = []
    real_connect = psycopg.connect

    def connect(*args: object, **kwargs: object) -> object:
        asked.append(kwargs.get("connect_timeout"))
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", connect)
    monkeypatch.chdir(history_repo.path)
    monkeypatch.setenv("CI_RISK_DB", f"postgresql://ci@127.0.0.1:{silent_server}/x")
    monkeypatch.setenv("CI_RISK_STORE_BUDGET", "1")
    history_repo.commit({"src/app.py": lines(70)}, "next change")
    code, out, _ = run_cli(["check", "--from", "HEAD~1", "--format", "json"], capsys)
    assert code == 0
    notes = json.loads(out)["ranges"][0]["notes"]
    assert any("did not answer within 1 s" in n for n in notes), notes
    deadline = time.monotonic() + 30
    while not asked and time.monotonic() < deadline:
        time.sleep(0.05)
    # The worker gives up when that connection fails (libpq waits at least 2 s): it must not connect again
    # to record the prediction (a second wait). Give a second attempt the time it would need to show.
    deadline = time.monotonic() + 5
    while len(asked) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert asked == [1]

    from ci_risk_hook.outcomes.store import StoreError, open_store

    monkeypatch.setattr(psycopg, "connect", lambda *a, **k: (asked.append(k.get("connect_timeout")), 1 / 0))
    with pytest.raises(StoreError):
        open_store(f"postgresql://ci@127.0.0.1:{silent_server}/x")
    assert asked[-1] == 10


def test_a_store_that_answers_is_read_within_the_budget_on_postgresql(
    history_repo: Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store is read in a worker thread: a real server's answer still reaches the features."""
    pg_url = PG_URL
    if not pg_url:
        pytest.skip("needs CI_RISK_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    import uuid

    import psycopg

    schema = f"ci_risk_budget_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        monkeypatch.chdir(history_repo.path)
        monkeypatch.setenv("CI_RISK_DB", f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}")
        code, _, err = run_cli(["record", "--status", "fail"], capsys)
        assert code == 0, err
        history_repo.commit({"src/app.py": lines(70)}, "next change")
        code, out, _ = run_cli(["check", "--from", "HEAD~1", "--format", "json"], capsys)
        assert code == 0
        values = json.loads(out)["ranges"][0]["features"]
        assert values["prev_build_failed"] == 1.0 and values["fail_rate_last5"] == 1.0
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_locked_sqlite_store_is_given_up_after_the_budget(
    history_repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    from ci_risk_hook.outcomes.store import StoreError, open_store

    path = tmp_path / "history.sqlite"
    open_store(str(path)).close()
    store = open_store(str(path), create=False, timeout=0.2)
    assert store.execute("PRAGMA busy_timeout").fetchone()[0] == 200  # the push's budget, not the commands' minute
    store.close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("CREATE TABLE busy(x)")
    try:
        with pytest.raises(StoreError, match="locked"):
            open_store(str(path), create=False, timeout=0.2)
        monkeypatch.chdir(history_repo.path)
        monkeypatch.setenv("CI_RISK_DB", str(path))
        monkeypatch.setenv("CI_RISK_STORE_BUDGET", "0.5")
        history_repo.commit({"src/app.py": lines(70)}, "next change")
        code, out, _ = run_cli(["check", "--from", "HEAD~1", "--format", "json"], capsys)
        assert code == 0
        assert any("build history" in n for n in json.loads(out)["ranges"][0]["notes"])
    finally:
        holder.close()


# -- item 12: an unusable .git/ci-risk is named, not taken for a shallow clone --------

# Root reads through any permission bits; without these two capabilities it is refused like anyone else.
AS_UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []


def _check_notes(repo: Repo, prefix: list[str] | None = None) -> list[str]:
    proc = subprocess.run(
        [*(prefix or []), CI_RISK, "check", "--from", "HEAD~1", "--format", "json"],
        cwd=repo.path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    notes: list[str] = json.loads(proc.stdout)["ranges"][0]["notes"]
    assert not any("shallow" in n for n in notes), notes
    return notes


def test_a_file_where_the_index_directory_belongs_is_named(
    history_repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    history_repo.commit({"src/app.py": lines(70)}, "next change")
    (history_repo.path / ".git" / "ci-risk").write_text("not a directory\n")
    notes = _check_notes(history_repo)
    assert any(f"{history_repo.path / '.git' / 'ci-risk'} is not a directory" in n for n in notes), notes
    monkeypatch.chdir(history_repo.path)
    code, _, err = run_cli(["index"], capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        f"Error: history index unavailable: {history_repo.path / '.git' / 'ci-risk'} is not a directory (move it away)"
    ]


def test_a_directory_where_the_index_file_belongs_is_named(history_repo: Repo) -> None:
    history_repo.commit({"src/app.py": lines(70)}, "next change")
    (history_repo.path / ".git" / "ci-risk" / "history-index.sqlite").mkdir(parents=True)
    notes = _check_notes(history_repo)
    assert any("history-index.sqlite is a directory, not the index file" in n for n in notes), notes


def test_an_unreadable_index_directory_is_named(history_repo: Repo) -> None:
    history_repo.commit({"src/app.py": lines(70)}, "next change")
    directory = history_repo.path / ".git" / "ci-risk"
    directory.mkdir()
    directory.chmod(0)
    try:
        notes = _check_notes(history_repo, AS_UNPRIVILEGED)
    finally:
        directory.chmod(0o755)
    assert any(f"permission denied on {directory}" in n for n in notes), notes


def test_the_background_builder_imports_nothing_from_the_work_tree(big: Repo, tmp_path: Path) -> None:
    """Started in the work tree: `python -m` would import a repository's top-level `sqlite3.py` (see launch)."""
    marker = tmp_path / "imported-from-the-repository"
    for name in ("json.py", "sqlite3.py", "hashlib.py"):  # modules the builder imports
        (big.path / name).write_text(f"open({str(marker)!r}, 'w').close()\nraise ImportError('planted')\n")
    base = big.head()
    big.commit({"pkg1/mod3.py": lines(30)}, "change", author=AUTHORS[0])
    _, notes = features(big, base, budget=0)
    assert any("finishing it in the background" in n for n in notes), notes
    wait_for_builder(big)
    assert not marker.exists(), "the background builder imported a module from the work tree"
    assert covered(big, base)
