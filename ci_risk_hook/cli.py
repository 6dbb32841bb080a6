"""The `ci-risk` command line: a thin click layer over the library.

Exit codes: 0 pass or warn, 1 blocked, 2 usage error, 3 ci-risk's own error
in strict mode (without --strict such an error prints one warning line and
exits 0, so a bug in ci-risk never stops a push).
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, TypeVar

import click

from . import __version__

EXIT_OK, EXIT_BLOCKED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

F = TypeVar("F", bound=Callable[..., Any])


class _WarnAt(click.ParamType):
    name = "P|recall90"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        from .config import ConfigError, parse_warn_at

        try:
            return parse_warn_at(str(value))
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


def _gate_options(func: F) -> F:
    options = [
        click.option("--mode", type=click.Choice(["warn", "block", "off"]), default=None,
                     help="warn (default): report only; block: exit 1 at --block-at; off: do nothing."),
        click.option("--warn-at", type=_WarnAt(), default=None,
                     help="Warn from this probability, or recall90: the model's cut that catches 90 % of failures."),
        click.option("--block-at", type=click.FloatRange(0, 1), default=None, help="Block (in block mode) from this probability."),
        click.option("--strict/--no-strict", default=None, help="Fail closed (exit 3) on ci-risk's own errors."),
        click.option("--model", "model", type=str, default=None, help="Model artifact (.json) to score with."),
        click.option("--max-commits", type=click.IntRange(1), default=None, help="Most commits of one push to read."),
        click.option("--db", default=None, help="History store (file or postgresql:// URL) for build-history features."),
        click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", help="Output format."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ci-risk")
def cli() -> None:
    """Predict whether a push will fail CI, before the test suite runs."""


@cli.command()
@click.option("--from", "from_rev", default=None, help="Base revision (default: @{upstream}, else what no remote has).")
@click.option("--to", "to_rev", default=None, help="Tip revision (default: HEAD).")
@click.option("--branch", default=None, help="Branch CI will build (default: the checked-out branch).")
@_gate_options
def check(from_rev: str | None, to_rev: str | None, branch: str | None, **options: Any) -> None:
    """Score the commits a push would publish, with the top reasons."""
    from .hookrun import check_source, run_gate

    sys.exit(run_gate(check_source(from_rev, to_rev, branch), options))


@cli.command()
@click.option("--raw", is_flag=True, help="Read git's pre-push stdin (set by `ci-risk install`).")
@click.argument("remote", required=False)
@click.argument("url", required=False)
@_gate_options
def hook(raw: bool, remote: str | None, url: str | None, **options: Any) -> None:
    """Entry point of the pre-push hook (pre-commit or raw git)."""
    from .hookrun import hook_source, run_gate

    sys.exit(run_gate(hook_source(raw, remote), options))


@cli.command()
@click.option("--force", is_flag=True, help="Replace a pre-push hook ci-risk did not write (kept as a backup).")
def install(force: bool) -> None:
    """Install a raw git pre-push hook (for repositories without pre-commit)."""
    from .install import InstallError, install as do_install

    try:
        path = do_install(force=force)
    except InstallError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"ci-risk: pre-push hook installed at {path}")


@cli.command()
def uninstall() -> None:
    """Remove the pre-push hook written by `ci-risk install` (and only that)."""
    from .install import InstallError, uninstall as do_uninstall

    try:
        path = do_uninstall()
    except InstallError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"ci-risk: removed {path}" if path else "ci-risk: no pre-push hook to remove")


@cli.command()
@click.option("--rebuild", is_flag=True, help="Delete the index and build it again.")
def index(rebuild: bool) -> None:
    """Build or update the history index that makes history features fast."""
    from . import git
    from .history_index import HistoryIndex, IndexError_, default_path

    info = git.repo_info()
    path = default_path(info.common_dir)
    if rebuild:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    if info.is_shallow:
        click.echo("ci-risk: note: shallow clone; the hook ignores history features until `git fetch --unshallow`", err=True)
    tips = git.run(["for-each-ref", "--format=%(objectname)", "refs/heads", "refs/remotes"]).decode().split()
    try:
        head = git.run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]).decode().strip()
        tips.append(head)
    except git.GitError:
        pass
    started = time.monotonic()
    from .hookrun import Progress

    progress = Progress()
    try:
        idx = HistoryIndex(path)
        added = idx.ensure_covers(list(dict.fromkeys(tips)), progress)
        total = idx.commit_count()
        idx.close()
    except IndexError_ as exc:
        raise click.ClickException(f"{exc} (use --rebuild)") from None
    finally:
        progress.finish()
    click.echo(f"ci-risk: {path}: {total:,} commits ({added:,} new, {time.monotonic() - started:.1f} s)")


def _db_option(func: F) -> F:
    return click.option("--db", default=None, envvar="CI_RISK_DB", show_envvar=True,
                        help="History store: a file path or postgresql:// URL (default: user data dir).")(func)


def _open_target(db: str | None, *, records: bool = False) -> Any:
    """Open the store for this repository, turning library errors into one-line CLI errors.

    Without --db/CI_RISK_DB: the store this repository records into. Only commands that
    `records` outcomes may repoint it (reading must not move the hook's build history).
    """
    from . import git
    from .capture import CaptureError, open_for_repo
    from .store import StoreError

    try:
        return open_for_repo(db, records=records)
    except (CaptureError, StoreError, git.GitError) as exc:
        raise click.ClickException(str(exc)) from None


def _ci_job() -> tuple[str, int]:
    """Job id and attempt from the CI system's own variables, so reruns are told apart."""
    env = os.environ
    for job_var, attempt_var in (("GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT"), ("CI_JOB_ID", None),
                                 ("TRAVIS_JOB_ID", None), ("BUILD_ID", None)):
        if env.get(job_var):
            attempt = env.get(attempt_var or "", "1")
            return env[job_var], int(attempt) if attempt.isdigit() else 1
    return "", 1


def _record(db: str | None, status: str, commit: str, base: str | None, branch: str | None, source: str,
            job_id: str | None, attempt: int | None, started_at: int | None, duration: float | None,
            finished_at: int | None = None) -> str:
    from . import git
    from .capture import compute_build_features, store_records
    from .outcomes import BuildRecord

    target = _open_target(db, records=True)
    try:
        sha = git.resolve_commits([commit]).get(commit)
        if sha is None:
            raise click.ClickException(f"not a commit: {commit}")
        ci_job, ci_attempt = _ci_job()
        record = BuildRecord(
            commit=sha, status=status, source=source, raw_status=status,
            branch=git.short_branch(branch) or git.current_branch(target.info), started_at=started_at, finished_at=finished_at,
            duration_s=duration, base=base, job_id=job_id if job_id is not None else ci_job,
            attempt=attempt if attempt is not None else ci_attempt,
        )
        summary = store_records(target, [record])
        compute_build_features(target)
    finally:
        target.store.close()
    state = "new" if summary.new else "already recorded: updated"
    return f"ci-risk: recorded {status} for {sha[:10]} on {record.branch or '(no branch)'} ({state})"


@cli.command()
@click.option("--status", type=click.Choice(["pass", "fail"]), required=True, help="The CI outcome.")
@click.option("--commit", default="HEAD", show_default=True, help="The commit CI built.")
@click.option("--base", default=None, help="Start of the pushed range (default: the previous build on the branch).")
@click.option("--branch", default=None, help="Branch built (default: the checked-out branch).")
@click.option("--source", default="record", show_default=True, help="Where the outcome came from.")
@click.option("--job-id", default=None, help="CI job id (default: from GITHUB_RUN_ID, CI_JOB_ID, TRAVIS_JOB_ID).")
@click.option("--attempt", type=click.IntRange(1), default=None, help="Rerun number (default: GITHUB_RUN_ATTEMPT or 1).")
@click.option("--duration", type=click.FloatRange(0), default=None, help="Build duration in seconds.")
@_db_option
def record(status: str, commit: str, base: str | None, branch: str | None, source: str, job_id: str | None,
           attempt: int | None, duration: float | None, db: str | None) -> None:
    """Record one CI outcome (idempotent per commit, source, job and attempt)."""
    now = int(time.time())  # recorded when the build has finished
    started = int(now - duration) if duration is not None else now
    click.echo(_record(db, status, commit, base, branch, source, job_id, attempt, started, duration, now))


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--branch", default=None, help="Branch built (default: the checked-out branch).")
@click.option("--job-id", default=None, help="CI job id (default: from the CI system's variables).")
@click.option("--attempt", type=click.IntRange(1), default=None, help="Rerun number.")
@_db_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(branch: str | None, job_id: str | None, attempt: int | None, db: str | None, command: tuple[str, ...]) -> None:
    """Run a test command, stream its output, record pass/fail for HEAD, exit with its code."""
    import subprocess

    started = time.time()
    try:
        code = subprocess.call(list(command))
    except OSError as exc:
        click.echo(f"ci-risk: cannot run {command[0]}: {exc.strerror}", err=True)
        sys.exit(127)
    except KeyboardInterrupt:
        sys.exit(130)
    duration = time.time() - started
    exit_code = code if code >= 0 else 128 - code
    status = "pass" if code == 0 else "fail"
    try:
        message = _record(db, status, "HEAD", None, branch, "run", job_id, attempt, int(started), duration,
                          int(started + duration))
        click.echo(message, err=True)
    except click.ClickException as exc:
        click.echo(f"ci-risk: warning: outcome not recorded: {exc.message}", err=True)
    sys.exit(exit_code)


@cli.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["csv", "github", "gitlab", "travis"]), required=True,
              help="csv: commit,status[,branch,started_at,duration_s,base]; github: gh run list --json ...; "
                   "gitlab: pipelines API JSON; travis: the travis-builds CSV.")
