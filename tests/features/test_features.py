"""Features computed from real repositories, with the numbers a reader can check by hand."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pytest

from ci_risk_hook.features import categories
from ci_risk_hook.features.analysis import analyze
from ci_risk_hook.features.extract import FEATURE_NAMES, SCHEMA, Limits
from ci_risk_hook.git import repo as git
from ci_risk_hook.git.ranges import PushRange
from testing.repos import Repo, lines, make_repo


def features_of(repo: Repo, base: str | None, tip: str = "HEAD", limits: Limits = Limits()) -> "object":
    info = git.repo_info(str(repo.path))
    tip_sha = repo.git("rev-parse", tip)
    push_range = PushRange(tip=tip_sha, exclude=(repo.git("rev-parse", base),) if base else ())
    return analyze(push_range, info, limits, cwd=str(repo.path))


def test_schema_is_ordered_unique_and_documented() -> None:
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES))
    assert all(f.doc and f.group for f in SCHEMA)


def test_size_spread_and_entropy(history_repo: Repo) -> None:
    base = history_repo.head()
    history_repo.commit({"src/app.py": lines(60), "docs/guide.md": lines(3)}, "extend app")
    history_repo.commit({"lib/util.py": lines(4)}, "add util")
    result = features_of(history_repo, base)
    v = result.values
    assert v["n_commits"] == 2
    assert v["nf"] == 3
    assert v["ns"] == 3  # src, docs, lib
    assert v["nd"] == 3
    assert v["la"] == 5 + 3 + 4  # app.py grew from 55 to 60 lines
    assert v["ld"] == 0
    churn = [5, 3, 4]
    expected = -sum(c / 12 * math.log2(c / 12) for c in churn)
    assert v["entropy"] == pytest.approx(expected)
    assert v["files_src_python"] == 2 and v["files_docs"] == 1


def test_categories_of_common_paths() -> None:
    cases = {
        ".github/workflows/test.yml": "ci",
        ".gitlab-ci.yml": "ci",
        "Jenkinsfile": "ci",
        ".travis.yml": "ci",
        "azure-pipelines.yml": "ci",
        "setup.py": "build",
        "requirements-dev.txt": "build",
        "package.json": "build",
        "yarn.lock": "build",
        "go.mod": "build",
        "pom.xml": "build",
        "build.gradle": "build",
        "Makefile": "build",
        "Dockerfile": "build",
        "pyproject.toml": "build",
        "tests/test_x.py": "test",
        "pkg/foo_test.go": "test",
        "docs/index.rst": "docs",
        "README.md": "docs",
        "src/a.py": "src_python",
        "src/a.c": "src_c_cpp",
        "web/a.tsx": "src_js",
        "A.java": "src_jvm",
        "main.go": "src_go",
        "lib.rs": "src_rust",
        "x.rb": "src_ruby",
        "run.sh": "src_shell",
        "conf/app.yaml": "config",
        ".flake8": "config",
        "data/blob.xyz": "other",
    }
    assert {p: categories.categorize(p) for p in cases} == cases
    assert categories.categorize("logo.png", binary=True) == "binary"


def test_file_and_author_history_before_the_range(history_repo: Repo) -> None:
    base = history_repo.head()
    history_repo.commit(
        {"src/app.py": lines(70), "src/new.py": "x = 1\n"}, "newcomer change", author="Newcomer <new@example.com>"
    )
    v = features_of(history_repo, base).values
    assert v["new_files"] == 1  # src/new.py
    assert v["nuc"] == 6  # src/app.py was changed in all six earlier commits
    assert v["ndev"] == 1
    assert v["lt"] == 55  # src/app.py's size before the push
    assert v["author_exp"] == 0 and v["author_first_commit"] == 1
    assert v["author_tenure_days"] == 0

    base = history_repo.head()
    history_repo.commit({"src/app.py": lines(71)}, "maintainer change", author="Maintainer <maint@example.com>")
    v = features_of(history_repo, base).values
    assert v["author_exp"] == 6 and v["author_first_commit"] == 0
    assert v["author_sexp"] == 6  # every earlier maintainer commit touched src/
    assert v["author_tenure_days"] == pytest.approx(7 * 3600 / 86400)
    assert v["ndev"] == 2  # maintainer and newcomer


def test_messages_and_merges(history_repo: Repo) -> None:
    base = history_repo.head()
    history_repo.git("checkout", "-q", "-b", "topic")
    history_repo.commit({"src/a.py": "a\n"}, "WIP try something")
    history_repo.commit({"src/a.py": "b\n"}, "Fix crash on empty input")
    history_repo.git("checkout", "-q", "main")
    history_repo.commit({"src/b.py": "b\n"}, 'Revert "add feature"')
    history_repo.git("merge", "-q", "--no-ff", "-m", "Merge topic", "topic")
    v = features_of(history_repo, base).values
    assert (v["msg_wip"], v["msg_fix"], v["msg_revert"], v["n_merges"], v["n_commits"]) == (1, 1, 1, 1, 4)


def test_binary_files_and_odd_names(history_repo: Repo) -> None:
    base = history_repo.head()
    odd = "dir with space/naïve\nnewline\tand tab.py"
    history_repo.commit(
        {"assets/logo.png": b"\x89PNG\x00\x01\x02" * 50, odd: "print(1)\n", "-dash.py": "x\n"}, "odd names"
    )
    result = features_of(history_repo, base)
    assert result.values["files_binary"] == 1
    assert result.values["la"] == 2  # binary lines are not counted
    assert odd in result.facts.paths_by_category["src_python"]


def test_root_commit_range_counts_every_file(repo: Repo) -> None:
    repo.commit({"a.py": lines(3), "b.md": lines(2)}, "root")
    v = features_of(repo, None).values
    assert v["n_commits"] == 1 and v["nf"] == 2 and v["la"] == 5
    assert v["author_first_commit"] == 1 and v["new_files"] == 2


def test_empty_range_has_no_commits(history_repo: Repo) -> None:
    result = features_of(history_repo, "HEAD")
    assert result.commits == []


def test_history_store_slots_are_unknown(history_repo: Repo) -> None:
    base = history_repo.head()
    history_repo.commit({"src/app.py": lines(80)})
    v = features_of(history_repo, base).values
    for name in (
        "prev_build_failed",
        "fail_rate_last5",
        "fail_rate_last20",
        "builds_since_failure",
        "touched_files_fail_rate",
        "author_fail_rate",
    ):
        assert v[name] is None, name


def test_shallow_clone_marks_history_unknown(history_repo: Repo, tmp_path: Path) -> None:
    history_repo.commit({"src/app.py": lines(90)}, "tip change")
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "2", f"file://{history_repo.path}", str(clone)], check=True)
    shallow = Repo(clone)
    result = features_of(shallow, None)  # the whole visible history: a grafted root and the tip
    assert result.values["n_commits"] == 2
    assert result.values["author_exp"] is None
    assert result.values["la"] == 35  # only the tip's diff is known
    assert any("shallow" in note for note in result.notes)


def test_missing_blob_scores_with_what_is_known(history_repo: Repo) -> None:
    base = history_repo.head()
    history_repo.commit({"src/app.py": lines(100), "src/other.py": lines(5)}, "big change")
    blob = history_repo.git("rev-parse", "HEAD:src/app.py")
    os.remove(history_repo.path / ".git" / "objects" / blob[:2] / blob[2:])
    result = features_of(history_repo, base)
    assert result.values["nf"] == 2
    assert result.values["la"] is None and result.values["entropy"] is None
    assert any("missing" in note for note in result.notes)


def test_huge_range_is_bounded_and_says_so(history_repo: Repo) -> None:
    base = history_repo.head()
    for i in range(6):
        history_repo.commit({f"src/f{i}.py": "x\n"})
    result = features_of(history_repo, base, limits=Limits(max_commits=4))
    assert result.values["n_commits"] == 4
    assert any("more than 4 commits" in note for note in result.notes)


def test_fifty_thousand_file_diff(history_repo: Repo) -> None:
    base = history_repo.head()
    # fast-import builds the commit without writing 50,000 files to disk.
    parent = history_repo.head()
    stream = [
        b"commit refs/heads/main\n",
        b"committer Bulk <bulk@example.com> 1600100000 +0000\n",
        b"data 9\nbulk add\n",
        f"from {parent}\n".encode(),
    ]
    for i in range(50_000):
        stream.append(f"M 100644 inline gen/d{i % 100}/file_{i}.txt\ndata 2\n{i % 10}\n\n".encode())
    history_repo.git("fast-import", "--quiet", input=b"".join(stream))
    history_repo.git("reset", "-q", "--hard", "main")
    result = features_of(history_repo, base)
    assert result.values["nf"] == 50_000
    assert result.values["la"] == 50_000
    assert any("history looked up for the 2000 most changed" in note for note in result.notes)


def test_submodule_pointer_change_is_a_file_change(history_repo: Repo, tmp_path: Path) -> None:
    base = history_repo.head()
    other = make_repo(tmp_path / "lib")
    sub_sha = other.commit({"x.c": "int x;\n"})
    history_repo.git("update-index", "--add", "--cacheinfo", f"160000,{sub_sha},vendor/lib")
    history_repo.commit({}, "add submodule pointer")
    v = features_of(history_repo, base).values
    assert v["nf"] == 1 and v["files_other"] == 1


def test_corrupt_history_index_leaves_the_file_alone_and_scores_without_history(history_repo: Repo) -> None:
    base = history_repo.head()
    history_repo.commit({"src/app.py": lines(60)})
    features_of(history_repo, base)  # builds the index
    index = history_repo.path / ".git" / "ci-risk" / "history-index.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)
    index.write_bytes(b"this is not a database" * 100)
    result = features_of(history_repo, base)
    assert result.values["la"] == 5 and result.values["author_exp"] is None
    assert any("unreadable" in note for note in result.notes)
    assert index.read_bytes() == b"this is not a database" * 100


def test_index_survives_a_tip_that_was_garbage_collected(history_repo: Repo) -> None:
    base = history_repo.head()
    history_repo.commit({"src/doomed.py": "x\n"}, "soon rewritten")
    history_repo.commit({"src/doomed.py": "y\n"}, "soon rewritten too")
    features_of(history_repo, "HEAD~1")  # indexes up to HEAD~1, recording it as a tip
    history_repo.git("reset", "-q", "--hard", base)
    history_repo.git("reflog", "expire", "--expire=now", "--all")
    history_repo.git("gc", "-q", "--prune=now")
    history_repo.commit({"src/app.py": lines(70)}, "after the rewrite")
    history_repo.commit({"src/app.py": lines(71)}, "next")
    v = features_of(history_repo, "HEAD~1").values
    assert v["nuc"] == 7  # app.py: six fixture commits and the one after the rewrite
    # The rewritten-away commit stays indexed (it was real work by this author): 2, not 1.
    assert v["author_exp"] == 2


def test_index_refuses_a_shallow_clone_so_history_after_unshallowing_is_whole(
    history_repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An index built from a shallow clone's two commits was trusted once the clone was unshallowed: file ages and
    author experience came from two commits of history, silently."""
    from testing.repos import run_cli

    history_repo.commit({"src/app.py": lines(90)}, "tip change")
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "2", f"file://{history_repo.path}", str(clone)], check=True)
    monkeypatch.chdir(clone)
    code, out, err = run_cli(["index"], capsys)
    assert code == 1, (out, err)
    assert err.endswith(
        "Error: shallow clone: the history index needs the whole history (`git fetch --unshallow` first); "
        "nothing indexed\n"
    )
    assert not (clone / ".git" / "ci-risk" / "history-index.sqlite").exists()
    subprocess.run(["git", "fetch", "-q", "--unshallow"], cwd=clone, check=True)
    assert run_cli(["index"], capsys)[0] == 0
    assert features_of(Repo(clone), "HEAD~1").values == features_of(history_repo, "HEAD~1").values


