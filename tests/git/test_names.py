"""Names from hostile history: file names, e-mails, messages and branches that are not UTF-8.

git names are bytes. A commit that adds `caf\\xe9.py` (Latin-1) once made
every later push "not checked" (strict: blocked) and `index`, `record`,
`backfill` crash. These tests build such histories byte for byte (blobs from
`git hash-object`, index entries from `git update-index -z --index-info`, so
no file system or locale gets a say) and run the real commands, the real
hook on a real push, and both real stores.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Mapping

import pytest

from ci_risk_hook import paths
from ci_risk_hook.features.analysis import analyze
from ci_risk_hook.features.extract import Limits
from ci_risk_hook.features.history_index import HistoryIndex
from ci_risk_hook.git import repo as git
from ci_risk_hook.git.ranges import PushRange
from ci_risk_hook.mining import labels
from ci_risk_hook.outcomes.store import open_store
from testing.repos import Repo, make_repo, run_cli

CI_RISK = str(Path(sys.executable).parent / "ci-risk")

LATIN1 = b"src/caf\xe9.py"
LATIN1_KEY = "src/caf\\xe9.py"
# Every kind of name a hostile or merely old repository can hold.
HOSTILE: tuple[bytes, ...] = (
    LATIN1,
    b"src/caf\\xe9.py",  # the literal text of LATIN1's key: must not share it
    b"lat\xedn/mod.py",  # a non-UTF-8 directory: a subsystem of its own
    b"src/new\nline.py",
    b"src/tab\there.py",
    b"-dash.py",
    b"src/back\\slash.py",
    b'src/"quoted".py',
    b"src/'single'.py",
    b"src/\xed\xb3\xa9.py",  # an encoded surrogate: not valid UTF-8 either
    b"src/na\xc3\xafve.py",  # valid UTF-8, not ASCII
    b"deep/" + b"d" * 250 + b"/" + b"\xe9" * 300 + b".py",  # longer than any file system allows
)


def commit_bytes(
    repo: Repo,
    files: Mapping[bytes, bytes],
    message: bytes = b"change",
    email: bytes = b"test@example.com",
    name: bytes = b"Test Person",
    encoding: bytes | None = None,
) -> str:
    """Commit these exact bytes: names, contents, ident and message, whatever the file system and locale think.

    The commit object is written by hand: `git commit` would re-encode an
    ident or message that is not UTF-8 as if it were Latin-1, and older git
    versions, importers and other tools do not.
    """
    entries = b""
    for path, content in files.items():
        blob = subprocess.run(
            ["git", "hash-object", "-w", "--stdin"], cwd=repo.path, input=content, capture_output=True, check=True
        ).stdout.strip()
        entries += b"100644 " + blob + b"\t" + path + b"\0"
    subprocess.run(
        ["git", "update-index", "-z", "--add", "--index-info"],
        cwd=repo.path,
        input=entries,
        capture_output=True,
        check=True,
    )
    tree = repo.git("write-tree").encode()
    parent = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=repo.path, capture_output=True
    ).stdout.strip()
    repo.clock += 3600
    ident = name + b" <" + email + b"> " + f"{repo.clock} +0000".encode()
    body = b"tree " + tree + b"\n" + (b"parent " + parent + b"\n" if parent else b"")
    body += b"author " + ident + b"\ncommitter " + ident + b"\n"
    body += (b"encoding " + encoding + b"\n" if encoding else b"") + b"\n" + message + b"\n"
    sha = (
        subprocess.run(
            ["git", "hash-object", "-t", "commit", "-w", "--stdin", "--literally"],
            cwd=repo.path,
            input=body,
            capture_output=True,
            check=True,
        )
        .stdout.strip()
        .decode()
    )
    repo.git("update-ref", "HEAD", sha)
    return sha


def source(i: int, lines: int = 3) -> bytes:
    return "".join(f"value_{k} = {i}\n" for k in range(lines)).encode()


def check_json(repo: Repo, *args: str, env: Mapping[str, str] | None = None) -> dict:
    proc = subprocess.run(
        [CI_RISK, "check", "--format", "json", *args],
        cwd=repo.path,
        capture_output=True,
        env={**os.environ, **(env or {})},
    )
    out, err = proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, out + err
    assert "Traceback" not in err and "internal error" not in err, err
    return json.loads(out)


def features(report: dict) -> dict:
    return report["ranges"][0]["features"]


@pytest.fixture
def latin1_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """History in which a Latin-1 file name appears early, among ordinary files."""
    repo = make_repo(tmp_path / "latin1")
    monkeypatch.chdir(repo.path)
    repo.commit({"README.md": "# project\n", "src/app.py": "print(1)\n"}, "initial import")
    commit_bytes(repo, {LATIN1: source(1)}, b"add caf\xe9")
    repo.commit({"src/app.py": "print(2)\n"}, "tidy app")
    return repo


# -- the name key itself --------------------------------------------------------------------------


def test_name_keys_are_lossless_one_to_one_and_plain_text() -> None:
    names = [*HOSTILE, b"a\\x5c", b"\\", b"x\\", b"nul\0byte", b"\xff\xfe", bytes(range(1, 256))]
    keys = [git.decode_name(n) for n in names]
    assert [git.encode_name(k) for k in keys] == names
    assert len(set(keys)) == len(keys), "two names share a key"
    for key in keys:
        key.encode("utf-8")  # no surrogates: every store, JSON and terminal take it
        assert "\0" not in key  # PostgreSQL text cannot hold NUL
    assert git.decode_name(LATIN1) == LATIN1_KEY
    assert git.decode_name("src/naïve.py".encode()) == "src/naïve.py"  # valid UTF-8 is its own key


# -- index and check ------------------------------------------------------------------------------


def test_index_and_check_find_the_history_of_a_non_utf8_file(
    latin1_repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["index"], capsys)
    assert code == 0, err
    latin1_repo.commit({"docs/x.md": "x\n"}, "docs")
    base = latin1_repo.head()
    commit_bytes(latin1_repo, {LATIN1: source(2)}, b"change caf\xe9 again")

    values = features(check_json(latin1_repo, "--from", base, "--to", "HEAD", "--strict"))
    assert values["new_files"] == 0, "the file's earlier change was not found under the same key"
    assert values["nuc"] == 1 and values["file_age_days"] is not None and values["file_age_days"] > 0

    info = git.repo_info(str(latin1_repo.path))
    db = sqlite3.connect(paths.index_file(info.common_dir))
    try:
        rows = db.execute("SELECT path, subsystem FROM paths WHERE path LIKE 'src/caf%'").fetchall()
    finally:
        db.close()
    assert rows == [(LATIN1_KEY, "src")], rows


def test_an_index_of_the_old_schema_is_rebuilt_not_refused(latin1_repo: Repo) -> None:
    info = git.repo_info(str(latin1_repo.path))
    path = paths.index_file(info.common_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES('schema_version', '1');"
        "CREATE TABLE paths(id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, subsystem TEXT NOT NULL);"
        "INSERT INTO paths VALUES(1, 'src/caf\ufffd.py', 'src');"
    )
    old.close()
    index = HistoryIndex(path, str(latin1_repo.path))
    try:
        index.ensure_covers([latin1_repo.head()])
        assert index.commit_count() == 3
        found = index.file_histories([LATIN1_KEY, "src/caf\ufffd.py"], before=2**40)
        assert list(found) == [LATIN1_KEY] and found[LATIN1_KEY].changes == 1
    finally:
        index.close()


# -- a real push through the hook -----------------------------------------------------------------


def push(repo: Repo, ref: bytes, env: Mapping[str, str]) -> tuple[int, str]:
    proc = subprocess.run(
        [b"git", b"push", b"origin", ref], cwd=repo.path, capture_output=True, env={**os.environ, **env}
    )
    return proc.returncode, (proc.stdout + proc.stderr).decode("utf-8", "replace")


def remote_has(repo: Repo, sha: str) -> bool:
    return sha in repo.git("ls-remote", "origin")


def test_push_through_the_hook_warns_blocks_and_is_strict(latin1_repo: Repo, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    latin1_repo.git("remote", "add", "origin", str(remote))
    latin1_repo.git("push", "-q", "--no-verify", "-u", "origin", "main")
    subprocess.run([CI_RISK, "install"], cwd=latin1_repo.path, check=True, capture_output=True)
    tip = commit_bytes(latin1_repo, {LATIN1: source(3), b"src/new\xff.py": source(0)}, b"rework caf\xe9")

    code, out = push(latin1_repo, b"main", {"CI_RISK_MODE": "block", "CI_RISK_BLOCK_AT": "0"})
    assert code != 0 and "BLOCKED" in out, out
    assert not remote_has(latin1_repo, tip)

    code, out = push(latin1_repo, b"main", {"CI_RISK_MODE": "block", "CI_RISK_BLOCK_AT": "0", "CI_RISK_STRICT": "1"})
    assert code != 0 and "BLOCKED" in out, out  # blocked by the score, not by an internal error (exit 3)
    assert "internal error" not in out, out

    code, out = push(latin1_repo, b"main", {"CI_RISK_MODE": "warn", "CI_RISK_STRICT": "1"})
    assert code == 0, out
    assert "ci-risk: risk " in out and "not checked" not in out and "internal error" not in out, out
    assert remote_has(latin1_repo, tip)

    # A branch whose name is not UTF-8 is scored too: git hands it to the hook on stdin, which a
    # UTF-8 locale (strict, as PYTHONIOENCODING makes it here) would refuse to decode.
    subprocess.run([b"git", b"checkout", b"-q", b"-b", b"caf\xe9"], cwd=latin1_repo.path, check=True)
    commit_bytes(latin1_repo, {LATIN1: source(4)}, b"on a Latin-1 branch")
    code, out = push(
        latin1_repo, b"caf\xe9", {"CI_RISK_MODE": "block", "CI_RISK_BLOCK_AT": "0", "PYTHONIOENCODING": "utf-8:strict"}
    )
    assert code != 0 and "BLOCKED" in out and "internal error" not in out, out


# -- record, backfill with SZZ, history: SQLite and PostgreSQL -----------------------------------


def test_record_backfill_szz_and_history_keep_the_name(
    latin1_repo: Repo, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    inducing = latin1_repo.git("rev-parse", "HEAD~1")  # "add caf\xe9" wrote the lines the fix changes
    author = b"r\xe9my@example.com"
    commit_bytes(latin1_repo, {LATIN1: source(9)}, b"Fix crash in caf\xe9", email=author)

    code, out, err = run_cli(["record", "--status", "fail", "--commit", inducing], capsys)
    assert code == 0, err
    code, out, err = run_cli(["backfill"], capsys)
    assert code == 0, err
    assert "SZZ: 1 fix-inducing commits from 1 fixes" in out, out
    code, out, err = run_cli(["history", "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["labels"] == {"szz": 1}

    store = open_store(store_url)
    try:
        repo_id = store.repositories()[0][0]
        build_files = [files for _, files, _ in store.build_features(repo_id).values()]
        authors = {author for _, _, author, _ in store.commit_features(repo_id)}
        szz = [(sha, source_) for sha, source_, _, _ in store.labels(repo_id)]
    finally:
        store.close()
    assert build_files == [[LATIN1_KEY]]
    assert "r\\xe9my@example.com" in authors
    assert szz == [(inducing, "szz")]

    # A later push that touches the same file finds the failed build that touched it.
    base = latin1_repo.head()
    commit_bytes(latin1_repo, {LATIN1: source(10)}, b"again")
    values = features(check_json(latin1_repo, "--from", base, "--to", "HEAD", "--branch", "main", "--strict"))
    assert values["touched_files_fail_rate"] == 1.0, values

    # A branch that is not UTF-8 has one key whether read from HEAD or given as an option (argv
    # holds undecodable bytes as surrogates), and the hook finds its builds under that key.
    subprocess.run([b"git", b"checkout", b"-q", b"-b", b"caf\xe9"], cwd=latin1_repo.path, check=True)
    code, out, err = run_cli(["record", "--status", "fail"], capsys)
    assert code == 0 and "on caf\\xe9" in out, out + err
    code, out, err = run_cli(
        ["record", "--status", "pass", "--commit", base, "--branch", "refs/heads/caf\udce9"], capsys
    )
    assert code == 0, err
    code, out, err = run_cli(["history", "--format", "json"], capsys)
    assert sorted(b["branch"] for b in json.loads(out)["builds"]) == ["caf\\xe9", "caf\\xe9", "main"]
    values = features(check_json(latin1_repo, "--from", base, "--to", "HEAD", "--strict"))
    assert values["fail_rate_last5"] == 0.5, values


# -- odd names everywhere -------------------------------------------------------------------------


def test_hostile_names_are_indexed_apart_blamed_and_found_again(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo.path)
    # Small runs of pathspecs, so the fix diff that names many files is split as a huge one would be.
    monkeypatch.setattr(labels, "_PATHSPEC_BYTES", 600)
    repo.commit({"README.md": "hello\n"}, "initial")
    commit_bytes(repo, {name: source(0) for name in HOSTILE}, b"add hostile names")
    repo.commit({"src/a_test.py": "value = 1\n"}, "add test")
    code, _, err = run_cli(["index"], capsys)
    assert code == 0, err
    base = repo.head()
    fixes = []
    for i, name in enumerate(HOSTILE):
        # The test file changed alongside shows that a name taken as a pattern would blame too much.
        fixes.append(
            commit_bytes(repo, {name: source(i + 1), b"src/a_test.py": source(i + 1)}, f"Fix file {i}".encode())
        )
    commit_bytes(repo, {name: source(99) for name in HOSTILE}, b"Fix them all at once")

    keys = [git.decode_name(n) for n in HOSTILE]
    info = git.repo_info(str(repo.path))
    result = analyze(PushRange(tip=repo.head(), exclude=(base,)), info, Limits(), cwd=str(repo.path))
    assert result.values["new_files"] == 0, result.facts.new_paths
    assert result.values["nf"] == len(HOSTILE) + 1
    assert sorted(p for paths in result.facts.paths_by_category.values() for p in paths) == sorted(
        [*keys, "src/a_test.py"]
    )

    index = HistoryIndex(paths.index_file(info.common_dir), str(repo.path))
    try:
        histories = index.file_histories(keys, before=2**40)
    finally:
        index.close()
    assert sorted(histories) == sorted(keys)
    assert all(h.changes == 1 and h.lines == 3 for h in histories.values()), histories

    # No cap on candidates: the last fix rewrites every hostile file, each written by another commit.
    found = {label.commit: label for label in labels.szz(str(repo.path), jobs=1, max_candidates=None).labels}
    added = repo.git("rev-parse", "HEAD~" + str(len(HOSTILE) + 2))
    assert set(found) == set(fixes) | {added}, "each name blamed on the commit that wrote it, nothing else"
    assert found[added].lines == len(HOSTILE) * 3
    assert all(found[fix].lines == 3 for fix in fixes)


# -- authors and messages that are not UTF-8 --------------------------------------------------------


def test_authors_and_messages_in_other_encodings(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo.path)
    # The user wants log output in Latin-1: ci-risk must still read UTF-8.
    repo.git("config", "i18n.logOutputEncoding", "ISO-8859-1")
    repo.commit({"README.md": "hello\n"}, "initial")
    # Raw Latin-1 bytes, no encoding header: git shows them as they are.
    commit_bytes(repo, {b"a.py": b"a = 1\n"}, b"Fix caf\xe9 bug", email=b"j\xe9@example.com")
    commit_bytes(repo, {b"b.py": b"b = 1\n"}, b"b", email=b"j\xe8@example.com")  # someone else
    # Declared Latin-1 (i18n.commitEncoding): git re-encodes it, so this author is "jé".
    commit_bytes(
        repo,
        {b"c.py": b"c = 1\n"},
        "Fix naïve bug".encode("latin-1"),
        email=b"j\xe9@example.com",
        name="Jérôme".encode("latin-1"),
        encoding=b"ISO-8859-1",
    )
    base = repo.head()
    commit_bytes(repo, {b"a.py": b"a = 2\n"}, "Fix déjà vu".encode(), email=b"j\xe9@example.com")

    info = git.repo_info(str(repo.path))
    result = analyze(PushRange(tip=repo.head(), exclude=(base,)), info, Limits(), cwd=str(repo.path))
    assert result.facts.author_email == "j\\xe9@example.com"
    assert result.values["author_exp"] == 1, "j\\xe8 is someone else, and so is the declared-Latin-1 jé"
    assert result.facts.fix_subjects == ["Fix déjà vu"]

    commits = {c.subject: c for c in git.iter_commits(["HEAD"], str(repo.path))}
    assert set(commits) == {"initial", "Fix caf\\xe9 bug", "b", "Fix naïve bug", "Fix déjà vu"}
    assert commits["b"].author_email == "j\\xe8@example.com"
    assert commits["Fix naïve bug"].author_email == "jé@example.com"

    code, _, err = run_cli(["backfill"], capsys)
    assert code == 0, err
    store = open_store(store_url)
    try:
        authors = {a for _, _, a, _ in store.commit_features(store.repositories()[0][0])}
    finally:
        store.close()
    assert authors == {"j\\xe8@example.com", "j\\xe9@example.com", "jé@example.com", "test@example.com"}


# -- a locale that cannot spell the names ----------------------------------------------------------


def test_commands_under_an_ascii_locale(tmp_path: Path) -> None:
    """Python under LC_ALL=C without UTF-8 mode: file system and terminal encodings are ASCII."""
    repo = make_repo(tmp_path / "dépôt")  # even the work tree's own path is not ASCII
    repo.commit({"README.md": "# project\n"}, "initial import")
    commit_bytes(repo, {LATIN1: source(1)}, b"add caf\xe9")
    naive = "src/naïve.py".encode()
    commit_bytes(repo, {naive: source(1)}, b"add naive")
    commit_bytes(repo, {naive: source(2)}, b"Fix naive")
    subprocess.run([b"git", b"checkout", b"-q", b"-b", "naïve".encode()], cwd=repo.path, check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    env.update(LC_ALL="C", PYTHONCOERCECLOCALE="0", PYTHONUTF8="0", CI_RISK_DB=str(tmp_path / "h.sqlite"))

    def ci_risk(*args: str) -> str:
        proc = subprocess.run([CI_RISK, *args], cwd=repo.path, capture_output=True, env=env)
        out = (proc.stdout + proc.stderr).decode("utf-8")  # click writes UTF-8 to an ASCII terminal
        assert proc.returncode == 0 and "Traceback" not in out and "internal error" not in out, out
        return out

    assert "on naïve" in ci_risk("record", "--status", "fail")
    assert "SZZ: 1 fix-inducing commits" in ci_risk("backfill")
    assert "naïve" in ci_risk("history")
    ci_risk("check", "--from", "HEAD~2", "--to", "HEAD", "--strict")

    # The push path writes without click: what an ASCII terminal cannot show is escaped, not an error.
    script = (
        "from ci_risk_hook.gate import entry, run; entry._never_fail_on_encoding(); "
        "run._out('adds 1 new file: src/na\\u00efve.py, caf\\udce9.py')"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"adds 1 new file: src/na\\xefve.py, caf\\udce9.py\n"