@click.option("--travis-repo", default=None, help="With --format travis: the owner/name rows to take.")
@click.option("--skip-bad", is_flag=True, help="List bad rows and import the rest (default: import nothing).")
@click.option("--no-features", is_flag=True, help="Store outcomes only; `ci-risk backfill` computes features later.")
@_db_option
def import_(file: str, fmt: str, travis_repo: str | None, skip_bad: bool, no_features: bool, db: str | None) -> None:
    """Import CI outcomes from a file (all rows in one transaction)."""
    from .capture import compute_build_features, store_records
    from .importers import ImportFormatError, parse_file

    try:
        parsed = parse_file(file, fmt, skip_bad=skip_bad, travis_repo=travis_repo)
    except ImportFormatError as exc:
        click.echo(f"ci-risk: error: {exc}; nothing imported", err=True)
        sys.exit(EXIT_USAGE)
    for bad in parsed.bad:
        click.echo(f"ci-risk: skipped bad row: {bad}", err=True)
    if not parsed.records and parsed.skipped.get("other repository"):
        click.echo(f"ci-risk: error: no rows for repository {travis_repo!r} in {file}; check --travis-repo", err=True)
        sys.exit(EXIT_USAGE)
    target = _open_target(db, records=True)
    try:
        summary = store_records(target, parsed.records)
        computed = 0 if no_features else compute_build_features(target, progress=_bar("computing features"))
    finally:
        target.store.close()
    skipped = ", ".join(f"{n:,} {why}" for why, n in sorted(parsed.skipped.items())) or "none"
    click.echo(f"ci-risk: {parsed.rows_read:,} rows read, {summary.recorded:,} outcomes recorded "
               f"({summary.new:,} new), skipped: {skipped}, bad rows: {len(parsed.bad):,}")
    if summary.unknown_commits:
        examples = ", ".join(c[:10] for c in summary.unknown_examples)
        click.echo(f"ci-risk: {summary.unknown_commits:,} outcomes name commits not in this clone (e.g. {examples}): "
                   "kept, but without features")
    if not no_features:
        click.echo(f"ci-risk: features computed for {computed:,} builds")