def test_an_index_built_in_a_shallow_clone_is_rebuilt_once_the_clone_is_whole(
    history_repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ci-risk 0.1.0's `ci-risk index` built in a shallow clone, and the index was trusted after `git fetch
    --unshallow`: the boundary commit looked like the first commit, so file ages, earlier commits and author
    experience came from two commits (nuc 1 instead of 6, author_exp 1 instead of 6, file age 1 h instead of 6 h).
    """
    import sqlite3

    from ci_risk_hook import paths
    from ci_risk_hook.features.history_index import build

    history_repo.commit({"src/app.py": lines(90)}, "tip change", author="Maintainer <maint@example.com>")
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "2", f"file://{history_repo.path}", str(clone)], check=True)
    monkeypatch.chdir(clone)
    index = paths.index_file(git.repo_info(str(clone)).common_dir)
    assert build(index, [Repo(clone).head()]) == (2, 2)  # what `ci-risk index` 0.1.0 did there
    features_of(Repo(clone), "HEAD~1")  # still shallow: history unknown, and the index is not judged yet
    subprocess.run(["git", "fetch", "-q", "--unshallow"], cwd=clone, check=True)
    expected = features_of(history_repo, "HEAD~1").values
    assert (expected["nuc"], expected["author_exp"]) == (6, 6)
    assert features_of(Repo(clone), "HEAD~1").values == expected
    with sqlite3.connect(index) as db:
        assert db.execute("SELECT COUNT(*) FROM commits").fetchone() == (6,)  # the range's parent and its history


def test_a_whole_index_is_checked_once_and_kept(history_repo: Repo) -> None:
    """The check of an index's first commits runs once: a whole index is marked, never rebuilt."""
    import sqlite3

    from ci_risk_hook import paths

    history_repo.commit({"src/app.py": lines(90)}, "tip change")
    features_of(history_repo, "HEAD~1")  # builds the index
    index = paths.index_file(git.repo_info(str(history_repo.path)).common_dir)
    features_of(history_repo, "HEAD~1")  # opens it again: its first commit is a root here
    with sqlite3.connect(index) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'whole_history'").fetchone() == ("1",)
        db.execute("UPDATE commits SET n_parents = 0")  # were the check run again, this would be rebuilt
    assert features_of(history_repo, "HEAD~1").values["nuc"] == 6
    with sqlite3.connect(index) as db:
        assert db.execute("SELECT COUNT(*), MAX(n_parents) FROM commits").fetchone() == (6, 0)
