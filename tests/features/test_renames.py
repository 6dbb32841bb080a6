"""A renamed file is one file with one history, not a deletion plus a new file (issue 12, fix 1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ci_risk_hook.features.analysis import analyze
from ci_risk_hook.features.extract import Limits
from ci_risk_hook.git import repo as git
from ci_risk_hook.git.ranges import PushRange
from ci_risk_hook.mining.backfill import backfill_commits
from ci_risk_hook.outcomes.store import open_store
from testing.repos import Repo, lines

DAY = 86_400
T0 = 1_600_000_000
ALICE = "Alice <alice@example.com>"
BOB = "Bob <bob@example.com>"


def push_features(repo: Repo, base: str) -> dict[str, float | None]:
    info = git.repo_info(str(repo.path))
    return analyze(PushRange(tip=repo.head(), exclude=(base,)), info, Limits(), cwd=str(repo.path)).values


def rename(repo: Repo, old: str, new: str, content: str, at: int, author: str = ALICE) -> str:
    (repo.path / new).parent.mkdir(parents=True, exist_ok=True)
    repo.git("mv", "--", old, new)
    return repo.commit({new: content}, f"move {old}", author=author, at=at)


def grown_file(repo: Repo) -> None:
    """src/old.py: 100 lines by Alice at day 0, 10 more by Bob at day 10."""
    repo.commit({"src/old.py": lines(100)}, "add old", author=ALICE, at=T0)
    repo.commit({"src/old.py": lines(110)}, "grow old", author=BOB, at=T0 + 10 * DAY)


def test_a_renamed_file_in_the_push_counts_its_changed_lines_and_keeps_its_history(repo: Repo) -> None:
    grown_file(repo)
    base = repo.head()
    rename(repo, "src/old.py", "src/new.py", lines(111), at=T0 + 40 * DAY)
    v = push_features(repo, base)
    assert (v["nf"], v["la"], v["ld"]) == (1, 1, 0)  # not 111 added and 110 deleted
    assert v["new_files"] == 0
    assert v["file_age_days"] == pytest.approx(40)
    assert v["days_since_file_change"] == pytest.approx(30)
    assert (v["nuc"], v["ndev"], v["lt"]) == (2, 2, 110)


def test_the_history_index_follows_earlier_renames(repo: Repo) -> None:
    grown_file(repo)
    rename(repo, "src/old.py", "src/mid.py", lines(110), at=T0 + 20 * DAY, author=BOB)
    rename(repo, "src/mid.py", "lib/new.py", lines(110), at=T0 + 25 * DAY, author="Carol <carol@example.com>")
    base = repo.head()
    repo.commit({"lib/new.py": lines(112)}, "touch new", author=ALICE, at=T0 + 30 * DAY)
    v = push_features(repo, base)
    assert v["new_files"] == 0
    assert v["file_age_days"] == pytest.approx(30)
    assert v["days_since_file_change"] == pytest.approx(5)
    assert (v["nuc"], v["ndev"], v["lt"]) == (4, 3, 110)


def test_a_new_file_under_a_name_renamed_away_later_does_not_inherit_the_later_history(repo: Repo) -> None:
    repo.commit({"a.py": lines(5)}, "add a", at=T0)
    rename(repo, "a.py", "b.py", lines(5), at=T0 + DAY)
    repo.commit({"b.py": lines(7)}, "grow b", at=T0 + 2 * DAY)  # after the rename: b's own history
    base = repo.head()
    repo.commit({"c.py": lines(3), "b.py": lines(8)}, "touch", at=T0 + 3 * DAY)
    v = push_features(repo, base)
    assert v["nuc"] == 3 and v["new_files"] == 1


@pytest.mark.parametrize(
    "old, new",
    [
        ("plain.py", "dir with space/re named.py"),
        ("a => b.py", "{x => y}.py"),
        ("tab\there.py", "new\nline.py"),
        ("back\\slash.py", "naïve.py"),
    ],
)
def test_rename_records_with_odd_names_are_parsed_exactly(repo: Repo, old: str, new: str) -> None:
    repo.commit({old: lines(20), "other.py": "x\n"}, "add")
    rename(repo, old, new, lines(21), at=repo.clock + DAY)
    tip = next(git.iter_commits(["HEAD", "-1"], str(repo.path)))
    assert tip.files == [git.FileChange(git.decode_name(new.encode()), 1, 0, git.decode_name(old.encode()))]


def test_rename_of_a_non_utf8_name(repo: Repo) -> None:
    old, new = b"caf\xe9.py", b"d\xe9j\xe0 vu.py"
    (repo.path / old.decode("utf-8", "surrogateescape")).write_bytes(b"".join(b"%d\n" % i for i in range(20)))
    repo.git("add", "-A")
    repo.commit({}, "add latin-1 name")
    repo.git("mv", old.decode("utf-8", "surrogateescape"), new.decode("utf-8", "surrogateescape"))
    repo.commit({}, "rename it")
    tip = next(git.iter_commits(["HEAD", "-1"], str(repo.path)))
    assert [(f.old_path, f.path) for f in tip.files] == [(git.decode_name(old), git.decode_name(new))]
    assert git.encode_name(tip.files[0].path) == new


def test_backfill_follows_renames_as_the_index_does(repo: Repo, tmp_path: Path) -> None:
    """Training-serving skew check with renames: the streaming history answers as the index does."""
    grown_file(repo)
    rename(repo, "src/old.py", "src/mid.py", lines(111), at=T0 + 20 * DAY, author=BOB)
    repo.commit({"src/mid.py": lines(115), "src/x.py": "x\n"}, "grow mid", at=T0 + 22 * DAY)
    rename(repo, "src/mid.py", "lib/new.py", lines(110), at=T0 + 25 * DAY, author="Carol <carol@example.com>")
    repo.commit({"lib/new.py": lines(112), "src/mid.py": lines(2)}, "new mid", author=ALICE, at=T0 + 30 * DAY)
    repo.commit({"src/mid.py": lines(3), "lib/new.py": lines(100)}, "both", author=BOB, at=T0 + 31 * DAY)
    store = open_store(str(tmp_path / "h.sqlite"))
    repo_id = store.repository_id(repo.git("rev-list", "--max-parents=0", "HEAD"))
    backfill_commits(store, repo_id, cwd=str(repo.path))
    stored = {sha: values for sha, _, _, values in store.commit_features(repo_id)}
    info = git.repo_info(str(repo.path))
    for sha in repo.git("rev-list", "HEAD").split():
        parents = repo.git("rev-list", "--parents", "-n", "1", sha).split()[1:]
        expected = analyze(PushRange(tip=sha, exclude=tuple(parents[:1])), info, Limits(), cwd=str(repo.path)).values
        assert stored[sha] == expected, sha
    store.close()


def test_a_push_touching_hundreds_of_renamed_files_follows_them_all(repo: Repo) -> None:
    """More earlier names than one SQL statement may hold (SQLite: 500 terms of a compound SELECT)."""
    count = 600
    (repo.path / "old").mkdir()
    for i in range(count):
        (repo.path / "old" / f"m{i}.py").write_text(f"value = {i}\n")
    repo.git("add", "-A")
    repo.commit({}, "add modules", author=ALICE, at=T0)
    repo.git("mv", "old", "new")
    repo.commit({}, "move modules", author=BOB, at=T0 + DAY)
    base = repo.head()
    for i in range(count):
        (repo.path / "new" / f"m{i}.py").write_text(f"value = {i + 1}\n")
    repo.git("add", "-A")
    repo.commit({}, "bump all", author=ALICE, at=T0 + 2 * DAY)
    v = push_features(repo, base)
    assert (v["nf"], v["new_files"], v["nuc"], v["ndev"]) == (count, 0, 2, 2)
    assert v["file_age_days"] == pytest.approx(2)


def test_backfill_goes_past_a_rename_whose_blob_is_missing(repo: Repo, tmp_path: Path) -> None:
    """Rename detection reads both files' contents: a missing one (a snapshot without its large files,
    a partial clone) once stopped backfill's walk there; the commit gets its files, lines unknown."""
    grown_file(repo)
    moved = repo.commit({"src/old.py": None, "src/new.py": lines(108)}, "move and trim", at=T0 + 20 * DAY)
    later = repo.commit({"src/other.py": lines(3)}, "later", at=T0 + 30 * DAY)
    blob = repo.git("rev-parse", f"{moved}:src/new.py")
    os.remove(repo.path / ".git" / "objects" / blob[:2] / blob[2:])
    (repo.path / "src" / "new.py").unlink()  # else git reads the work tree's copy instead of the blob
    store = open_store(str(tmp_path / "h.sqlite"))
    repo_id = store.repository_id(repo.git("rev-list", "--max-parents=0", "HEAD"))
    stats = backfill_commits(store, repo_id, cwd=str(repo.path))
    stored = {sha: values for sha, _, _, values in store.commit_features(repo_id)}
    store.close()
    assert stats.commits_added == 4
    assert stored[moved]["nf"] == 2 and stored[moved]["la"] is None  # old.py deleted, new.py added: lines unknown
    assert stored[later]["la"] == 3