def _bar(label: str) -> Any:
    """A progress callback: a bar on a terminal, silence elsewhere."""
    if not sys.stderr.isatty():
        return None
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = click.progressbar(length=total, label=label, file=sys.stderr)
            state["bar"].__enter__()
        state["bar"].update(done - state.get("done", 0))
        state["done"] = done
        if done >= total:
            state["bar"].__exit__(None, None, None)

    return update


@cli.command()
@click.option("--since", default=None, help="Only commits from this date on (YYYY-MM-DD or ISO time).")
@click.option("--max-commits", type=click.IntRange(1), default=None, help="Compute at most N new commits this run.")
@click.option("--szz/--no-szz", default=True, help="Label fix-inducing commits with SZZ (the slow part).")
@click.option("--max-fixes", type=click.IntRange(1), default=None, help="With SZZ: look at the newest N fix commits.")
@_db_option
def backfill(since: str | None, max_commits: int | None, szz: bool, max_fixes: int | None, db: str | None) -> None:
    """Mine the history: features of every commit, of every recorded build, and labels from git."""
    from .backfill import backfill_commits
    from .capture import compute_build_features
    from .outcomes import parse_time

    since_ts = None
    if since is not None:
        try:
            since_ts = parse_time(since)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
    target = _open_target(db, records=True)
    try:
        stats = backfill_commits(target.store, target.repo_id, since=since_ts, max_commits=max_commits,
                                 progress=_counter("commits read"))
        click.echo(f"ci-risk: {stats.commits_seen:,} commits read, features stored for {stats.commits_added:,} new "
                   f"({stats.commits_seen / max(stats.seconds, 1e-9):,.0f} commits/s)")
        builds = compute_build_features(target, progress=_bar("build features"))
        click.echo(f"ci-risk: features computed for {builds:,} recorded builds")
        for line in _label(target, szz, max_fixes, since_ts):
            click.echo(line)
    finally:
        target.store.close()


