"""The `ci-risk` command line: a thin click layer over the library.

Exit codes are defined in `ci_risk_hook.errors`: 0 pass or warn, 1 blocked,
2 usage error, 3 ci-risk's own error in strict mode (without --strict such an
error prints one warning line and exits 0, so a bug in ci-risk never stops a push).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, TypeVar

import click

from ci_risk_hook import __version__, errors
from ci_risk_hook.cli.extras import require
from ci_risk_hook.gate import options as gate_options
from ci_risk_hook.gate.options import GateOption
from ci_risk_hook.model import metrics
from ci_risk_hook.outcomes import monitor as live  # its defaults are the options' defaults
from ci_risk_hook.safetext import clean, csv_cell

F = TypeVar("F", bound=Callable[..., Any])


class _WarnAt(click.ParamType):
    name = "P|recall90"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        """A name or a number; the number's range is checked with every other setting's (config.resolve)."""
        from ci_risk_hook.config import NAMED_WARN_AT

        text = str(value).strip().lower()
        if text in NAMED_WARN_AT:
            return text
        try:
            return float(text)
        except ValueError:
            self.fail(
                f"expected a probability between 0 and 1 or {' or '.join(NAMED_WARN_AT)}, got {value!r}", param, ctx
            )


class _Share(click.FloatRange):
    """A share between 0 and 1: click's FloatRange lets NaN through (it compares false with both bounds)."""

    def __init__(self) -> None:
        super().__init__(0, 1)

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail(f"expected a number between 0 and 1, got {value!r}", param, ctx)
        return number


_CLICK_TYPES: dict[str, Any] = {
    "probability": click.FloatRange(0, 1),
    "warn_at": _WarnAt(),
    "positive": click.IntRange(1),
    "text": str,
}


def _gate_options(declared: tuple[GateOption, ...]) -> Callable[[F], F]:
    """click options generated from the declarations in `gate.options` (which the push's own parser reads too)."""

    def decorate(func: F) -> F:
        for option in reversed(declared):
            if option.kind == "switch":
                decorator = click.option(
                    f"{option.flag}/--no-{option.flag[2:]}", option.name, default=None, help=option.help
                )
            elif option.kind == "flag":
                decorator = click.option(option.flag, option.name, is_flag=True, help=option.help)
            else:
                kind = click.Choice(option.choices) if option.kind == "choice" else _CLICK_TYPES[option.kind]
                decorator = click.option(option.flag, option.name, type=kind, default=option.default, help=option.help)
            func = decorator(func)
        return func

    return decorate


def _escape(exc: click.ClickException) -> None:
    # Rewritten in place (click types `message` Final) so click still adds the usage line and hint.
    setattr(exc, "message", clean(exc.message))  # noqa: B010 - click declares it Final


def _refusal(exc: errors.CiRiskError) -> click.ClickException:
    """A library error as click shows it: `Error: <one line>`, exiting with the error's own code."""
    handled = errors.handle(exc)
    refusal = click.ClickException(handled.message)
    setattr(refusal, "exit_code", handled.exit_code)  # noqa: B010 - click types it ClassVar: this instance only
    return refusal


