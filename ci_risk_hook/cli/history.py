"""Many outcomes at once: `import` (a CI system's export) and `backfill` (mined from git) write the history store;
`history` reads it.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from ci_risk_hook import errors
from ci_risk_hook.cli.common import bar, open_reading, open_target
from ci_risk_hook.cli.options import db_option
from ci_risk_hook.safetext import clean, csv_cell


@click.command(name="import")
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
@db_option
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
    target = open_target(db)
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


@click.command()
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
@db_option
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
    target = open_target(db)
    try:
        stats = backfill_commits(
            target.store, target.repo_id, since=since_ts, max_commits=max_commits, progress=_counter("commits read")
        )
        click.echo(
            f"ci-risk: {stats.commits_seen:,} commits read, features stored for {stats.commits_added:,} new "
            f"({stats.commits_seen / max(stats.seconds, 1e-9):,.0f} commits/s)"
        )
        if stats.lines_unknown:
            click.echo(
                f"ci-risk: {stats.lines_unknown:,} of these commits' file contents are missing from this clone "
                "(a partial or damaged clone): their line counts, and the sizes (LT) that depend on them, are unknown"
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
                progress=bar("SZZ"),
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


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True, help="Builds listed in the table.")
@db_option
def history(fmt: str, limit: int, db: str | None) -> None:
    """What is recorded for this repository, with counts by source and status."""
    import csv
    import json

    target = open_reading(db)
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
