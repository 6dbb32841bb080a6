"""Labels from git history: reverts and SZZ, on small repositories whose bug-introducing commits are known.

Assertions compare commit subjects, not shas, so a failure names the commits.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ci_risk_hook.mining import labels
from ci_risk_hook.mining.labels import CommitLabel, SzzResult
from testing.repos import Repo, make_repo


def subjects(repo: Repo) -> dict[str, str]:
    out = repo.git("log", "--all", "--format=%H %s")
    return dict(line.split(" ", 1) for line in out.splitlines())


def readable(repo: Repo, found: list[CommitLabel]) -> dict[str, tuple[tuple[str, ...], int]]:
    """{labelled subject: (evidence subjects, lines)}."""
    names = subjects(repo)
    return {names.get(lb.commit, lb.commit): (tuple(names.get(e, e) for e in lb.evidence), lb.lines) for lb in found}


def run_szz(repo: Repo, **kwargs: Any) -> tuple[dict[str, tuple[tuple[str, ...], int]], labels.SzzStats]:
    result = labels.szz(str(repo.path), **kwargs)
    assert isinstance(result, SzzResult)
    assert all(lb.source == "szz" for lb in result.labels)
    return readable(repo, result.labels), result.stats


def delete_object(repo: Repo, rev: str) -> str:
    sha = repo.git("rev-parse", rev)
    path = repo.path / ".git" / "objects" / sha[:2] / sha[2:]
    assert path.exists(), f"expected {rev} ({sha}) to be a loose object at {path}"
    os.chmod(path, 0o644)
    path.unlink()
    return sha


APP = "def area(w, h):\n    return w * h\n\n\ndef name():\n    return 'app'\n"


# --- SZZ --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", [1, 2])
def test_fix_blames_exactly_the_commit_that_wrote_the_changed_line(repo: Repo, jobs: int) -> None:
    repo.commit({"src/app.py": "def name():\n    return 'app'\n"}, "initial app")
    repo.commit({"src/app.py": APP}, "add area")
    repo.commit({"src/other.py": "x = 1\n"}, "unrelated one")
    repo.commit({"src/app.py": APP + "\n\ndef version():\n    return 1\n"}, "unrelated two")
    repo.commit(
        {"src/app.py": APP.replace("w * h", "w * h if w > 0 else 0") + "\n\ndef version():\n    return 1\n"},
        "Fix area for negative widths",
    )
    found, stats = run_szz(repo, jobs=jobs)
    assert found == {"add area": (("Fix area for negative widths",), 1)}, (
        f"only 'add area' wrote the line the fix changed; got {found}"
    )
    assert stats.fixes_seen == 1 and stats.files_blamed == 1 and stats.lines_blamed == 1, stats


def test_tests_and_docs_touched_by_the_fix_are_not_blamed(repo: Repo) -> None:
    repo.commit({"src/app.py": APP}, "add area")
    repo.commit({"tests/test_app.py": "def test_area():\n    assert area(1, 2) == 2\n"}, "add test")
    repo.commit({"docs/guide.md": "Area is w times h.\n"}, "add guide")
    repo.commit({"setup.py": "setup(name='app')\n"}, "add setup")
    repo.commit(
        {
            "src/app.py": APP.replace("w * h", "abs(w * h)"),
            "tests/test_app.py": "def test_area():\n    assert area(-1, 2) == 2\n",
            "docs/guide.md": "Area is the absolute value of w times h.\n",
            "setup.py": "setup(name='app', version='1')\n",
        },
        "Fix negative area",
    )
    found, stats = run_szz(repo)
    assert found == {"add area": (("Fix negative area",), 1)}, (
        f"the test, docs and build files the fix changed must not be blamed; got {found}"
    )
    assert stats.files_blamed == 1, stats


def test_whitespace_and_comment_only_changes_blame_no_one(repo: Repo) -> None:
    repo.commit(
        {
            "src/app.py": "def load(path):\n    # read the file\n    value=1\n\n    return value\n",
            "src/native.c": "/* native helpers */\n// helper\nint f(void) {\n    return 1;\n}\n",
        },
        "add loader",
    )
    repo.commit(
        {
            "src/app.py": "def load(path):\n    # read the config file\n    value = 1\n    return value\n",
            "src/native.c": "/* native helpers, fast */\n// a helper\nint f(void) {\n\treturn 1;\n}\n",
        },
        "Fix formatting bug in comments",
    )
    found, stats = run_szz(repo)
    assert found == {}, f"reindenting, deleting a blank line and editing comments blame nobody; got {found}"
    assert stats.fixes_seen == 1, stats


def test_preprocessor_lines_are_code_in_c_not_comments(repo: Repo) -> None:
    repo.commit({"src/native.c": "#define LIMIT 10\nint f(void) { return LIMIT; }\n"}, "add limit")
    repo.commit({"src/native.c": "#define LIMIT 20\nint f(void) { return LIMIT; }\n"}, "Fix limit")
    found, _ = run_szz(repo)
    assert found == {"add limit": (("Fix limit",), 1)}, f"a #define line is code in C; got {found}"


def test_deleted_and_changed_lines_are_both_blamed(repo: Repo) -> None:
    repo.commit({"src/calc.py": "a = 1\nb = 2\n"}, "start calc")
    repo.commit({"src/calc.py": "a = 1\n-- a/b\nb = 2\n"}, "add double negation")
    repo.commit({"src/calc.py": "a = 1\n-- a/b\nb = 2\nc = a + b\n"}, "add sum")
    # Deletes the line "-- a/b" (which git prints as "--- a/b") and changes "c = a + b".
    repo.commit({"src/calc.py": "a = 1\nb = 2\nc = a - b\n"}, "Fix calc bug")
    found, stats = run_szz(repo)
    assert found == {
        "add double negation": (("Fix calc bug",), 1),
        "add sum": (("Fix calc bug",), 1),
    }, f"both the deleted line and the changed line must be blamed; got {found}"
    assert stats.lines_blamed == 2, stats


def test_a_fix_that_only_adds_lines_blames_no_one(repo: Repo) -> None:
    repo.commit({"src/app.py": APP}, "add area")
    repo.commit({"src/app.py": APP + "\n\ndef check(w):\n    assert w >= 0\n"}, "Fix missing check")
    found, _ = run_szz(repo)
    assert found == {}, f"B-SZZ blames only lines a fix deletes or changes; got {found}"


def test_evidence_and_lines_accumulate_over_fixes(repo: Repo) -> None:
    repo.commit({"src/app.py": "a = 1\nb = 2\nc = 3\n"}, "add values")
    repo.commit({"src/app.py": "a = 10\nb = 2\nc = 3\n"}, "Fix a")
    repo.commit({"src/app.py": "a = 10\nb = 20\nc = 30\n"}, "Fix b and c")
    found, _ = run_szz(repo)
    assert found == {"add values": (("Fix b and c", "Fix a"), 3)}, (
        f"evidence lists every fix, newest first, and lines add up; got {found}"
    )


def test_blamed_commits_committed_after_the_fix_or_before_since_are_dropped(repo: Repo) -> None:
    repo.commit({"src/app.py": "a = 1\nb = 2\n"}, "old values", at=1_500_000_000)
    repo.commit({"src/app.py": "a = 1\nb = 3\n"}, "clock-skewed change", at=1_700_000_000)
    repo.commit({"src/app.py": "a = 2\nb = 4\n"}, "Fix values", at=1_600_000_000)
    found, stats = run_szz(repo)
    assert found == {"old values": (("Fix values",), 1)}, f"a commit dated after its fix is not blamed; got {found}"
    assert stats.lines_skipped_time == 1, stats
    found, stats = run_szz(repo, since=1_550_000_000)
    assert found == {}, f"'old values' is older than since; got {found}"
    assert stats.lines_skipped_time == 2, stats


def test_max_fixes_takes_the_newest_and_progress_counts_them(repo: Repo) -> None:
    repo.commit({"src/app.py": "a = 1\nb = 2\nc = 3\n"}, "add values")
    repo.commit({"src/app.py": "a = 10\nb = 2\nc = 3\n"}, "Fix a")
    repo.commit({"src/app.py": "a = 10\nb = 20\nc = 3\n"}, "Fix b")
    repo.commit({"src/app.py": "a = 10\nb = 20\nc = 30\n"}, "Fix c")
    calls: list[tuple[int, int]] = []
    found, stats = run_szz(repo, max_fixes=2, progress=lambda done, total: calls.append((done, total)))
    assert found == {"add values": (("Fix c", "Fix b"), 2)}, found
    assert calls == [(1, 2), (2, 2)], f"progress(done, total) after each fix; got {calls}"
    assert stats.fixes_seen == 2


def test_merges_reverts_and_root_commits_are_not_fixes(repo: Repo) -> None:
    repo.commit({"src/app.py": "a = 1\nb = 2\n"}, "Fix everything in the first commit")
    repo.git("checkout", "-q", "-b", "side")
    repo.commit({"src/app.py": "a = 5\nb = 2\n"}, "change a")
    repo.git("checkout", "-q", "main")
    repo.commit({"src/other.py": "x = 1\n"}, "add other")
    repo.git(
        "merge",
        "-q",
        "--no-ff",
        "-m",
        "Merge branch with bug fix",
        "side",
        env={"GIT_AUTHOR_DATE": "1600100000 +0000", "GIT_COMMITTER_DATE": "1600100000 +0000"},
    )
    first_parent_diff = repo.git("diff", "--stat", "HEAD^1", "HEAD")
    assert "src/app.py" in first_parent_diff, "the merge should change app.py relative to its first parent"
    repo.git("revert", "--no-edit", "HEAD~1")  # reverts "add other"; its message is not a fix
    repo.commit({"src/app.py": "a = 5\nb = 3\n"}, 'Revert "bugfix for b"')
    found, stats = run_szz(repo)
    assert found == {}, f"merges, reverts and root commits are never fixes; got {found}"
    assert stats.fixes_seen == 0 and stats.fixes_skipped_root == 1, stats


def test_missing_blob_in_the_parent_skips_that_file_only(repo: Repo) -> None:
    repo.commit({"src/a.py": "a = 1\n", "src/b.py": "b = 1\n"}, "add a and b")
    repo.commit({"src/a.py": "a = 2\n", "src/b.py": "b = 2\n"}, "Fix a and b")
    fix = repo.head()
    delete_object(repo, "HEAD^:src/a.py")
    found, stats = run_szz(repo)
    assert found == {"add a and b": (("Fix a and b",), 1)}, f"b.py should still be blamed; got {found}"
    assert stats.files_skipped_missing == 1 and stats.files_blamed == 1, stats
    assert stats.missing == [(fix, "src/a.py")], stats.missing


def test_missing_blob_deeper_in_history_skips_that_file(repo: Repo) -> None:
    repo.commit({"src/a.py": "a = 1\nb = 1\n"}, "add a")
    repo.commit({"src/a.py": "a = 1\nb = 2\n"}, "change b")
    repo.commit({"src/a.py": "a = 3\nb = 2\n"}, "Fix a")
    delete_object(repo, "HEAD~2:src/a.py")
    found, stats = run_szz(repo)
    assert found == {}, found
    assert stats.files_skipped_missing == 1 and stats.fixes_seen == 1, stats


ODD_NAMES = ["src/with space.py", "src/naïve.py", "src/new\nline.py", "src/a*.py", 'src/quote"d.py']


def test_odd_file_names(repo: Repo) -> None:
    repo.commit({name: "value = 1\n" for name in ODD_NAMES}, "add odd files")
    repo.commit({"src/a_test.py": "value = 1\n"}, "add test")
    for i, name in enumerate(ODD_NAMES):
        # "src/a*.py" taken as a glob would also match the test file changed alongside it.
        repo.commit({name: f"value = {i + 2}\n", "src/a_test.py": f"value = {i + 2}\n"}, f"Fix file {i}")
    found, stats = run_szz(repo)
    assert found == {
        "add odd files": (tuple(f"Fix file {i}" for i in reversed(range(len(ODD_NAMES)))), len(ODD_NAMES))
    }, f"each odd name is blamed once, nothing else; got {found}"
    assert stats.files_blamed == len(ODD_NAMES) and stats.files_skipped_missing == 0, stats


def test_shallow_clone_does_not_blame_the_boundary(repo: Repo, tmp_path: Path) -> None:
    repo.commit({"src/app.py": "a = 1\nb = 2\n"}, "old values")
    repo.commit({"src/other.py": "x = 1\n"}, "boundary commit")
    repo.commit({"src/app.py": "a = 1\nb = 2\nc = 3\n"}, "add c")
    repo.commit({"src/app.py": "a = 0\nb = 2\nc = 4\n"}, "Fix a and c")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth=3", f"file://{repo.path}", str(shallow)], check=True)
    result = labels.szz(str(shallow))
    found = readable(repo, result.labels)
    assert found == {"add c": (("Fix a and c",), 1)}, f"line 'a = 1' predates the shallow boundary; got {found}"
    assert result.stats.shallow and result.stats.lines_skipped_shallow == 1, result.stats


# --- reverts ----------------------------------------------------------------------------------------


def reverts(repo: Repo, **kwargs: Any) -> dict[str, tuple[str, ...]]:
    found = labels.find_reverts(str(repo.path), **kwargs)
    assert all(lb.source == "revert" and lb.lines == 0 for lb in found)
    return {subject: evidence for subject, (evidence, _) in readable(repo, found).items()}


def test_git_revert_labels_the_reverted_commit(repo: Repo) -> None:
    repo.commit({"src/app.py": "a = 1\n"}, "add app")
    repo.commit({"src/app.py": "a = 2\n"}, "risky change")
    repo.git("revert", "--no-edit", "HEAD")
    found = reverts(repo)
    assert found == {"risky change": ('Revert "risky change"',)}, found


def test_revert_of_a_revert_labels_the_original_revert(repo: Repo) -> None:
    repo.commit({"src/app.py": "a = 1\n"}, "add app")
    repo.commit({"src/app.py": "a = 2\n"}, "feature")
    repo.git("revert", "--no-edit", "HEAD")
    repo.git("revert", "--no-edit", "HEAD")
    found = reverts(repo)
    assert found == {
        "feature": ('Revert "feature"',),
        'Revert "feature"': ('Revert "Revert "feature""',),
    }, f"each revert labels its direct target; the reverted feature keeps its label; got {found}"


def test_abbreviated_and_unknown_shas(repo: Repo) -> None:
    repo.commit({"src/app.py": "a = 1\n"}, "add app")
    bad = repo.commit({"src/app.py": "a = 2\n"}, "bad change")
    repo.commit({"src/app.py": "a = 1\n"}, f'Revert "bad change"\n\nThis reverts commit {bad[:8]}.')
    repo.commit({"src/app.py": "a = 3\n"}, f"Undo\n\nThis reverts commit {'f' * 40}.\nThis Reverts Commit {bad}.")
    found = reverts(repo)
    assert found == {"bad change": ("Undo", 'Revert "bad change"')}, (
        f"an abbreviated sha resolves, an unknown one is ignored; got {found}"
    )


def test_reverts_on_other_branches_count_with_all(repo: Repo) -> None:
    repo.commit({"src/app.py": "a = 1\n"}, "add app")
    repo.commit({"src/app.py": "a = 2\n"}, "change")
    repo.git("checkout", "-q", "-b", "side")
    repo.git("revert", "--no-edit", "HEAD")
    repo.git("checkout", "-q", "main")
    assert reverts(repo) == {"change": ('Revert "change"',)}
    assert reverts(repo, rev_args=["main"]) == {}


# --- parsing details --------------------------------------------------------------------------------


def test_diff_parser_counts_hunk_lines_instead_of_trusting_prefixes() -> None:
    out = (
        b'diff --git "a/n\\nl.py" "b/n\\nl.py"\nindex 1..2 100644\n--- "a/n\\nl.py"\n+++ "b/n\\nl.py"\n'
        b"@@ -3,2 +3 @@ x\n--- a/b\n-+++ b/c\n+new\n\\ No newline at end of file\n"
        b"diff --git a/x y.py b/x y.py\nindex 1..2 100644\nBinary files a/x y.py and b/x y.py differ\n"
    )
    removed, binary = labels._parse_diff(out)
    assert removed == {"n\nl.py": [(3, b"-- a/b"), (4, b"+++ b/c")]}
    assert binary == {"x y.py"}


@pytest.mark.parametrize(
    "path,text,noise",
    [
        ("a.py", b"   # note", True),
        ("a.py", b"", True),
        ("a.py", b"x = 1  # note", False),
        ("a.c", b"#include <x.h>", False),
        ("a.c", b" * doc", True),
        ("a.c", b"*p = 0;", False),
        ("a.c", b"/* a */ x = 1;", False),
        ("a.c", b"/* a */", True),
        ("a.c", b"--i;", False),
        ("a.lua", b"-- note", True),
        ("a.go", b"// note", True),
        ("a.txt.py", b"// x", False),
    ],
)
def test_comment_lines(path: str, text: bytes, noise: bool) -> None:
    assert labels._is_noise(text, labels._comment_style(path)) is noise


def test_not_a_repository(tmp_path: Path) -> None:
    from ci_risk_hook.git import repo as git

    with pytest.raises(git.GitError):
        labels.szz(str(tmp_path))
    with pytest.raises(git.GitError):
        labels.find_reverts(str(tmp_path))


def test_empty_repository_history(tmp_path: Path) -> None:
    r = make_repo(tmp_path / "r")
    r.commit({"README.md": "x\n"}, "docs")
    result = labels.szz(str(r.path))
    assert result.labels == [] and result.stats.fixes_seen == 0
    assert labels.find_reverts(str(r.path)) == []


def test_binary_source_files_are_skipped(repo: Repo) -> None:
    repo.commit({"src/table.c": b"\x00\x01 a = 1;\n"}, "add table")
    repo.commit({"src/table.c": b"\x00\x02 a = 2;\n"}, "Fix table")
    found, stats = run_szz(repo)
    assert found == {} and stats.files_skipped_binary == 1, (found, stats)


def test_user_git_config_does_not_change_results(repo: Repo) -> None:
    for key, value in [
        ("diff.noprefix", "true"),
        ("color.ui", "always"),
        ("diff.external", "false"),
        ("blame.ignoreRevsFile", ".no-such-file"),
        ("log.showSignature", "true"),
        ("diff.mnemonicPrefix", "true"),
        ("core.quotepath", "true"),
        ("diff.algorithm", "patience"),
    ]:
        repo.git("config", key, value)
    repo.commit({"src/ä.py": APP}, "add area")
    repo.commit({"src/ä.py": APP.replace("w * h", "abs(w * h)")}, "Fix negative area")
    repo.git("revert", "--no-edit", "HEAD")
    found, _ = run_szz(repo)
    assert found == {"add area": (("Fix negative area",), 1)}, found
    assert reverts(repo) == {"Fix negative area": ('Revert "Fix negative area"',)}