class _SafeGroup(click.Group):
    """Error messages quote file names, revisions, branches and option values: shown escaped, never raw.

    Library errors (`CiRiskError`) become click errors here, once for every command.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.ClickException as exc:
            _escape(exc)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            _escape(exc)
            raise
        except errors.CiRiskError as exc:
            raise _refusal(exc) from None


@click.group(cls=_SafeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ci-risk")
def cli() -> None:
    """Predict whether a push will fail CI, before the test suite runs."""


@cli.command()
@_gate_options(gate_options.CHECK)
@_gate_options(gate_options.COMMON)
def check(**options: Any) -> None:
    """Score the commits a push would publish (with --ci: the commits a CI job builds), with the top reasons."""
    from ci_risk_hook.gate.run import check as run_check

    sys.exit(run_check(options))


@cli.command()
@_gate_options(gate_options.HOOK)
@click.argument("remote", required=False)
@click.argument("url", required=False)
@_gate_options(gate_options.COMMON)
def hook(raw: bool, remote: str | None, url: str | None, **options: Any) -> None:
    """Entry point of the pre-push hook (pre-commit or raw git)."""
    from ci_risk_hook.gate.run import hook_source, run_gate

    sys.exit(run_gate(hook_source(raw, remote), options, in_hook=True))


@cli.command()
@click.option("--force", is_flag=True, help="Replace a pre-push hook ci-risk did not write (kept as a backup).")
def install(force: bool) -> None:
    """Install a raw git pre-push hook (for repositories without pre-commit)."""
    from ci_risk_hook.gate.install import install as do_install

    path = do_install(force=force)
    click.echo(f"ci-risk: pre-push hook installed at {clean(path)}")


@cli.command()
def uninstall() -> None:
    """Remove the pre-push hook written by `ci-risk install` (and only that)."""
    from ci_risk_hook.gate.install import uninstall as do_uninstall

    path = do_uninstall()
    click.echo(f"ci-risk: removed {clean(path)}" if path else "ci-risk: no pre-push hook to remove")


@cli.command()
@click.option("--rebuild", is_flag=True, help="Delete the index and build it again.")
def index(rebuild: bool) -> None:
    """Build or update the history index that makes history features fast."""
    from ci_risk_hook.features.index_build import index_repository
    from ci_risk_hook.gate.run import Progress
    from ci_risk_hook.git import repo as git

    info = git.repo_info()

    def waiting(holder: str) -> None:
        click.echo(f"ci-risk: waiting for the history index build already running ({holder})", err=True)

    progress = Progress()
    try:
        built = index_repository(info, progress, rebuild=rebuild, on_wait=waiting)
    finally:
        progress.finish()
    click.echo(f"ci-risk: {clean(built.path)}: {built.total:,} commits ({built.added:,} new, {built.seconds:.1f} s)")


def _hash_authors(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """`--hash-authors` is the `hash_authors` setting for this process: every store it opens reads it."""
    if value:
        from ci_risk_hook.config import setting_env

        os.environ[setting_env("hash_authors")] = "1"


def _db_option(func: F) -> F:
    func = click.option(
        "--hash-authors",
        is_flag=True,
        expose_value=False,
        callback=_hash_authors,
        help="Store keyed hashes of authors (key from CI_RISK_HASH_AUTHORS_KEY) instead of e-mails.",
    )(func)
    return click.option(
        "--db",
        default=None,
        envvar="CI_RISK_DB",
        show_envvar=True,
        help="History store: a file path or postgresql:// URL (default: user data dir).",
    )(func)


def _open_target(db: str | None) -> Any:
    """The store a recording command writes and this repository's row in it (created as needed).

    Without --db/CI_RISK_DB: the store this repository records into; --db repoints the hook's there.
    """
    from ci_risk_hook.outcomes.record import open_for_repo

    return open_for_repo(db, records=True)


def _open_reading(db: str | None, *, this_repo: bool = True) -> Any:
    """The store a reading command reads (never created nor repointed) and this repository's id in it.

    A repository the store does not know yet reads as an empty history, said in one line when the command
    reads `this_repo`: reading adds nothing.
    """
    from ci_risk_hook.outcomes.record import open_for_reading

    reading = open_for_reading(db)
    if reading.repo_id is None and this_repo:
        click.echo(
            clean(
                f"ci-risk: note: {reading.store.where} holds no history of this repository "
                f"(root commit {reading.root[:12]}) yet: `record` or `import` adds it"
            ),
            err=True,
        )
    return reading


def _record(db: str | None, status: str, commit: str, **details: Any) -> str:
    from ci_risk_hook.outcomes.record import record_outcome

    recorded = record_outcome(db, status, commit, **details)
    record = recorded.record
    state = "new" if recorded.new else "already recorded: updated"
    return f"ci-risk: recorded {status} for {record.commit[:10]} on {clean(record.branch or '(no branch)')} ({state})"


def _deepen_budget() -> float:
    from ci_risk_hook import config
    from ci_risk_hook.git import repo as git

    return float(config.resolve({}, toplevel=git.repo_info().toplevel, tolerant=True).deepen_budget)


def _ci_option(func: F) -> F:
    return click.option(
        "--ci",
        is_flag=True,
        help="This CI job's outcome: commit, branch, run id, attempt and job from the CI system's variables.",
    )(func)


@cli.command()
@click.option(
    "--status",
    default=None,
    help="The CI outcome: pass or fail (with --ci also the CI system's words: success, failure, cancelled...).",
)
@click.option("--commit", default="HEAD", show_default=True, help="The commit CI built.")
@click.option("--base", default=None, help="Start of the pushed range (default: the previous build on the branch).")
@click.option("--branch", default=None, help="Branch built (default: the checked-out branch).")
@click.option("--source", default="record", show_default=True, help="Where the outcome came from.")
@click.option("--job-id", default=None, help="CI job id (default: from GITHUB_RUN_ID, CI_JOB_ID, TRAVIS_JOB_ID).")
@click.option(
    "--attempt", type=click.IntRange(1), default=None, help="Rerun number (default: GITHUB_RUN_ATTEMPT or 1)."
)
@click.option("--duration", type=click.FloatRange(0), default=None, help="Build duration in seconds.")
@_ci_option
@_db_option
def record(
    status: str | None,
    commit: str,
    base: str | None,
    branch: str | None,
    source: str,
    job_id: str | None,
    attempt: int | None,
    duration: float | None,
    ci: bool,
    db: str | None,
) -> None:
    """Record one CI outcome (idempotent per commit, source, job and attempt)."""
    if ci:
        from ci_risk_hook.ci.job import record_job

        if commit != "HEAD" or base is not None:
            raise click.UsageError("--ci takes the commit and its range from the CI system: no --commit/--base")
        done = record_job(
            db,
            status,
            source=source,
            deepen_budget=_deepen_budget(),
            duration=duration,
            job=job_id,
            attempt=attempt,
            branch=branch,
        )
        click.echo(done.message)
        return
    if status not in ("pass", "fail"):
        raise click.BadParameter(
            "pass or fail" if status else "missing (give --status pass|fail, or --ci)", param_hint="--status"
        )
    now = int(time.time())  # recorded when the build has finished
    started = int(now - duration) if duration is not None else now
    click.echo(
        _record(
            db,
            status,
            commit,
            base=base,
            branch=branch,
            source=source,
            job_id=job_id,
            attempt=attempt,
            started_at=started,
            duration=duration,
            finished_at=now,
        )
    )


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--branch", default=None, help="Branch built (default: the checked-out branch).")
@click.option("--job-id", default=None, help="CI job id (default: from the CI system's variables).")
@click.option("--attempt", type=click.IntRange(1), default=None, help="Rerun number.")
@_ci_option
@_db_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    branch: str | None, job_id: str | None, attempt: int | None, ci: bool, db: str | None, command: tuple[str, ...]
) -> None:
    """Run a test command, stream its output, record pass/fail for HEAD, exit with its code."""
    import subprocess

    started = time.time()
    try:
        code = subprocess.call(list(command))
    except OSError as exc:
        click.echo(f"ci-risk: cannot run {clean(command[0])}: {exc.strerror}", err=True)
        sys.exit(127)
    except KeyboardInterrupt:
        sys.exit(errors.EXIT_INTERRUPTED)
    duration = time.time() - started
    exit_code = code if code >= 0 else 128 - code
    status = "pass" if code == 0 else "fail"
    try:
        if ci:
            from ci_risk_hook.ci.job import record_job

            message = record_job(
                db,
                status,
                source="run",
                deepen_budget=_deepen_budget(),
                started_at=started,
                duration=duration,
                status_origin=f"the command's exit code {code}",
                job=job_id,
                attempt=attempt,
                branch=branch,
            ).message
        else:
            message = _record(
                db,
                status,
                "HEAD",
                branch=branch,
                source="run",
                job_id=job_id,
                attempt=attempt,
                started_at=int(started),
                duration=duration,
                finished_at=int(started + duration),
            )
        click.echo(message, err=True)
    except errors.CiRiskError as exc:
        click.echo(f"ci-risk: warning: outcome not recorded: {errors.handle(exc).message}", err=True)
    sys.exit(exit_code)


@cli.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "github", "gitlab", "travis"]),
    required=True,
    help="csv: commit,status[,branch,started_at,duration_s,base]; github: gh run list --json ...; "
    "gitlab: pipelines API JSON; travis: the travis-builds CSV.",
)
@click.option("--travis-repo", default=None, help="With --format travis: the owner/name rows to take.")
@click.option("--skip-bad", is_flag=True, help="List bad rows and import the rest (default: import nothing).")
@click.option("--no-features", is_flag=True, help="Store outcomes only; `ci-risk backfill` computes features later.")
@_db_option
def import_(file: str, fmt: str, travis_repo: str | None, skip_bad: bool, no_features: bool, db: str | None) -> None:
    """Import CI outcomes from a file (all rows in one transaction)."""
    from itertools import chain, islice

    from ci_risk_hook.outcomes.importers import ImportFormatError, ImportStream
    from ci_risk_hook.outcomes.record import BATCH_ROWS

    stream = ImportStream(
        file,
        fmt,
        skip_bad=skip_bad,
        travis_repo=travis_repo,
        on_bad=lambda bad: click.echo(f"ci-risk: skipped bad row: {clean(str(bad))}", err=True),
    )
    records = iter(stream)
    try:
        first = list(islice(records, BATCH_ROWS))  # a bad small file is refused before the store is touched
    except ImportFormatError as exc:
        click.echo(f"ci-risk: error: {clean(str(exc))}; nothing imported", err=True)
        sys.exit(errors.EXIT_USAGE)
    if not first and stream.skipped.get("other repository"):
        click.echo(
            clean(f"ci-risk: error: no rows for repository {travis_repo!r} in {file}; check --travis-repo"), err=True
        )
        sys.exit(errors.EXIT_USAGE)
    target = _open_target(db)
    try:
        summary = _store_import(target, chain(first, records), stream)
        skipped = clean(", ".join(f"{n:,} {why}" for why, n in sorted(stream.skipped.items())) or "none")
        click.echo(
            f"ci-risk: {stream.rows:,} rows read, {summary.recorded:,} outcomes recorded "
            f"({summary.new:,} new), skipped: {skipped}, bad rows: {stream.bad_rows:,}"
        )
        if summary.unknown_commits:
            examples = ", ".join(clean(c[:10]) for c in summary.unknown_examples)
            click.echo(
                f"ci-risk: {summary.unknown_commits:,} outcomes name commits not in this clone "
                f"(e.g. {examples}): kept, but without features"
            )
        if not no_features:
            click.echo(f"ci-risk: features computed for {_build_features(target):,} builds")
    finally:
        target.store.close()


def _store_import(target: Any, records: Any, stream: Any) -> Any:
    """The rows, in one transaction: a bad row (exit 2) or a store error (exit 1) leaves nothing imported."""
    from ci_risk_hook.outcomes.importers import ImportFormatError
    from ci_risk_hook.outcomes.record import store_records
    from ci_risk_hook.outcomes.store import StoreError
    from ci_risk_hook.progress import Progress

    reading = Progress("reading outcomes", "rows")
    try:
        return store_records(target, records, progress=lambda _: reading(stream.rows))
    except ImportFormatError as exc:
        click.echo(f"ci-risk: error: {clean(str(exc))}; nothing imported", err=True)
        sys.exit(errors.EXIT_USAGE)
    except StoreError as exc:
        raise click.ClickException(f"{exc}; nothing imported") from None
    finally:
        reading.finish()


def _build_features(target: Any) -> int:
    """The feature phase of import and backfill, with progress; a store error keeps what was written."""
    from ci_risk_hook.outcomes.record import compute_build_features
    from ci_risk_hook.outcomes.store import StoreError
    from ci_risk_hook.progress import Progress

    progress = Progress("computing features", "builds")
    try:
        return compute_build_features(target, progress=progress)
    except StoreError as exc:
        raise click.ClickException(
            f"{exc}; the outcomes are recorded, features of some builds are not (`ci-risk backfill` computes the rest)"
        ) from None
    finally:
        progress.finish()


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
@click.option(
    "--bug-issues",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="With SZZ: the tracker's bug reports, CSV rows KEY,REPORTED (fixes are the commits naming them).",
)
@_db_option
def backfill(
    since: str | None, max_commits: int | None, szz: bool, max_fixes: int | None, bug_issues: str | None, db: str | None
) -> None:
    """Mine the history: features of every commit, of every recorded build, and labels from git."""
    from ci_risk_hook.mining.backfill import backfill_commits
    from ci_risk_hook.mining.labels import label_history, load_bug_issues
    from ci_risk_hook.outcomes.records import parse_time
    from ci_risk_hook.outcomes.store import StoreError

    since_ts = None
    if since is not None:
        try:
            since_ts = parse_time(since)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
    bugs = None if bug_issues is None else load_bug_issues(bug_issues)
    target = _open_target(db)
    try:
        stats = backfill_commits(
            target.store, target.repo_id, since=since_ts, max_commits=max_commits, progress=_counter("commits read")
        )
        click.echo(
            f"ci-risk: {stats.commits_seen:,} commits read, features stored for {stats.commits_added:,} new "
            f"({stats.commits_seen / max(stats.seconds, 1e-9):,.0f} commits/s)"
        )
        builds = _build_features(target)
        click.echo(f"ci-risk: features computed for {builds:,} recorded builds")
        _print_labels(
            label_history(
                target.store,
                target.repo_id,
                szz_too=szz,
                max_fixes=max_fixes,
                since=since_ts,
                progress=_bar("SZZ"),
                bugs=bugs,
            )
        )
    except StoreError as exc:  # e.g. a full disk: what was stored is kept, and the next run resumes from it
        raise StoreError(f"{exc}; what was stored so far is kept: run backfill again to resume") from None
    finally:
        target.store.close()


def _counter(label: str) -> Any:
    if not sys.stderr.isatty():
        return None

    def update(done: int) -> None:
        click.echo(f"\rci-risk: {done:,} {label}", err=True, nl=False)

    return update


def _print_labels(labelled: Any) -> None:
    from ci_risk_hook.mining.labels import MAX_CANDIDATES

    click.echo(f"ci-risk: {labelled.reverts:,} reverted commits labelled ({labelled.reverts_seconds:.1f} s)")
    if labelled.szz is not None:
        found, stats = labelled.szz
        click.echo(
            f"ci-risk: SZZ: {len(found):,} fix-inducing commits from {stats.fixes_seen:,} fixes "
            f"({labelled.szz_seconds:.1f} s; {stats.files_skipped_missing:,} files skipped: objects missing; "
            f"{stats.fixes_skipped_candidates:,} fixes skipped: more than {MAX_CANDIDATES} candidates)"
        )


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True, help="Builds listed in the table.")
@_db_option
def history(fmt: str, limit: int, db: str | None) -> None:
    """What is recorded for this repository, with counts by source and status."""
    import csv
    import json

    target = _open_reading(db)
    counts: list[tuple[str, str, int, int]] = []
    builds: list[Any] = []
    labelled: list[tuple[str, str, str, int]] = []
    try:
        if target.repo_id is not None:  # else: nothing recorded for it (counts(None) would be every repository's)
            counts = target.store.counts(target.repo_id)
            builds = target.store.builds(target.repo_id)
            labelled = target.store.labels(target.repo_id)
    finally:
        target.store.close()
    fields = [
        "commit",
        "branch",
        "status",
        "raw_status",
        "started_at",
        "finished_at",
        "duration_s",
        "source",
        "job_id",
        "attempt",
        "flaky",
        "known_commit",
        "base",
    ]
    rows = [
        {
            "commit": b.commit,
            "branch": b.branch,
            "status": b.status,
            "raw_status": b.raw_status,
            "started_at": b.started_at,
            "finished_at": b.finished_at,
            "duration_s": b.duration_s,
            "source": b.source,
            "job_id": b.job_id,
            "attempt": b.attempt,
            "flaky": b.flaky,
            "known_commit": b.known_commit,
            "base": b.base,
        }
        for b in builds
    ]
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "counts": [{"source": s, "status": st, "builds": n, "flaky": f} for s, st, n, f in counts],
                    "labels": {
                        src: sum(1 for label in labelled if label[1] == src)
                        for src in sorted({label[1] for label in labelled})
                    },
                    "builds": rows,
                },
                indent=2,
            )
        )
        return
    if fmt == "csv":  # for spreadsheets: formula-like cells neutralised; JSON is the lossless export
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
        return
    click.echo(f"{'source':<10}{'status':<8}{'builds':>8}{'flaky':>7}")
    for source, status, n, flaky in counts:
        click.echo(f"{clean(source):<10}{status:<8}{n:>8,}{flaky:>7,}")
    click.echo(f"{'total':<18}{sum(c[2] for c in counts):>8,}")
    by_source: dict[str, int] = {}
    for _, src, _, _ in labelled:
        by_source[src] = by_source.get(src, 0) + 1
    if by_source:
        click.echo("labels from git: " + ", ".join(f"{n:,} {clean(src)}" for src, n in sorted(by_source.items())))
    if builds:
        click.echo(f"\nlatest {min(limit, len(builds))} builds:")
        for b in builds[-limit:]:
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(b.started_at)) if b.started_at else "?"
            click.echo(
                f"  {when}  {clean(b.commit[:10])}  {b.status:<4}{' (flaky)' if b.flaky else '':<9} "
                f"{clean(b.branch or '-'):<20} {clean(b.source)}"
            )


def _training_options(func: F) -> F:
    options = [
        click.option(
            "--labels",
            type=click.Choice(["ci", "szz", "both"]),
            default="ci",
            show_default=True,
            help="ci: recorded CI outcomes; szz: fix-inducing commits from backfill; both.",
        ),
        click.option("--all-repos", is_flag=True, help="Learn from every repository in the store."),
        click.option(
            "--target-recall",
            type=click.FloatRange(0.05, 1.0),
            default=0.9,
            show_default=True,
            help="Warn threshold: catch this share of failures (defer the rest).",
        ),
        click.option(
            "--target-precision",
            type=click.FloatRange(0.05, 1.0),
            default=0.8,
            show_default=True,
            help="Block threshold: block only when this sure.",
        ),
        _db_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _table(target: Any, labels: str, all_repos: bool) -> tuple[Any, list[str]]:
    from ci_risk_hook.git import repo as git
    from ci_risk_hook.model.workflow import table_for

    if all_repos:
        repos = target.store.repositories()
        ids, names = [r[0] for r in repos], [r[2] or r[1][:12] for r in repos]
    else:  # a repository the store does not know: no rows (table_for says so)
        ids = [] if target.repo_id is None else [target.repo_id]
        names = [git.repo_name(target.info)]
    return table_for(target.store, ids, labels), names


@cli.command()
@_training_options
@click.option("--out", default=None, help="Where to write the model (default: .git/ci-risk/model.json).")
def train(
    labels: str, all_repos: bool, target_recall: float, target_precision: float, db: str | None, out: str | None
) -> None:
    """Train this repository's model on its recorded history (time-ordered validation)."""
    require("train")
    from ci_risk_hook.model.workflow import default_model_path, run_train

    target = _open_reading(db, this_repo=not all_repos)
    try:
        table, names = _table(target, labels, all_repos)
        path = out or default_model_path()
        trained = run_train(
            table,
            labels,
            names,
            path,
            target_recall=target_recall,
            target_precision=target_precision,
            log=lambda m: click.echo(f"ci-risk: {clean(m)}", err=True),
        )
    finally:
        target.store.close()
    result = trained.result
    scores = ", ".join(f"{k} {v:.3f}" for k, v in sorted(result.validation.items(), key=lambda kv: -kv[1]))
    click.echo(
        f"ci-risk: trained on {result.rows:,} builds ({result.failures:,} failed); chose {result.model.name} "
        f"by validation PR-AUC ({scores})"
    )
    t = result.thresholds
    click.echo(
        f"ci-risk: thresholds: warn {t['warn']:.3f} (catches {target_recall:.0%} of validation failures), "
        f"block {t['block']:.3f} (precision {target_precision:.0%}), best-F1 {t['f1']:.3f}"
    )
    click.echo(
        clean(
            f"ci-risk: model written to {trained.path}"
            + (f" (previous kept as {trained.previous})" if trained.previous else "")
        )
    )


