"""Recording one CI outcome: `record` (given, or from the CI system's variables) and `run` (a test command's own)."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from ci_risk_hook import errors
from ci_risk_hook.cli.options import ci_option, db_option
from ci_risk_hook.safetext import clean


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


@click.command()
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
@ci_option
@db_option
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


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--branch", default=None, help="Branch built (default: the checked-out branch).")
@click.option("--job-id", default=None, help="CI job id (default: from the CI system's variables).")
@click.option("--attempt", type=click.IntRange(1), default=None, help="Rerun number.")
@ci_option
@db_option
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
