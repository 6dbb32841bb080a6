"""A merge commit's files and lines are its diff against its first parent (issue 12, fix 3)."""

from __future__ import annotations

from pathlib import Path

from ci_risk_hook.features.analysis import analyze
from ci_risk_hook.features.extract import Limits
from ci_risk_hook.git import repo as git
from ci_risk_hook.git.ranges import PushRange
from ci_risk_hook.mining.backfill import backfill_commits
from ci_risk_hook.outcomes.store import open_store
from testing.repos import Repo, lines


def merged_topic(repo: Repo) -> tuple[str, str]:
    """main with src/app.py; topic adds 10 lines to it and a 5-line file; merged with --no-ff. (main before, topic)"""
    repo.commit({"src/app.py": lines(20), "README.md": "r\n"}, "start")
    repo.git("checkout", "-q", "-b", "topic")
    repo.commit({"src/app.py": lines(30)}, "grow app")
    topic = repo.commit({"lib/util.py": lines(5)}, "add util")
    repo.git("checkout", "-q", "main")
    main = repo.commit({"README.md": "readme\n"}, "docs")
    repo.git("merge", "-q", "--no-ff", "-m", "Merge topic", "topic")
    return main, topic


def features(repo: Repo, exclude: tuple[str, ...]) -> dict[str, float | None]:
    info = git.repo_info(str(repo.path))
    return analyze(PushRange(tip=repo.head(), exclude=exclude), info, Limits(), cwd=str(repo.path)).values


def test_a_merge_alone_counts_what_it_brings_into_the_branch(repo: Repo) -> None:
    main, topic = merged_topic(repo)
    v = features(repo, (main, topic))  # the topic was pushed before: only the merge is new
    assert (v["n_commits"], v["n_merges"], v["nf"], v["la"], v["ld"], v["ns"]) == (1, 1, 2, 15, 0, 2)
    assert (v["new_files"], v["nuc"]) == (0, 3)  # the topic's commits are the files' history


def test_a_merge_with_its_branch_in_the_range_is_not_counted_twice(repo: Repo) -> None:
    main, _ = merged_topic(repo)
    v = features(repo, (main,))
    assert (v["n_commits"], v["n_merges"], v["nf"], v["la"]) == (3, 1, 2, 15)


def test_backfill_gives_a_merge_its_first_parent_diff_and_history_skips_it(repo: Repo, tmp_path: Path) -> None:
    merged_topic(repo)
    repo.commit({"src/app.py": lines(31)}, "after the merge")
    store = open_store(str(tmp_path / "h.sqlite"))
    repo_id = store.repository_id(repo.git("rev-list", "--max-parents=0", "HEAD"))
    backfill_commits(store, repo_id, cwd=str(repo.path))
    stored = {sha: values for sha, _, _, values in store.commit_features(repo_id)}
    merge = stored[repo.git("rev-parse", "HEAD^")]
    assert (merge["nf"], merge["la"]) == (2, 15)
    after = stored[repo.head()]
    assert after["nuc"] == 2  # "start" and "grow app": the merge adds nothing to a file's history
    hook = features(repo, (repo.git("rev-parse", "HEAD^"),))
    assert hook == after
    store.close()