@cli.command()
@_training_options
@click.option("--retrain-every", type=click.IntRange(1), default=25, show_default=True, help="Builds between retrains.")
@click.option(
    "--predictions",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write one CSV row per predicted build.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def backtest(
    labels: str,
    all_repos: bool,
    target_recall: float,
    target_precision: float,
    db: str | None,
    retrain_every: int,
    predictions: str | None,
    fmt: str,
) -> None:
    """Would it have helped here? Predict each past build from the builds finished before it."""
    require("train")
    import json

    from ci_risk_hook.model.backtest import write_predictions
    from ci_risk_hook.model.workflow import run_backtest

    target = _open_reading(db, this_repo=not all_repos)
    try:
        table, _ = _table(target, labels, all_repos)
    finally:
        target.store.close()
    result = run_backtest(table, retrain_every=retrain_every, target_recall=target_recall, progress=_bar("backtest"))
    if predictions:
        write_predictions(result, predictions)
    report = result.as_dict()
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    chosen = ", ".join(f"{k} x{v}" for k, v in sorted(result.chosen.items(), key=lambda kv: -kv[1]))
    click.echo(
        f"ci-risk: {result.predicted:,} of {result.builds:,} builds predicted, {result.retrains} retrains "
        f"(every {retrain_every}; chosen: {chosen}), {result.seconds:.1f} s"
    )
    click.echo(metrics.answer(report, failures=sum(p.label for p in result.predictions)))
    click.echo(metrics.text_table(report))


@cli.command()
@_training_options
@click.option(
    "--metric",
    type=click.Choice(metrics.RETRAIN_METRICS),
    default="f1",
    show_default=True,
    help="What the new model must not be worse at.",
)
@click.option("--retrain-every", type=click.IntRange(1), default=25, show_default=True)
@click.option(
    "--max-rows",
    type=click.IntRange(100),
    default=None,
    help="With --all-repos: most builds to train on, sampled by repository and time (default 200,000).",
)
@click.option("--out", default=None, help="With --all-repos: the model file (default: .git/ci-risk/model.json).")
@click.option(
    "--publish",
    "publish_to",
    default=None,
    help="With --all-repos: compare with the model published at this URL and publish the new one if not worse.",
)
@click.option("--sign", "key_file", default=None, help="With --publish: sign with this private key (model keygen).")
def retrain(
    labels: str,
    all_repos: bool,
    target_recall: float,
    target_precision: float,
    db: str | None,
    metric: str,
    retrain_every: int,
    max_rows: int | None,
    out: str | None,
    publish_to: str | None,
    key_file: str | None,
) -> None:
    """Train and backtest; replace the current model only if the new one is not worse.

    With --all-repos (the scheduled job): one organisation model from the whole
    store, read in bounded memory; see the README.
    """
    require("train")
    from ci_risk_hook.model.workflow import default_model_path, run_retrain

    if (publish_to or key_file) and not (all_repos and labels == "ci"):
        raise click.UsageError("--publish and --sign go with --all-repos (and --labels ci)")
    if key_file and not publish_to:
        raise click.UsageError("--sign needs --publish DEST")
    if all_repos and labels == "ci" and publish_to:
        _scheduled_publish(db, out, max_rows, target_recall, target_precision, publish_to, key_file)
        return
    if all_repos and labels == "ci":
        _scheduled_retrain(db, out, max_rows, target_recall, target_precision)
        return
    target = _open_reading(db, this_repo=not all_repos)
    try:
        table, names = _table(target, labels, all_repos)
        done = run_retrain(
            table,
            labels,
            names,
            default_model_path(),
            metric=metric,
            retrain_every=retrain_every,
            target_recall=target_recall,
            target_precision=target_precision,
            progress=_bar("backtest"),
        )
    finally:
        target.store.close()
    old, new = done.old, done.new
    if done.trained is None:
        click.echo(
            f"ci-risk: kept the current model: its backtest {metrics.label(metric)} {old:.3f} beats the new "
            f"one's {0.0 if new is None else new:.3f}"
        )
        return
    was = "none" if old is None else f"{old:.3f}"
    click.echo(
        f"ci-risk: installed {done.trained.result.model.name}: backtest {metrics.label(metric)} {new:.3f} "
        f"(previous model: {was}); "
        f"written to {clean(done.trained.path)}"
    )


def _scheduled_retrain(
    db: str | None, out: str | None, max_rows: int | None, target_recall: float, target_precision: float
) -> None:
    """`retrain --all-repos`: needs a store, not a checkout (a checkout only gives the default --out)."""
    from ci_risk_hook import paths
    from ci_risk_hook.git import repo as git
    from ci_risk_hook.model.bounded import DEFAULT_MAX_ROWS
    from ci_risk_hook.model.workflow import run_scheduled_retrain
    from ci_risk_hook.outcomes.store import default_url, open_existing, store_for

    try:
        common_dir: str | None = git.repo_info().common_dir
    except errors.CiRiskError:
        common_dir = None
    if out is None and common_dir is None:
        raise click.UsageError("outside a git repository, --all-repos needs --out FILE")
    out = out or paths.repo_model(str(common_dir))
    store = open_existing(store_for(common_dir, db) if common_dir else db or default_url())
    try:
        repos = store.repositories()
        done = run_scheduled_retrain(
            store,
            [r[0] for r in repos],
            [r[2] or r[1][:12] for r in repos],
            out,
            max_rows=max_rows or DEFAULT_MAX_ROWS,
            target_recall=target_recall,
            target_precision=target_precision,
            log=lambda m: click.echo(f"ci-risk: {clean(m)}", err=True),
        )
    finally:
        store.close()
    was = "none" if done.old is None else f"{done.old:.3f}"
    if done.trained is None:
        click.echo(
            f"ci-risk: kept the current model: on the newest builds of the sample its PR-AUC {was} beats the new "
            f"one's {done.new:.3f} ({done.rows:,} builds of {len(repos)} repositories)"
        )
        return
    click.echo(
        f"ci-risk: installed {done.trained.result.model.name} trained on {done.rows:,} builds of {len(repos)} "
        f"repositories: validation PR-AUC {done.new:.3f} (current model: {was}); written to {clean(done.trained.path)}"
    )


def _scheduled_publish(
    db: str | None,
    out: str | None,
    max_rows: int | None,
    target_recall: float,
    target_precision: float,
    dest: str,
    key_file: str | None,
) -> None:
    """`retrain --all-repos --publish DEST`: the team's scheduled job; the current model is the published one."""
    require("team", dest)
    from ci_risk_hook import config
    from ci_risk_hook.distribution.remote import redact
    from ci_risk_hook.distribution.scheduled import retrain_and_publish
    from ci_risk_hook.git import repo as git
    from ci_risk_hook.model.bounded import DEFAULT_MAX_ROWS
    from ci_risk_hook.outcomes.store import default_url, open_existing, store_for
    from ci_risk_hook.outcomes.store import redact as redact_store

    settings = config.resolve({}, toplevel=None, tolerant=False)  # trusted keys: environment or user config
    try:
        common_dir: str | None = git.repo_info().common_dir
    except errors.CiRiskError:
        common_dir = None  # the scheduled job needs no checkout
    url = store_for(common_dir, db) if common_dir else db or default_url()
    store = open_existing(url)
    try:
        repos = store.repositories()
        done = retrain_and_publish(
            store,
            [r[0] for r in repos],
            [r[2] or r[1][:12] for r in repos],
            dest,
            max_rows=max_rows or DEFAULT_MAX_ROWS,
            signing_key=key_file,
            trusted_keys=settings.trusted_keys,
            out=out,
            target_recall=target_recall,
            target_precision=target_precision,
            provenance={"store": redact_store(url)},
            log=lambda m: click.echo(f"ci-risk: {clean(m)}", err=True),
        )
    finally:
        store.close()
    scheduled, shown = done.scheduled, redact(dest)
    was = "none published" if scheduled.old is None else f"{scheduled.old:.3f}"
    if done.manifest is None:
        click.echo(
            clean(
                f"ci-risk: kept the model published at {shown}: on the newest builds of the sample its PR-AUC {was} "
                f"beats the new one's {scheduled.new:.3f} ({scheduled.rows:,} builds of {len(repos)} repositories)"
            )
        )
        return
    signed = f"signed by key {done.manifest['signature']['key_id']}" if "signature" in done.manifest else "unsigned"
    click.echo(
        clean(
            f"ci-risk: published {done.manifest['artifact']['sha256'][:12]} to {shown} ({signed}): trained on "
            f"{scheduled.rows:,} builds of {len(repos)} repositories, validation PR-AUC {scheduled.new:.3f} "
            f"(published model: {was})"
        )
    )


def _settings_warnings(settings: Any) -> None:
    for warning in settings.warnings:
        click.echo(f"ci-risk: warning: {warning}", err=True)


@cli.group()
def model() -> None:
    """The model in use."""


@model.command("show")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def model_show(fmt: str) -> None:
    """Which model is in use, from where, trained on what, how well it backtested."""
    import json

    from ci_risk_hook import config
    from ci_risk_hook.gate.evaluate import choose_model
    from ci_risk_hook.git import repo as git

    info = git.repo_info()
    settings = config.resolve({}, toplevel=info.toplevel, tolerant=True)  # the model the hook would use
    notes: list[str] = []
    choice = choose_model(settings, info, notes)
    _settings_warnings(settings)
    for note in notes:
        click.echo(clean(f"ci-risk: {note}"), err=True)
    if choice is None:
        click.echo("ci-risk: no model available yet: `ci-risk train` (after recording outcomes) creates one")
        return
    m = choice.model
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "path": choice.path,
                    "source": choice.source,
                    "kind": m.kind,
                    "sha256": m.sha256,
                    "thresholds": m.thresholds,
                    "provenance": m.provenance,
                },
                indent=2,
            )
        )
        return
    prov = m.provenance  # written by whoever made the model file: every line of it is cleaned
    chosen = f", chosen candidate {prov['chosen']}" if "chosen" in prov else ""
    click.echo(clean(f"model: {choice.path} ({choice.source}), {m.kind}{chosen}, sha256 {m.sha256[:12]}"))
    if "rows" in prov:
        parts = [
            f"trained: {prov.get('trained_at', '?')} on {prov['rows']:,} builds ({prov.get('failures', 0):,} failed)"
        ]
        if "data_from" in prov:
            parts.append(f"{prov['data_from']} .. {prov.get('data_to', '?')}")
        if "labels" in prov:
            parts.append(f"labels {prov['labels']}")
        if prov.get("repositories"):
            parts.append(f"{len(prov['repositories'])} repositories: {', '.join(prov['repositories'])}")
        click.echo(clean(", ".join(parts)))
        if prov.get("data"):
            click.echo(clean(f"data: {prov['data']}"))
    shown = sorted(m.thresholds.items(), key=lambda kv: (kv[0] not in ("warn", "block"), kv[0] != "warn", kv[0]))
    click.echo(clean("thresholds: " + ", ".join(f"{metrics.threshold_label(k)} {v:.3f}" for k, v in shown)))
    if prov.get("backtest"):
        click.echo(metrics.answer(prov["backtest"]))
        click.echo(metrics.text_table(prov["backtest"]))
    elif prov.get("evaluation"):
        click.echo(_evaluation_text(prov["evaluation"]))


