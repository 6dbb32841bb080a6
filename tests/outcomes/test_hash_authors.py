"""--hash-authors: a shared store holds keyed hashes, never names or e-mails, and every feature stays the same."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ci_risk_hook.cli import main as cli
from ci_risk_hook.features.extract import FEATURE_NAMES
from ci_risk_hook.model.dataset import ci_table, szz_table
from ci_risk_hook.outcomes.authors import KEY_ENV
from ci_risk_hook.outcomes.store import open_store
from testing.modelkit import MAINTAINERS, NEWCOMERS, grow_history
from testing.postgres import fresh_schema
from testing.repos import Repo, lines
from testing.repos import run_cli as run

KEY = "a-team-secret-of-some-length-0123"
IDENTITIES = [p for who in MAINTAINERS + NEWCOMERS for p in (who.split(" <")[0], who.split("<")[1].rstrip(">"))]


@pytest.fixture
def grown(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real history by ten authors, its simulated CI outcomes as a CSV to import."""
    labels = grow_history(repo, commits=60, seed=4)
    rows = ["commit,status,branch,started_at,duration_s"]
    for i, (sha, label) in enumerate(labels.items()):
        rows.append(f"{sha},{'failed' if label else 'passed'},main,{1_600_000_000 + i * 3600},600")
    csv = tmp_path / "outcomes.csv"
    csv.write_text("\n".join(rows) + "\n")
    monkeypatch.chdir(repo.path)
    return csv


def fill(url: str, csv: Path, monkeypatch: pytest.MonkeyPatch, hashed: bool) -> None:
    """Import outcomes and backfill commits: both ways authors enter the store."""
    monkeypatch.setenv("CI_RISK_DB", url)
    flag = ["--hash-authors"] if hashed else []
    if hashed:
        monkeypatch.setenv(KEY_ENV, KEY)
    else:
        monkeypatch.delenv(KEY_ENV, raising=False)
        monkeypatch.delenv("CI_RISK_HASH_AUTHORS", raising=False)
    assert cli.main(["import", str(csv), "--format", "csv", *flag]) == 0
    assert cli.main(["backfill", *flag]) == 0


def tables(url: str) -> tuple:
    store = open_store(url)
    try:
        repo_id = store.repositories()[0][0]
        return ci_table(store, repo_id), szz_table(store, repo_id)
    finally:
        store.close()


def test_features_are_identical_hashed_or_not_and_no_identity_is_in_the_file(
    grown: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain_url, hashed_url = str(tmp_path / "plain.sqlite"), str(tmp_path / "hashed.sqlite")
    fill(plain_url, grown, monkeypatch, hashed=False)
    plain_ci, plain_szz = tables(plain_url)
    fill(hashed_url, grown, monkeypatch, hashed=True)
    hashed_ci, hashed_szz = tables(hashed_url)
    assert not np.isnan(plain_ci.X[:, FEATURE_NAMES.index("author_fail_rate")]).all()  # authors do matter to these rows
    for plain, hashed in ((plain_ci, hashed_ci), (plain_szz, hashed_szz)):
        assert np.array_equal(plain.X, hashed.X, equal_nan=True)
        assert np.array_equal(plain.demo, hashed.demo) and np.array_equal(plain.y, hashed.y)
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("hashed.sqlite*"))
    assert b"example.com" in b"".join(p.read_bytes() for p in tmp_path.glob("plain.sqlite*"))
    leaked = [who for who in IDENTITIES if who.encode() in blob]
    assert not leaked, f"identities in the hashed store: {leaked}"
    assert b"h:" in blob


def test_no_identity_reaches_postgresql_rows(grown: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_schema() as url:
        fill(url, grown, monkeypatch, hashed=True)
        store = open_store(url)
        try:
            text = "\n".join(
                str(row[0])
                for table in ("repositories", "builds", "build_features", "commit_features", "store_meta")
                for row in store.execute(f"SELECT t::text FROM {table} t").fetchall()
            )
        finally:
            store.close()
    assert "h:" in text and "hmac-sha256:" in text
    assert not [who for who in IDENTITIES if who in text]


def test_the_hook_hashes_the_pushing_author_alike(
    project: Repo, db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    assert run(["record", "--status", "fail", "--hash-authors"], capsys)[0] == 0
    project.commit({"src/app.py": lines(70)}, "next change", author="Maintainer <maint@example.com>")
    code, out, err = run(["check", "--from", "HEAD~1", "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["ranges"][0]["features"]["author_fail_rate"] == 1.0
    assert b"maint@example.com" not in stored_bytes(db.parent / "history.sqlite")


def stored_bytes(main: Path) -> bytes:
    """Every byte of an SQLite store on disk. The last connection to close removes -wal/-shm (checkpointing the
    log into the main file), possibly while they are read: a vanished one is skipped, the main file read last."""
    side = b""
    for path in sorted(main.parent.glob(main.name + "-*")):
        try:
            side += path.read_bytes()
        except FileNotFoundError:
            continue
    return side + main.read_bytes()


def test_a_wrong_or_missing_key_and_mixing_are_refused_in_one_line(
    project: Repo, db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    assert run(["record", "--status", "pass", "--hash-authors"], capsys)[0] == 0
    monkeypatch.setenv(KEY_ENV, "another-key-entirely-0123456789")
    code, _, err = run(["record", "--status", "fail", "--hash-authors"], capsys)
    assert code == 1 and "is not the key this store's authors were hashed with" in err and len(err.splitlines()) == 1
    monkeypatch.delenv(KEY_ENV)
    code, _, err = run(["record", "--status", "fail"], capsys)
    assert code == 1 and f"holds hashed authors: set {KEY_ENV}" in err
    monkeypatch.setenv(KEY_ENV, KEY)
    assert len(builds_in(db)) == 1  # nothing written by the refused runs

    plain = db.parent / "plain.sqlite"
    monkeypatch.setenv("CI_RISK_DB", str(plain))
    monkeypatch.delenv("CI_RISK_HASH_AUTHORS", raising=False)
    assert run(["record", "--status", "pass"], capsys)[0] == 0
    monkeypatch.setenv(KEY_ENV, KEY)
    code, _, err = run(["record", "--status", "fail", "--hash-authors"], capsys)
    assert code == 1 and "holds author e-mails unhashed: --hash-authors cannot be mixed into it" in err
    monkeypatch.setenv(KEY_ENV, "short")
    code, _, err = run(["record", "--status", "fail", "--hash-authors"], capsys)
    assert code == 1 and "too short" in err
    for padded in (KEY + "\n", " " * 20):  # a secret pasted with its newline; a key of blanks
        monkeypatch.setenv(KEY_ENV, padded)
        code, _, err = run(["record", "--status", "fail", "--hash-authors"], capsys)
        assert code == 1 and "white space (a pasted newline?)" in err and len(err.splitlines()) == 1


def builds_in(db: Path) -> list:
    store = open_store(str(db))
    try:
        return store.execute("SELECT id FROM builds").fetchall()
    finally:
        store.close()