def _counter(label: str) -> Any:
    if not sys.stderr.isatty():
        return None

    def update(done: int) -> None:
        click.echo(f"\rci-risk: {done:,} {label}", err=True, nl=False)

    return update


def _label(target: Any, szz: bool, max_fixes: int | None, since: int | None) -> list[str]:
    from . import labels

    lines = []
    started = time.monotonic()
    reverts = labels.find_reverts()
    target.store.set_labels(target.repo_id, "revert", [(l.commit, l.evidence, l.lines) for l in reverts])
    lines.append(f"ci-risk: {len(reverts):,} reverted commits labelled ({time.monotonic() - started:.1f} s)")
    if szz:
        started = time.monotonic()
        found, stats = labels.szz(max_fixes=max_fixes, since=since, progress=_bar("SZZ"))
        target.store.set_labels(target.repo_id, "szz", [(l.commit, l.evidence, l.lines) for l in found])
        lines.append(f"ci-risk: SZZ: {len(found):,} fix-inducing commits from {stats.fixes_seen:,} fixes "
                     f"({time.monotonic() - started:.1f} s; {stats.files_skipped_missing:,} files skipped: objects missing)")
    return lines


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True, help="Builds listed in the table.")
@_db_option
def history(fmt: str, limit: int, db: str | None) -> None:
    """What is recorded for this repository, with counts by source and status."""
    import csv
    import json

    target = _open_target(db)
    try:
        counts = target.store.counts(target.repo_id)
        builds = target.store.builds(target.repo_id)
        labelled = target.store.labels(target.repo_id)
    finally:
        target.store.close()
    fields = ["commit", "branch", "status", "raw_status", "started_at", "finished_at", "duration_s", "source",
              "job_id", "attempt", "flaky", "known_commit", "base"]
    rows = [{"commit": b.commit, "branch": b.branch, "status": b.status, "raw_status": b.raw_status,
             "started_at": b.started_at, "finished_at": b.finished_at, "duration_s": b.duration_s,
             "source": b.source, "job_id": b.job_id, "attempt": b.attempt, "flaky": b.flaky,
             "known_commit": b.known_commit, "base": b.base} for b in builds]
    if fmt == "json":
        click.echo(json.dumps({
            "counts": [{"source": s, "status": st, "builds": n, "flaky": f} for s, st, n, f in counts],
            "labels": {src: sum(1 for l in labelled if l[1] == src) for src in sorted({l[1] for l in labelled})},
            "builds": rows,
        }, indent=2))
        return
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return
    click.echo(f"{'source':<10}{'status':<8}{'builds':>8}{'flaky':>7}")
    for source, status, n, flaky in counts:
        click.echo(f"{source:<10}{status:<8}{n:>8,}{flaky:>7,}")
    click.echo(f"{'total':<18}{sum(c[2] for c in counts):>8,}")
    by_source: dict[str, int] = {}
    for _, src, _, _ in labelled:
        by_source[src] = by_source.get(src, 0) + 1
    if by_source:
        click.echo("labels from git: " + ", ".join(f"{n:,} {src}" for src, n in sorted(by_source.items())))
    if builds:
        click.echo(f"\nlatest {min(limit, len(builds))} builds:")
        for b in builds[-limit:]:
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(b.started_at)) if b.started_at else "?"
            click.echo(f"  {when}  {b.commit[:10]}  {b.status:<4}{' (flaky)' if b.flaky else '':<9} "
                       f"{(b.branch or '-'):<20} {b.source}")