@model.command("publish")
@click.argument("dest")
@click.option("--model", "model_path", default=None, help="Artifact to publish (default: this repository's model).")
@click.option("--sign", "key_file", default=None, help="Sign with this private key (from `ci-risk model keygen`).")
def model_publish(dest: str, model_path: str | None, key_file: str | None) -> None:
    """Publish a model to DEST (a directory, file://, s3:// or any fsspec URL): artifact first, manifest last."""
    require("team", dest)
    from ci_risk_hook.distribution.published import publish
    from ci_risk_hook.distribution.remote import redact
    from ci_risk_hook.model.scoring import read_artifact

    if model_path is None:
        from ci_risk_hook import paths
        from ci_risk_hook.git import repo as git

        model_path = paths.repo_model(git.repo_info().common_dir)
    manifest = publish(read_artifact(model_path), dest, signing_key=key_file, provenance=_publish_provenance())
    signed = f", signed by key {manifest['signature']['key_id']}" if "signature" in manifest else ", unsigned"
    click.echo(
        clean(
            f"published {manifest['artifact']['sha256'][:12]} to {redact(dest)} (created {manifest['created']}{signed})"
        )
    )


def _publish_provenance() -> dict[str, Any]:
    """Which store the publisher trains from (without its password), when this is a repository that has one."""
    from ci_risk_hook import config
    from ci_risk_hook.git import repo as git
    from ci_risk_hook.outcomes.store import redact, remembered

    try:
        info = git.repo_info()
    except git.GitError:
        return {}
    settings = config.resolve({}, toplevel=info.toplevel, tolerant=True)
    store = settings.db or remembered(info.common_dir)
    return {"store": redact(store)} if store else {}


