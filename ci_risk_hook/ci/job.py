"""`record --ci` and `run --ci`: the current CI job's outcome, under the CI system's own ids.

The commit is the one the job builds (a pull request's head, a push's
`after`), the branch the CI variable's (never the detached HEAD of a CI
checkout), the job id `<run id>/<job>` and the attempt the system's rerun
number: recording the same job again (a rerun of the step) updates its row,
a new attempt of the run is a new row.

The status: `--status` (GitHub: `${{ job.status }}`), else the CI system's
own where it has one (GitLab's CI_JOB_STATUS in `after_script`). The start:
`run` measures it; `record` takes `--duration`, else GitLab's
CI_JOB_STARTED_AT, else the time the job's first `check --ci` ran, else it
stays unknown (GitHub has no variable for a job's start).
"""

from __future__ import annotations

import os
import time
from typing import Mapping, NamedTuple

from ci_risk_hook.ci import detect
from ci_risk_hook.git import repo as git


class JobOutcome(NamedTuple):
    message: str  # the one line to print
    recorded: bool


# Variables that hold the job's status where the CI system gives one to the job itself.
STATUS_VARIABLES = ("CI_JOB_STATUS", "AGENT_JOBSTATUS")  # GitLab's after_script; Azure Pipelines


def status_of(given: str | None, env: Mapping[str, str]) -> tuple[str | None, str]:
    """(pass | fail | None for "not an outcome", where it came from); CiEnvError when nobody says."""
    from ci_risk_hook.outcomes.records import normalize_status

    text, origin = (given or "").strip(), "--status"
    for name in () if text else STATUS_VARIABLES:
        text, origin = env.get(name, "").strip(), name
        if text:
            break
    if not text:
        raise detect.CiEnvError(
            "--ci: give --status (GitHub: --status ${{ job.status }}; Jenkins: ${currentBuild.currentResult}); "
            "only GitLab's after_script (CI_JOB_STATUS) and Azure Pipelines (AGENT_JOBSTATUS) say it themselves"
        )
    try:
        return normalize_status(text), f"{text} from {origin}"
    except ValueError as exc:
        raise detect.CiEnvError(f"{origin}: {exc}") from None


def _started(
    context: detect.CiContext, env: Mapping[str, str], info: git.RepoInfo, finished: int, notes: list[str]
) -> int | None:
    """The job's start; a CI_JOB_STARTED_AT that is no time, or later than the finish, is left out with a note.

    The outcome is what an `after_script` step is there to keep: a bad start time costs only the duration.
    """
    from ci_risk_hook.ci.gate import job_marker_key, read_job_start
    from ci_risk_hook.outcomes.records import parse_time

    if context.system == "gitlab" and env.get("CI_JOB_STARTED_AT", "").strip():
        try:
            started = parse_time(env["CI_JOB_STARTED_AT"][: detect.MAX_VALUE])
        except ValueError as exc:
            notes.append(f"CI_JOB_STARTED_AT ignored: {exc}")
            return None
        if started > finished:
            notes.append("CI_JOB_STARTED_AT ignored: later than the job's end")
            return None
        return started
    return read_job_start(info.common_dir, job_marker_key(context))


def _identity(context: detect.CiContext, db: str | None, budget: float, cwd: str | None) -> tuple[str, str] | None:
    """(root commit, name) for the store; see `ci.identity` for the order tried."""
    from ci_risk_hook.ci import identity
    from ci_risk_hook.outcomes.store import open_store, store_for

    info = git.repo_info(cwd)
    known = identity.known_root(info, cwd)
    if known is not None:
        return known.root, context.repository
    if context.repository:
        store = open_store(store_for(info.common_dir, db))
        try:
            root = identity.root_by_name(store, context.repository)
        finally:
            store.close()
        if root is not None:
            return root, context.repository
    if identity.unshallow(budget, cwd):
        known = identity.known_root(git.repo_info(cwd), cwd)
        if known is not None:
            return known.root, context.repository
    return None  # open_for_repo then explains: set CI_RISK_REPO


def record_job(
    db: str | None,
    status: str | None,
    *,
    source: str,
    deepen_budget: float,
    started_at: float | None = None,
    duration: float | None = None,
    status_origin: str | None = None,
    job: str | None = None,
    attempt: int | None = None,
    branch: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> JobOutcome:
    """Record this CI job's outcome; `started_at` (a time) or `duration` when the caller measured them.

    `job`, `attempt` and `branch` overrule the CI system's: the legs of a GitHub matrix share one
    GITHUB_JOB, so each needs its own `--job-id` (e.g. `tests-${{ matrix.python }}`) to keep its own row.
    """
    from ci_risk_hook.outcomes.record import record_outcome
    from ci_risk_hook.safetext import clean

    env = os.environ if env is None else env
    context = detect.detect(env)
    if context is None:
        raise detect.CiEnvError(detect.NOT_DETECTED)
    context = context._replace(
        job=job if job is not None else context.job,
        attempt=attempt if attempt is not None else context.attempt,
        branch=branch if branch is not None else context.branch,
    )
    outcome, origin = status_of(status, env)
    if status_origin:
        origin = f"{status} from {status_origin}"
    if outcome is None:
        return JobOutcome(clean(f"ci-risk: not recorded: the job's status is {origin}, not an outcome"), False)
    info = git.repo_info(cwd)
    tip = context.tip
    if tip != "HEAD" and not git.existing_commits([tip], cwd):
        tip = "HEAD"  # the checkout has only its merge commit: record what was built
    base = context.base if context.base_kind == detect.COMMIT and context.base else None
    if base and not git.existing_commits([base], cwd):
        base = None
    finished = int(time.time())
    notes: list[str] = []
    if started_at is None and duration is None:
        started = _started(context, env, info, finished, notes)
    elif started_at is None:
        started = int(finished - (duration or 0.0))
    else:
        started = int(started_at)
    if duration is None and started is not None:
        duration = max(0.0, float(finished - started))
    recorded = record_outcome(
        db,
        outcome,
        tip,
        base=base,
        branch=context.branch,
        source=source,
        job_id=context.job_key,
        attempt=context.attempt,
        started_at=started,
        duration=duration,
        finished_at=finished,
        identity=_identity(context, db, deepen_budget, cwd),
    )
    record = recorded.record
    state = "new" if recorded.new else "already recorded: updated"
    took = f", {duration:.0f} s" if duration is not None else ", duration unknown"
    return JobOutcome(
        clean(
            f"ci-risk: recorded {outcome} ({origin}) for {record.commit[:10]} on {record.branch or '(no branch)'}, "
            f"{context.name} job {context.job_key} attempt {context.attempt}{took} ({state})"
            + "".join(f"; {note}" for note in notes)
        ),
        True,
    )