def _training_options(func: F) -> F:
    options = [
        click.option("--labels", type=click.Choice(["ci", "szz", "both"]), default="ci", show_default=True,
                     help="ci: recorded CI outcomes; szz: fix-inducing commits from backfill; both."),
        click.option("--all-repos", is_flag=True, help="Learn from every repository in the store."),
        click.option("--target-recall", type=click.FloatRange(0.05, 1.0), default=0.9, show_default=True,
                     help="Warn threshold: catch this share of failures (defer the rest)."),
        click.option("--target-precision", type=click.FloatRange(0.05, 1.0), default=0.8, show_default=True,
                     help="Block threshold: block only when this sure."),
        _db_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _table(target: Any, labels: str, all_repos: bool) -> tuple[Any, list[str]]:
    from . import git
    from .dataset import DatasetError
    from .modeling import table_for

    if all_repos:
        repos = target.store.repositories()
        ids, names = [r[0] for r in repos], [r[2] or r[1][:12] for r in repos]
    else:
        ids, names = [target.repo_id], [git.repo_name(target.info)]
    try:
        return table_for(target.store, ids, labels), names
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None


def _metrics_table(report: dict[str, Any]) -> str:
    columns = [("model", "ci-risk"), ("parrot", "Parrot"), ("parrot_ordered", "Parrot*"), ("demo", "demo model")]
    names = [("precision", "precision (failing)"), ("recall", "recall (failing)"), ("f1", "F1 (failing)"),
             ("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("brier", "Brier score"),
             ("deferrable_at_90", "deferrable at 90% recall"), ("recall_at_defer_threshold", "  recall reached")]
    lines = [f"{'':<26}" + "".join(f"{title:>12}" for _, title in columns)]
    for key, title in names:
        cells = []
        for column, _ in columns:
            value = report[column].get(key)
            cells.append(f"{'-' if value is None else format(value, '.3f'):>12}")
        lines.append(f"{title:<26}" + "".join(cells))
    lines.append("Parrot: outcome of the last build on the branch that had finished when this one started; "
                 "Parrot*: previous build in push order, finished or not (optimistic, as usually published).")
    return "\n".join(lines)


@cli.command()
@_training_options
@click.option("--out", default=None, help="Where to write the model (default: .git/ci-risk/model.json).")
def train(labels: str, all_repos: bool, target_recall: float, target_precision: float, db: str | None,
          out: str | None) -> None:
    """Train this repository's model on its recorded history (time-ordered validation)."""
    from .modeling import default_model_path, run_train
    from .training import TrainError

    target = _open_target(db)
    try:
        table, names = _table(target, labels, all_repos)
        path = out or default_model_path()
        try:
            trained = run_train(table, labels, names, path, target_recall=target_recall,
                                target_precision=target_precision, log=lambda m: click.echo(f"ci-risk: {m}", err=True))
        except TrainError as exc:
            raise click.ClickException(str(exc)) from None
    finally:
        target.store.close()
    result = trained.result
    scores = ", ".join(f"{k} {v:.3f}" for k, v in sorted(result.validation.items(), key=lambda kv: -kv[1]))
    click.echo(f"ci-risk: trained on {result.rows:,} builds ({result.failures:,} failed); chose {result.model.name} "
               f"by validation PR-AUC ({scores})")
    t = result.thresholds
    click.echo(f"ci-risk: thresholds: warn {t['warn']:.3f} (catches {target_recall:.0%} of validation failures), "
               f"block {t['block']:.3f} (precision {target_precision:.0%}), best-F1 {t['f1']:.3f}")
    click.echo(f"ci-risk: model written to {trained.path}" + (f" (previous kept as {trained.previous})" if trained.previous else ""))


@cli.command()
@_training_options
@click.option("--retrain-every", type=click.IntRange(1), default=25, show_default=True, help="Builds between retrains.")
@click.option("--predictions", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write one CSV row per predicted build.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def backtest(labels: str, all_repos: bool, target_recall: float, target_precision: float, db: str | None,
             retrain_every: int, predictions: str | None, fmt: str) -> None:
    """Would it have helped here? Predict each past build from the builds finished before it."""
    import json

    from .backtest import write_predictions
    from .modeling import run_backtest
    from .training import TrainError

    target = _open_target(db)
    try:
        table, _ = _table(target, labels, all_repos)
    finally:
        target.store.close()
    try:
        result = run_backtest(table, retrain_every=retrain_every, target_recall=target_recall,
                              progress=_bar("backtest"))
    except TrainError as exc:
        raise click.ClickException(str(exc)) from None
    if predictions:
        write_predictions(result, predictions)
    report = result.as_dict()
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    chosen = ", ".join(f"{k} x{v}" for k, v in sorted(result.chosen.items(), key=lambda kv: -kv[1]))
    click.echo(f"ci-risk: {result.predicted:,} of {result.builds:,} builds predicted, {result.retrains} retrains "
               f"(every {retrain_every}; chosen: {chosen}), {result.seconds:.1f} s")
    click.echo(_metrics_table(report))


@cli.command()
@_training_options
@click.option("--metric", type=click.Choice(["f1", "roc_auc", "pr_auc", "deferrable_at_90"]), default="f1",
              show_default=True, help="What the new model must not be worse at.")
@click.option("--retrain-every", type=click.IntRange(1), default=25, show_default=True)
def retrain(labels: str, all_repos: bool, target_recall: float, target_precision: float, db: str | None, metric: str,
            retrain_every: int) -> None:
    """Train and backtest; replace the current model only if the new one is not worse."""
    from .modeling import current_backtest, default_model_path, run_backtest, run_train
    from .training import TrainError

    target = _open_target(db)
    try:
        table, names = _table(target, labels, all_repos)
        path = default_model_path()
        try:
            result = run_backtest(table, retrain_every=retrain_every, target_recall=target_recall,
                                  progress=_bar("backtest"))
            new = result.as_dict()["model"].get(metric)
            old_report = current_backtest(path)
            old = (old_report or {}).get("model", {}).get(metric)
            if old is not None and (new is None or new < old):
                click.echo(f"ci-risk: kept the current model: its backtest {metric} {old:.3f} beats the new "
                           f"one's {0.0 if new is None else new:.3f}")
                return
            trained = run_train(table, labels, names, path, target_recall=target_recall,
                                target_precision=target_precision, backtest_result=result)
        except TrainError as exc:
            raise click.ClickException(str(exc)) from None
    finally:
        target.store.close()
    was = "none" if old is None else f"{old:.3f}"
    click.echo(f"ci-risk: installed {trained.result.model.name}: backtest {metric} {new:.3f} (previous model: {was}); "
               f"written to {trained.path}")


@cli.group()
def model() -> None:
    """The model in use."""


@model.command("show")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def model_show(fmt: str) -> None:
    """Which model is in use, from where, trained on what, how well it backtested."""
    import json

    from . import config, git
    from .gate import choose_model
    from .scoring import ModelError

    info = git.repo_info()
    try:
        choice = choose_model(config.resolve({}, toplevel=info.toplevel), info)
    except (ModelError, config.ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    if choice is None:
        click.echo("ci-risk: no model available yet: `ci-risk train` (after recording outcomes) creates one")
        return
    m = choice.model
    if fmt == "json":
        click.echo(json.dumps({"path": choice.path, "source": choice.source, "kind": m.kind, "sha256": m.sha256,
                               "thresholds": m.thresholds, "provenance": m.provenance}, indent=2))
        return
    prov = m.provenance
    click.echo(f"model: {choice.path} ({choice.source}), {m.kind}"
               + (f", chosen candidate {prov['chosen']}" if "chosen" in prov else "") + f", sha256 {m.sha256[:12]}")
    if "rows" in prov:
        parts = [f"trained: {prov.get('trained_at', '?')} on {prov['rows']:,} builds ({prov.get('failures', 0):,} failed)"]
        if "data_from" in prov:
            parts.append(f"{prov['data_from']} .. {prov.get('data_to', '?')}")
        if "labels" in prov:
            parts.append(f"labels {prov['labels']}")
        if prov.get("repositories"):
            parts.append(f"{len(prov['repositories'])} repositories: {', '.join(prov['repositories'])}")
        click.echo(", ".join(parts))
        if prov.get("data"):
            click.echo(f"data: {prov['data']}")
    click.echo("thresholds: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(m.thresholds.items())))
    if prov.get("backtest"):
        click.echo(_metrics_table(prov["backtest"]))
    elif prov.get("evaluation"):
        click.echo(_evaluation_text(prov["evaluation"]))


def _evaluation_text(evaluation: dict[str, Any]) -> str:
    """The bundled model's evaluation on unseen projects, as lines (the JSON is `--format json`)."""
    projects = evaluation.get("projects", [])
    lines = [f"evaluated on {len(projects)} projects it never saw (medians): {', '.join(projects)}"]
    for regime, title in (("with_history", "with build history"), ("cold_start", "cold start")):
        for who, name in (("model", "ci-risk"), ("parrot", "Parrot")):
            m = evaluation.get("median", {}).get(regime, {}).get(who)
            if m and (who == "model" or regime == "with_history"):
                cells = ", ".join(f"{key} {m[key]:.3f}" for key in ("f1", "roc_auc", "pr_auc", "brier",
                                                                    "deferrable_at_90", "quiet_at_warn",
                                                                    "recall_at_warn") if key in m)
                lines.append(f"  {name}, {title}: {cells}")
    return "\n".join(lines)


@cli.command()
@click.option("--out", default="ci-risk-report", show_default=True, type=click.Path(file_okay=False),
              help="Directory for the PNG charts (and report.html).")
@click.option("--html", "html_page", is_flag=True, help="Also write one self-contained HTML page.")
@click.option("--retrain-every", type=click.IntRange(1), default=25, show_default=True)
@_db_option
def report(out: str, html_page: bool, retrain_every: int, db: str | None) -> None:
    """Charts of what the model learnt and how it backtested here (PNG; --html for one page)."""
    import json

    from . import config, report as report_lib
    from .dataset import DatasetError, ci_table
    from .gate import choose_model
    from .modeling import run_backtest
    from .training import TrainError

    target = _open_target(db)
    try:
        table = ci_table(target.store, target.repo_id)
        features = target.store.build_features(target.repo_id)
        commits = {b.id: b.commit for b in target.store.builds(target.repo_id)}
    finally:
        target.store.close()
    files = {commits[i]: f for i, (_, f, _) in features.items() if i in commits}
    choice = choose_model(config.resolve({}, toplevel=target.info.toplevel), target.info)
    if choice is None:
        raise click.ClickException("no model to report on: `ci-risk train` first")
    try:
        result = run_backtest(table, retrain_every=retrain_every, progress=_bar("backtest"))
    except (TrainError, DatasetError) as exc:
        raise click.ClickException(str(exc)) from None
    card = f"{choice.path} ({choice.source}), {choice.model.kind}\n" + json.dumps(
        {"thresholds": choice.model.thresholds, "provenance": choice.model.provenance}, indent=2)
    from .gate import scored_pushes

    if choice.source == "bundled":
        card_path = os.path.join(os.path.dirname(choice.path), "MODEL_CARD.md")
        if os.path.exists(card_path):
            with open(card_path, encoding="utf-8") as fh:
                card = fh.read() + "\n" + card
    made = report_lib.build(out, choice.model, table, result, files, html_page=html_page, card=card,
                            scored=scored_pushes(target.info))
    for name, path in made.charts.items():
        click.echo(f"ci-risk: {name}: {path}")
    if made.html:
        click.echo(f"ci-risk: report: {made.html}")


@cli.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; the default keeps the page on this machine only.")
@_db_option
def dashboard(port: int, host: str, db: str | None) -> None:
    """A local web page: this push's score and reasons, what-if, history, backtest metrics."""
    from . import dashboard as dash

    try:
        state = dash.load_state(db)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        server = dash.make_server(state, host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    click.echo(dash.started_message(server))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@cli.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same repository and scores.")
@click.option("--commits", type=click.IntRange(60, 2000), default=300, show_default=True)
def demo(directory: str | None, seed: int, commits: int) -> None:
    """Build a throw-away repository with a realistic history, train on it, and score two pushes."""
    import tempfile

    from . import demo as demo_lib
    from .output import render_text

    if directory is None:
        directory = tempfile.mkdtemp(prefix="ci-risk-demo-")
    elif os.path.exists(directory) and os.listdir(directory):
        raise click.ClickException(f"{directory} is not empty; give a new or empty directory")
    started = time.monotonic()
    from .training import TrainError

    try:
        result = demo_lib.build(directory, seed=seed, commits=commits,
                                progress=lambda m: click.echo(f"ci-risk demo: {m}"))
    except TrainError as exc:  # a short simulated history can leave nothing to validate on
        raise click.ClickException(f"{exc}; try more --commits or another --seed") from None
    click.echo(f"ci-risk demo: {result.commits} commits, {result.builds} builds ({result.failures} failed); "
               f"trained {result.chosen} ({time.monotonic() - started:.0f} s)\n")
    click.echo("A small, tested source change by a regular maintainer:")
    click.echo(render_text(result.low) + "\n")
    click.echo("A large CI-configuration change by a newcomer:")
    click.echo(render_text(result.high) + "\n")
    click.echo(_try_next(directory, result.store))


def _try_next(directory: str, store: str) -> str:
    """Commands that work as printed in the demo's directory: they find its store through the repository."""
    import shlex

    over = os.environ.get("CI_RISK_DB")
    db = f" --db {shlex.quote(store)}" if over else ""  # CI_RISK_DB would take them to another store
    commands = [
        ("ci-risk check --from main --to new-ci" + db, "score the newcomer's push by hand"),
        ("ci-risk history" + db, "the recorded outcomes"),
        ("ci-risk backtest" + db, "would it have helped on this history?"),
        ("ci-risk model show", "what was trained, how it backtested"),
        ("ci-risk report --html" + db, "charts and one page, in ci-risk-report/"),
    ]
    width = max(len(c) for c, _ in commands) + 2
    lines = [f"Try next, in {directory}:"] + [f"  {c:<{width}}# {why}" for c, why in commands]
    if over:
        from .store import redact

        lines.append(f"  (--db because CI_RISK_DB={redact(over)} is set; the demo kept its outcomes in its own store)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="ci-risk", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