@model.command("pull")
@click.argument("src", required=False)
@click.option("--force", is_flag=True, help="Accept a model older than the cached one (a deliberate rollback).")
def model_pull(src: str | None, force: bool) -> None:
    """Download, verify and cache the team model from SRC (default: the model_source setting)."""
    from ci_risk_hook import config
    from ci_risk_hook.git import repo as git

    try:
        toplevel = git.repo_info().toplevel
    except git.GitError:
        toplevel = None  # outside a repository: the environment and the user's config still count
    settings = config.resolve({}, toplevel=toplevel)
    _settings_warnings(settings)
    source = src or settings.model_source
    if not source:
        raise click.UsageError("no source: give SRC or set model_source (CI_RISK_MODEL_SOURCE or the user config)")
    require("team", source)
    from ci_risk_hook.distribution.cache import pull
    from ci_risk_hook.distribution.remote import redact

    pulled = pull(source, settings.trusted_keys, force=force)
    verified = f", signature by key {pulled.signed_by} verified" if pulled.signed_by else ", no trusted keys configured"
    what = "already up to date with" if pulled.status == "current" else "pulled from"
    click.echo(
        clean(
            f"{what} {redact(source)}: {pulled.manifest['artifact']['sha256'][:12]} "
            f"(published {pulled.manifest.get('created')}{verified}) -> {pulled.path}"
        )
    )


