"""Named mutations of the code that matters: each must make at least one test fail.

A test suite proves a behaviour only if it fails when that behaviour is
removed. Each mutant below removes one (a leak guard, a baseline, a
transaction, a packaged file), applied to a temporary copy of the checkout;
the tests named beside it then run against that copy. A mutant whose tests
still pass has *survived*: the suite does not notice that break.

Each run has its own copy, its own pytest temporary directory and its own
PostgreSQL schemas (the tests name them at random), so runs can go side by
side; the check that the tests pass unmutated runs beside them too, and a
failure there voids every verdict.

Usage:
  python scripts/mutants.py                # all mutants; exit 1 if any survives
  python scripts/mutants.py --only NAME    # one (repeatable)
  python scripts/mutants.py --list
  python scripts/mutants.py --jobs 1        # one at a time (default: two, or one on a 1-CPU machine)

Run with the test environment's Python (.venv/bin/python); PostgreSQL
mutants need CI_RISK_TEST_POSTGRES_URL, like the tests.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple, Sequence

ROOT = Path(__file__).resolve().parent.parent
IGNORED = shutil.ignore_patterns(
    ".venv",
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "test-artifacts",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
)


class Mutant(NamedTuple):
    name: str
    meaning: str  # what a user would suffer if it shipped
    file: str
    edits: tuple[tuple[str, str], ...]  # (exact text, replacement); each text must occur exactly once
    tests: tuple[str, ...]
    installed: bool = False  # run the tests against a non-editable install of the mutated copy


MUTANTS: tuple[Mutant, ...] = (
    # First: its killing run waits out the test's 20 s timeout, while the other job runs the next mutants.
    Mutant(
        "ci-summary-blocks-on-a-fifo",
        "a step summary path nobody reads hangs the CI job until its time limit",
        "ci_risk_hook/ci/gate.py",
        (('| getattr(os, "O_NONBLOCK", 0)', ""),),
        ("tests/ci/test_check_ci.py::test_a_summary_or_output_that_is_a_fifo_nobody_reads_never_blocks_the_job",),
    ),
    Mutant(
        "backtest-trains-on-its-block",
        "every published backtest would be optimistic",
        "ci_risk_hook/model/backtest.py",
        (
            (
                "        rows = training_rows(table, cutoff)\n        assert_no_future(table, rows, cutoff)\n",
                "        rows = np.arange(min(i + retrain_every, n))\n",
            ),
        ),
        (
            "tests/model/test_no_lookahead.py::test_every_retrain_of_the_backtest_learns_only_from_builds_finished_before_its_block",
        ),
    ),
    Mutant(
        "history-from-started-builds",
        "training sees outcomes that were not known when the build started",
        "ci_risk_hook/model/dataset.py",
        (
            (
                "by_finish = sorted(builds, key=lambda b: (b.finished_at or 0, b.id))",
                "by_finish = sorted(builds, key=lambda b: (b.started_at or 0, b.id))",
            ),
            (
                "while j < len(by_finish) and (by_finish[j].finished_at or 0) < start:",
                "while j < len(by_finish) and (by_finish[j].started_at or 0) < start:",
            ),
        ),
        (
            "tests/model/test_no_lookahead.py::test_build_history_features_come_from_builds_finished_before_the_build_started",
        ),
    ),
    Mutant(
        "warn-threshold-zero",
        "a warning on every push",
        "ci_risk_hook/model/training.py",
        (('"warn": threshold_for_recall(p, tail.y, target_recall),', '"warn": 0.0,'),),
        (
            "tests/model/test_training_out_of_time.py::test_warn_and_block_thresholds_hold_on_later_builds_they_were_not_chosen_on",
        ),
    ),
    Mutant(
        "block-threshold-one",
        "block mode that never blocks",
        "ci_risk_hook/model/training.py",
        (('"block": threshold_for_precision(p, tail.y, target_precision),', '"block": 1.0,'),),
        (
            "tests/model/test_training_out_of_time.py::test_warn_and_block_thresholds_hold_on_later_builds_they_were_not_chosen_on",
        ),
    ),
    Mutant(
        "parrot-in-push-order",
        "figures compared with a baseline a hook cannot know",
        "ci_risk_hook/model/backtest.py",
        (
            (
                "parrot_m = metrics(parrot, y, 0.5, None, parrot, parrot_recall=reached)",
                "parrot_m = metrics(_ordered_parrot(table)[done], y, 0.5, None, _ordered_parrot(table)[done], "
                "parrot_recall=reached)",
            ),
        ),
        ("tests/model/test_no_lookahead.py::test_the_published_baseline_is_the_previous_finished_build",),
    ),
    Mutant(
        "calibration-in-sample",
        "over-confident probabilities and thresholds",
        "ci_risk_hook/model/training.py",
        (
            (
                "calibration = _calibrate(fitted.raw(Xc), cal_rows.y)",
                "calibration = _calibrate(fitted.raw(fit_rows.demo if demo else fit_rows.X), fit_rows.y)",
            ),
        ),
        (
            "tests/model/test_training_out_of_time.py::test_calibration_is_learnt_on_the_later_slice_not_on_the_rows_the_model_was_fitted_on",
        ),
    ),
    Mutant(
        "import-transaction-per-row",
        "a failed import leaves half a file recorded",
        "ci_risk_hook/outcomes/record.py",
        (
            ("    batch = batch or BATCH_ROWS\n", "    batch = 1  # a row at a time...\n"),
            (
                "    with store.transaction():\n        for chunk in _batches(records, batch):",
                "    if True:  # ...each committed on its own\n        for chunk in _batches(records, batch):",
            ),
        ),
        ("tests/outcomes/test_import_atomic.py",),
    ),
    Mutant(
        "file-age-always-zero",
        "a feature silently constant",
        "ci_risk_hook/features/extract.py",
        (
            (
                'values["file_age_days"] = sum((before - h.first_time) / DAY for h in histories.values()) '
                "/ len(histories)",
                'values["file_age_days"] = 0.0',
            ),
        ),
        ("tests/features/test_feature_values.py",),
    ),
    Mutant(
        "rexp-equals-exp",
        "recent experience indistinguishable from all experience",
        "ci_risk_hook/features/extract.py",
        (('values["author_rexp"] = float(author.recent_experience)', 'values["author_rexp"] = float(author.commits)'),),
        ("tests/features/test_feature_values.py",),
    ),
    Mutant(
        "bundled-model-not-packaged",
        "an installed hook with no model",
        "setup.cfg",
        (("ci_risk_hook.bundled_model = *.json, *.md", "ci_risk_hook.bundled_model = *.md"),),
        ("tests/test_installed_package.py",),
        installed=True,
    ),
    Mutant(
        "no-migration-lock",
        "two first runs corrupt a shared PostgreSQL schema",
        "ci_risk_hook/outcomes/store.py",
        (('self.execute("SELECT pg_advisory_xact_lock(?)", (_PG_LOCK_KEY,))', "pass"),),
        ("tests/outcomes/test_store_migration_lock.py",),
    ),
    Mutant(
        "gate-never-blocks",
        "block mode that lets every push through",
        "ci_risk_hook/gate/evaluate.py",
        (('return "block" if mode == "block" else "warn"', 'return "warn"'),),
        ("tests/cli/test_cli.py::test_block_mode_exit_codes_follow_the_thresholds",),
    ),
    Mutant(
        "fail-closed",
        "a bug in ci-risk stops every push",
        "ci_risk_hook/gate/run.py",
        (
            (
                "    return _json_error(EXIT_OK, handled.message, output_format)",
                "    return _json_error(EXIT_INTERNAL, handled.message, output_format)",
            ),
        ),
        ("tests/cli/test_cli.py::test_outside_a_repository_fails_open",),
    ),
    Mutant(
        "ci-no-deepening",
        "a CI gate in a depth-1 clone scores one commit of a ten-commit push",
        "ci_risk_hook/ci/shallow.py",
        (
            (
                'if not fetcher.fetch([f"--deepen={depth}"], wants):',
                "if True:",
            ),
        ),
        ("tests/ci/test_check_ci.py::test_github_push_in_a_depth_1_clone_is_deepened_to_its_base",),
    ),
    Mutant(
        "ci-rerun-overwrites-attempts",
        "a rerun of a failed CI run erases the failure from the history",
        "ci_risk_hook/ci/job.py",
        (("        attempt=context.attempt,\n", "        attempt=1,\n"),),
        ("tests/ci/test_record_ci.py::test_record_ci_is_idempotent_per_attempt_in_a_shallow_clone",),
    ),
    Mutant(
        "ci-annotation-unescaped",
        "a file name can forge a second workflow command or annotation",
        "ci_risk_hook/safetext.py",
        (('return text.replace("%", "%25").replace("\\r", "%0D").replace("\\n", "%0A")', "return text"),),
        (
            "tests/ci/test_check_ci.py::test_annotation_escapes_untrusted_text_exactly",
            "tests/ci/test_check_ci.py::test_step_summary_and_annotation_text",
        ),
    ),
    Mutant(
        "store-writes-authors-unhashed",
        "a shared store said to hold keyed hashes would hold every author's e-mail",
        "ci_risk_hook/outcomes/store.py",
        (("[(b, v, self.author_id(a), json.dumps(list(f))", "[(b, v, a, json.dumps(list(f))"),),
        ("tests/outcomes/test_hash_authors.py",),
    ),
    Mutant(
        "commit-features-authors-unhashed",
        "backfill and the history upsert would put every author's e-mail into a store said to hold hashes",
        "ci_risk_hook/outcomes/store.py",
        (("[(repo_id, sha, t, self.author_id(a), v, json.dumps(x))", "[(repo_id, sha, t, a, v, json.dumps(x))"),),
        ("tests/outcomes/test_hash_authors.py",),
    ),
    Mutant(
        "bounded-window-sees-the-future",
        "the organisation model would learn from builds still running when the predicted one started",
        "ci_risk_hook/model/bounded.py",
        (("int(pending[5] or 0) < start:", "int(pending[5] or 0) <= start + 3600:"),),
        ("tests/model/test_bounded.py::test_bounded_reading_gives_the_in_memory_rows_when_everything_fits",),
    ),
    Mutant(
        "pull-trusts-the-manifests-own-key",
        "anyone who can write the bucket signs a model with a key of their own, and every hook takes it",
        "ci_risk_hook/distribution/published.py",
        (('    if signature["key"] not in trusted_keys:\n', "    if False:\n"),),
        ("tests/distribution/test_signing.py::test_a_model_signed_by_another_key_is_refused",),
    ),
    Mutant(
        "pull-accepts-a-rollback",
        "a replayed old manifest, validly signed, brings back a model the team replaced",
        "ci_risk_hook/distribution/cache.py",
        (('if new["created_ms"] < old["created_ms"]:', "if False:"),),
        ("tests/distribution/test_publish_pull.py::test_a_replayed_older_manifest_is_refused_unless_forced",),
    ),
    Mutant(
        "observe-mode-enforces",
        "a team starting in observation mode is warned and blocked like any other",
        "ci_risk_hook/gate/run.py",
        (('    if settings.mode == "observe":', "    if False:"),),
        ("tests/gate/test_prediction_recording.py::test_observe_mode_prints_nothing_exits_0_and_records",),
    ),
    Mutant(
        "monitor-baseline-sees-running-builds",
        "live figures compared with a previous-build rule that reads builds still running",
        "ci_risk_hook/outcomes/monitor.py",
        (
            (
                "k = bisect.bisect_left(self.ends.get(b.branch, []), start)",
                "k = bisect.bisect_left(self.ends.get(b.branch, []), start + 86400)",
            ),
        ),
        ("tests/outcomes/test_monitor.py::test_monitor_figures_equal_figures_computed_from_the_same_rows",),
    ),
    Mutant(
        "monitor-never-drifts",
        "a scheduled monitor that stays green while the gate misses failure after failure",
        "ci_risk_hook/outcomes/monitor.py",
        (("        if recall < target_recall:", "        if False:"),),
        ("tests/outcomes/test_monitor.py::test_drift_fires_on_a_planted_run_of_missed_failures_and_not_before",),
    ),
    Mutant(
        "shallow-built-index-trusted",
        "after unshallowing, history features from the few commits a shallow clone had",
        "ci_risk_hook/features/history_index.py",
        (("                self._distrust_a_shallow_build(identities)\n", ""),),
        ("tests/features/test_features.py::test_an_index_built_in_a_shallow_clone_is_rebuilt_once_the_clone_is_whole",),
    ),
    Mutant(
        "monitor-adds-a-repository",
        "a reading command writes a repository row into a store that did not know it",
        "ci_risk_hook/cli/views.py",
        (
            (
                "        if repo_id is not None:\n            try:\n                moved = spool.move(",
                "        if True:\n            try:\n                moved = spool.move(",
            ),
        ),
        (
            "tests/outcomes/test_reading_never_creates.py::"
            "test_monitor_leaves_the_pending_predictions_of_an_unknown_repository_pending_and_adds_no_row",
        ),
    ),
    Mutant(
        "index-counts-unreadable-lines-as-zero",
        "in a partial clone every file's size (LT) is 0, a made-up number instead of unknown",
        "ci_risk_hook/features/history_index.py",
        (
            (
                "added, deleted = (UNKNOWN_LINES, UNKNOWN_LINES) if c.lines_unknown else (f.added, f.deleted)",
                "added, deleted = f.added, f.deleted",
            ),
        ),
        (
            "tests/git/test_partial_clone.py::test_a_partial_clone_scores_with_every_history_feature_but_the_unreadable_size",
        ),
    ),
    Mutant(
        "backfill-counts-unreadable-lines-as-zero",
        "training rows from a partial clone with sizes (LT) the hook would call unknown",
        "ci_risk_hook/mining/backfill.py",
        (("            if commit.lines_unknown:\n                state.lines_known = False\n", ""),),
        ("tests/git/test_partial_clone.py::test_backfill_on_a_partial_clone_answers_as_the_index_does",),
    ),
    Mutant(
        "partial-clone-walk-one-by-one",
        "indexing a blobless clone takes minutes to hours: one git log per commit, each fed all the rest",
        "ci_risk_hook/git/repo.py",
        (
            (
                "    for start in range(0, len(remaining), _CHUNK):\n"
                "        yield from _read_chunk(cwd, remaining[start : start + _CHUNK], merge_diffs)\n",
                "    for sha in remaining:\n        yield from _read_one(cwd, sha, merge_diffs)\n",
            ),
        ),
        (
            "tests/git/test_partial_clone.py::"
            "test_a_walk_over_a_partial_clone_reads_each_commit_as_far_as_its_blobs_allow_in_a_few_git_runs",
        ),
    ),
    Mutant(
        "partial-clone-lazy-fetch",
        "on a git before 2.44, a push in a partial clone downloads old blobs, or waits on a remote that is down",
        "ci_risk_hook/git/repo.py",
        (('        env["GIT_ALLOW_PROTOCOL"] = ""\n', "        pass\n"),),
        (
            "tests/git/test_partial_clone.py::test_check_fetches_nothing_even_on_a_git_that_ignores_no_lazy_fetch",
            "tests/git/test_partial_clone.py::test_the_promisor_remote_is_never_contacted",
        ),
        installed=True,
    ),
    Mutant(
        "push-goes-nowhere-when-scored",
        "the hook and CI score every push as if its branch were unknown: the model's mainline evidence is lost",
        "ci_risk_hook/gate/evaluate.py",
        (("            features.values.update(push_features(push_range.branch))\n", "            pass\n"),),
        ("tests/outcomes/test_history.py::test_check_says_whether_the_push_goes_to_the_mainline",),
    ),
    Mutant(
        "push-goes-nowhere-when-learnt",
        "training never sees where a build's push went, so the model cannot learn it",
        "ci_risk_hook/model/dataset.py",
        (("        merged.update(push_features(b.branch))\n", ""),),
        ("tests/outcomes/test_history.py::test_a_recorded_builds_branch_reaches_the_table_without_being_stored",),
    ),
    Mutant(
        "hook-branch-from-local-ref",
        "the hook takes the branch a push comes from for the one it goes to: main pushed to a side branch is mainline",
        "ci_risk_hook/git/ranges.py",
        (("        branch = git.short_branch(remote_ref)\n", "        branch = git.short_branch(local_ref)\n"),),
        ("tests/gate/test_push_e2e.py::test_raw_hook_scores_a_push_by_the_branch_it_goes_to",),
    ),
    Mutant(
        "recall-cut-level-frozen",
        "the 90 %-recall cut follows the latest failures' scores but never learns from the ones it let through",
        "ci_risk_hook/model/recall_cut.py",
        (("            self.level = min(", "            self.level = self.level or min("),),
        (
            "tests/model/test_recall_cut.py::test_the_moving_cut_keeps_its_promise_where_a_cut_fixed_at_training_drifts_away",
        ),
    ),
    Mutant(
        "gate-keeps-the-training-cut",
        "`--warn-at recall90` ignores the failures recorded since training: the cut the model was shipped with",
        "ci_risk_hook/gate/evaluate.py",
        (("history.read.is_set() and history.recall_cut is not None", "history.recall_cut is None is not None"),),
        ("tests/model/test_recall_cut.py::test_check_warns_from_the_cut_the_scored_failures_moved",),
    ),
    Mutant(
        "recall-cut-learns-from-hindsight",
        "a score given after its build started (the outcome perhaps known) moves the cut",
        "ci_risk_hook/outcomes/store.py",
        (("                             AND p.predicted_at <= COALESCE(b.started_at, b.finished_at)\n", ""),),
        ("tests/model/test_recall_cut.py::test_scores_given_after_a_build_started_never_move_the_cut",),
    ),
)


class Outcome(NamedTuple):
    mutant: Mutant
    killed: bool
    killers: list[str]
    seconds: float
    detail: str


# No cache written into the tree; a report of failures and skips, which the verdict reads.
PYTEST_OPTIONS = ("-rfs", "-p", "no:cacheprovider")


def own_basetemp(tmp: str) -> tuple[str, ...]:
    """A pytest temporary directory of the run's own: the shared /tmp/pytest-of-USER is not scanned and pruned.

    pytest removes all but the three newest numbered directories there at start-up; after the full suite that
    is hundreds of megabytes of hook environments, deleted by whichever mutant run comes first.
    """
    return ("--basetemp", str(Path(tmp) / "pytest"))


def apply(mutant: Mutant, tree: Path) -> None:
    path = tree / mutant.file
    text = path.read_text(encoding="utf-8")
    for old, new in mutant.edits:
        count = text.count(old)
        if count != 1:
            raise SystemExit(
                f"mutant {mutant.name}: expected the text once in {mutant.file}, found it {count} times "
                f"(the code moved: update scripts/mutants.py): {old[:60]!r}"
            )
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")


def run_one(mutant: Mutant) -> Outcome:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as tmp:
        tree = Path(tmp) / "tree"
        shutil.copytree(ROOT, tree, ignore=IGNORED)
        apply(mutant, tree)
        env = {k: v for k, v in os.environ.items() if k != "CI"}
        import_root = tree
        if mutant.installed:
            import_root = Path(tmp) / "site"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--no-deps",
                    "--target",
                    str(import_root),
                    str(tree),
                ],
                check=True,
                cwd=tmp,
                capture_output=True,
            )
        env["PYTHONPATH"] = str(import_root)
        proc = subprocess.run(
            [sys.executable, "-P", "-m", "pytest", "-q", "-x", *PYTEST_OPTIONS, *own_basetemp(tmp), *mutant.tests],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
        )
    output = proc.stdout + proc.stderr
    killers = sorted(set(re.findall(r"^FAILED (\S+)", output, re.MULTILINE)))
    skipped = re.search(r"\d+ skipped", output)
    killed = proc.returncode != 0 and bool(killers)
    detail = "" if killed else (output.strip().splitlines() or ["no output"])[-1]
    if not killed and skipped:
        detail = f"tests skipped, so they prove nothing: {detail}"
    return Outcome(mutant, killed, killers, time.monotonic() - started, detail)


def verdict(outcome: Outcome) -> str:
    mutant = outcome.mutant
    if outcome.killed:
        return f"killed    {mutant.name:32} by {', '.join(outcome.killers)} ({outcome.seconds:.0f} s)"
    return f"SURVIVED  {mutant.name:32} ({mutant.meaning}): {outcome.detail}"


def baseline(mutants: Sequence[Mutant]) -> list[str]:
    """The tests that fail on the unmutated checkout (a mutant they "kill" proves nothing)."""
    tests = sorted({t for m in mutants for t in m.tests})
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(ROOT)
    with tempfile.TemporaryDirectory(prefix="mutant-baseline-") as tmp:
        proc = subprocess.run(
            [sys.executable, "-P", "-m", "pytest", "-q", *PYTEST_OPTIONS, *own_basetemp(tmp), *tests],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
    return sorted(set(re.findall(r"^FAILED (\S+)", proc.stdout + proc.stderr, re.MULTILINE)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], help="run only this mutant (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the check that the tests pass unmutated")
    parser.add_argument(
        "--jobs", type=int, default=min(2, os.cpu_count() or 1), help="runs side by side (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.list or not chosen:
        for m in MUTANTS:
            print(f"{m.name:32} {m.meaning}")
        return 0 if args.list else 2
    started = time.monotonic()
    survivors = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        unmutated = None if args.no_baseline else pool.submit(baseline, chosen)
        for outcome in pool.map(run_one, chosen):  # in the list's order, whatever order they finish in
            survivors += not outcome.killed
            print(verdict(outcome), flush=True)
        failing = unmutated.result() if unmutated else []
    if failing:
        print(f"the unmutated code already fails these tests, so no mutant can be judged: {', '.join(failing)}")
        return 2
    print(f"{len(chosen) - survivors} of {len(chosen)} mutants killed in {time.monotonic() - started:.0f} s")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