@model.command("keygen")
@click.argument("private_file")
@click.option("--public-out", default=None, help="Also write the public key line to this file.")
def model_keygen(private_file: str, public_out: str | None) -> None:
    """Make an Ed25519 signing key: the private key to PRIVATE_FILE (0600), the public key printed."""
    require("team")
    from ci_risk_hook.distribution import keys

    try:  # opened first: a public key that cannot be written must not leave a private key without it
        public_fh = open(public_out, "w", encoding="ascii") if public_out else None
    except OSError as exc:
        raise keys.KeyError_(f"cannot write {public_out}: {exc.strerror or exc}") from None
    try:
        public = keys.generate(private_file)
        if public_fh is not None:
            public_fh.write(public + "\n")
    finally:
        if public_fh is not None:
            public_fh.close()
    click.echo(public)
    click.echo(
        clean(f"# private key: {private_file} (keep it secret); trust the public key with trusted_keys = {public}"),
        err=True,
    )


def _evaluation_text(evaluation: dict[str, Any]) -> str:
    """The bundled model's evaluation on unseen projects, as lines (the JSON is `--format json`)."""
    projects = evaluation.get("projects", [])
    lines = [f"evaluated on {len(projects)} projects it never saw (medians): {', '.join(projects)}"]
    for regime, title in (("with_history", "with build history"), ("cold_start", "cold start")):
        for who, name in (("model", "ci-risk"), ("parrot", "Parrot")):
            m = evaluation.get("median", {}).get(regime, {}).get(who)
            if m and (who == "model" or regime == "with_history"):
                cells = ", ".join(
                    f"{metrics.label(key)} {m[key]:.3f}"
                    for key in (
                        "f1",
                        "roc_auc",
                        "pr_auc",
                        "brier",
                        "deferrable_at_90",
                        "quiet_at_warn",
                        "recall_at_warn",
                    )
                    if key in m
                )
                lines.append(f"  {name}, {title}: {cells}")
    return "\n".join(lines)


@cli.command()
@click.option(
    "--out",
    default="ci-risk-report",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory for the PNG charts (and report.html).",
)
@click.option("--html", "html_page", is_flag=True, help="Also write one self-contained HTML page.")
@click.option("--retrain-every", type=click.IntRange(1), default=25, show_default=True)
@_db_option
def report(out: str, html_page: bool, retrain_every: int, db: str | None) -> None:
    """Charts of what the model learnt and how it backtested here (PNG; --html for one page)."""
    require("train")
    from ci_risk_hook import config
    from ci_risk_hook.gate.evaluate import choose_model
    from ci_risk_hook.views import report as report_lib

    target = _open_reading(db)
    try:
        settings = config.resolve({}, toplevel=target.info.toplevel, tolerant=True)
        _settings_warnings(settings)
        choice = choose_model(settings, target.info)
    except BaseException:
        target.store.close()
        raise
    if choice is None or target.repo_id is None:
        target.store.close()
        raise click.ClickException(
            "no model to report on: `ci-risk train` first" if choice is None else "no recorded history to report on"
        )
    made = report_lib.build_for_repo(
        out,
        target.store,
        target.repo_id,
        target.info,
        choice,
        html_page=html_page,
        retrain_every=retrain_every,
        progress=_bar("backtest"),
    )
    for name, path in made.charts.items():
        click.echo(f"ci-risk: {name}: {clean(path)}")
    if made.html:
        click.echo(f"ci-risk: report: {clean(made.html)}")


_MONITOR_WINDOWS = {"50": "last 50 builds", "200": "last 200 builds", "30d": "last 30 days"}


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--window",
    type=click.Choice(["all", *_MONITOR_WINDOWS]),
    default="all",
    show_default=True,
    help="Which window to show: the last 50 or 200 builds, the last 30 days, or all three.",
)
@click.option(
    "--target-recall",
    type=_Share(),
    default=live.DEFAULT_TARGET_RECALL,
    show_default=True,
    help="Share of failures the gate should flag; lower on the latest builds is drift.",
)
@click.option(
    "--drift-builds",
    type=click.IntRange(1),
    default=live.DEFAULT_DRIFT_BUILDS,
    show_default=True,
    help="How many of the latest builds recall is judged on.",
)
@click.option(
    "--calibration-margin",
    type=_Share(),
    default=live.DEFAULT_CALIBRATION_MARGIN,
    show_default=True,
    help="Largest average gap between predicted and observed failure rate that is not drift.",
)
@click.option(
    "--fail-on-drift",
    is_flag=True,
    help=f"Exit {errors.EXIT_DRIFT} when drift is found (for a scheduled job).",
)
@_db_option
def monitor(
    fmt: str,
    window: str,
    target_recall: float,
    drift_builds: int,
    calibration_margin: float,
    fail_on_drift: bool,
    db: str | None,
) -> None:
    """Is ci-risk right now? Recorded predictions against the outcomes that followed, beside the previous-build rule."""
    import json

    from ci_risk_hook.outcomes import spool
    from ci_risk_hook.outcomes.monitor import empty_summary, live_summary
    from ci_risk_hook.outcomes.store import StoreError
    from ci_risk_hook.views.monitor import render_text

    target = _open_reading(db)
    try:
        try:
            # This clone's latest pushes: their predictions bring their repository in, as the next push would.
            moved = spool.move(target.store, target.repo_id, target.root, target.info.common_dir)
            for note in moved.notes:
                click.echo(clean(f"ci-risk: warning: {note}"), err=True)
        except StoreError as exc:
            click.echo(f"ci-risk: warning: this clone's latest predictions stay pending: {exc}", err=True)
        repo_id = target.store.find_repository(target.root) if target.repo_id is None else target.repo_id
        summary = (
            empty_summary(target_recall)
            if repo_id is None
            else live_summary(
                target.store,
                repo_id,
                target_recall=target_recall,
                drift_builds=drift_builds,
                calibration_margin=calibration_margin,
            )
        )
    finally:
        target.store.close()
    if window != "all":
        summary["windows"] = [w for w in summary["windows"] if w["name"] == _MONITOR_WINDOWS[window]]
    click.echo(json.dumps(summary, indent=2, allow_nan=False) if fmt == "json" else render_text(summary))
    if fail_on_drift and summary["drift"]:
        sys.exit(errors.EXIT_DRIFT)


@cli.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; the default keeps the page on this machine only.",
)
@_db_option
def dashboard(port: int, host: str, db: str | None) -> None:
    """A local web page: this push's score and reasons, what-if, history, backtest metrics."""
    require("train")
    from ci_risk_hook.views import dashboard as dash

    try:
        state = dash.load_state(db)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        server = dash.make_server(state, host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    click.echo(clean(dash.started_message(server)))
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
    require("train")
    import tempfile

    from ci_risk_hook.gate.output import render_text
    from ci_risk_hook.views import demo as demo_lib

    if directory is None:
        directory = tempfile.mkdtemp(prefix="ci-risk-demo-")
    elif os.path.exists(directory) and os.listdir(directory):
        raise click.ClickException(f"{directory} is not empty; give a new or empty directory")
    started = time.monotonic()
    from ci_risk_hook.model.training import TrainError

    try:
        result = demo_lib.build(
            directory, seed=seed, commits=commits, progress=lambda m: click.echo(f"ci-risk demo: {m}")
        )
    except TrainError as exc:  # a short simulated history can leave nothing to validate on
        raise click.ClickException(f"{exc}; try more --commits or another --seed") from None
    click.echo(
        f"ci-risk demo: {result.commits} commits, {result.builds} builds ({result.failures} failed); "
        f"trained {result.chosen} ({time.monotonic() - started:.0f} s)\n"
    )
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
    lines = [f"Try next, in {clean(directory)}:"] + [f"  {c:<{width}}# {why}" for c, why in commands]
    if over:
        from ci_risk_hook.outcomes.store import redact

        lines.append(f"  (--db because CI_RISK_DB={redact(over)} is set; the demo kept its outcomes in its own store)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="ci-risk", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except Exception as exc:  # noqa: BLE001 - a bug in ci-risk: one line here, the traceback in the error log
        handled = errors.handle(exc)
        click.echo(f"ci-risk: error: {handled.line}", err=True)
        return handled.exit_code
    return 0
