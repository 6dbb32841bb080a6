"""Which CI system runs us, and what its environment says about the commits to score.

One typed value (`CiContext`) whatever the system: the range (tip and how to
find its base), the branch CI builds (never the detached HEAD), the run, its
attempt, the job, the repository's slug, and one human line saying which
variables were used. Variables are untrusted text: a malformed one is a
one-line `CiEnvError`, never a traceback.

Standard library only; imported by `check --ci` on a CI runner.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, NamedTuple

from ci_risk_hook.errors import EXIT_USAGE, CiRiskError

ZERO = re.compile(r"^0+$")
SHA = re.compile(r"^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")
MAX_VALUE = 4096  # longer than any id, branch or slug a CI system sets: a longer value is garbage

# How the range's base is found (`CiContext.base_kind`):
COMMIT = "commit"  # base is a commit id: the range is tip ^base (everything since their merge base)
BRANCH = "branch"  # base is a branch on the remote (a pull request's target): tip ^<remote>/<base>
REMOTES = "remotes"  # a new branch: the tip's commits on no other remote branch
PARENT = "parent"  # nothing says what is new: the tip commit alone


class CiEnvError(CiRiskError):
    """A CI variable or the event file holds what cannot be used; the message names it."""

    exit_code = EXIT_USAGE


class CiContext(NamedTuple):
    system: str  # github | gitlab | jenkins | buildkite | azure | circleci | manual
    name: str  # "GitHub Actions"
    tip: str  # a commit id, or "HEAD" where the system gives none
    base: str | None
    base_kind: str  # COMMIT | BRANCH | REMOTES | PARENT
    branch: str | None
    run_id: str
    attempt: int
    job: str
    repository: str  # owner/name or the system's project path; "" when unknown
    event: str  # push, pull_request, merge_request_event, ...
    source: str  # the human line: which variables gave the range

    @property
    def job_key(self) -> str:
        """The job id recorded with an outcome: the run and the job in it, so each job of a run is one row."""
        return f"{self.run_id}/{self.job}" if self.job else self.run_id


def _text(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if len(value) > MAX_VALUE:
        raise CiEnvError(f"{name}: {len(value):,} characters, too long for a CI variable")
    return value.strip()


def _sha(env: Mapping[str, str], name: str, required: bool = False) -> str | None:
    """A commit id from `name`: None when unset (or all zeros); CiEnvError when it is not a commit id."""
    value = _text(env, name)
    if not value:
        if required:
            raise CiEnvError(f"{name} is not set: cannot tell which commit this job builds (give --from/--to)")
        return None
    if not SHA.match(value):
        raise CiEnvError(f"{name}: not a commit id: {_shown(value)}")
    return None if ZERO.match(value) else value.lower()


def _attempt(env: Mapping[str, str], name: str, counts_retries: bool = False) -> int:
    """A rerun number from `name`; Buildkite counts retries (0 on the first run), so 1 is added there."""
    from ci_risk_hook.outcomes.records import parse_attempt

    value = _text(env, name)
    if not value:
        return 1
    try:
        if counts_retries and value.isascii() and value.isdigit() and len(value) <= 10:
            value = str(int(value) + 1)
        return parse_attempt(value)
    except ValueError as exc:
        raise CiEnvError(f"{name}: {exc}") from None


def _branch_name(ref: str) -> str | None:
    for prefix in ("refs/heads/", "origin/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :] or None
    return ref or None


def _shown(text: str) -> str:
    from ci_risk_hook.safetext import clean

    return "'" + clean(text if len(text) <= 60 else text[:57] + "...") + "'"


def _short(sha: str | None) -> str:
    return sha[:10] if sha else "?"


# -- the systems ---------------------------------------------------------------------


def _github(env: Mapping[str, str]) -> CiContext:
    from ci_risk_hook.ci import github_event

    event_name = _text(env, "GITHUB_EVENT_NAME")
    event = github_event.read(_text(env, "GITHUB_EVENT_PATH"))
    github_sha = _sha(env, "GITHUB_SHA")
    common: dict[str, Any] = {
        "system": "github",
        "name": "GitHub Actions",
        "run_id": _text(env, "GITHUB_RUN_ID"),
        "attempt": _attempt(env, "GITHUB_RUN_ATTEMPT"),
        "job": _text(env, "GITHUB_JOB"),
        "repository": _text(env, "GITHUB_REPOSITORY"),
        "event": event_name,
    }
    if event_name in ("pull_request", "pull_request_target"):
        base, head = github_event.pull_request_shas(event)
        branch = _text(env, "GITHUB_HEAD_REF") or None
        return CiContext(
            tip=head,
            base=base,
            base_kind=COMMIT,
            branch=branch,
            source=f"pull request: merge base of base {_short(base)} and head {_short(head)} "
            "(pull_request.base.sha/head.sha in GITHUB_EVENT_PATH)",
            **common,
        )
    branch = _text(env, "GITHUB_REF_NAME") or None
    if event_name == "push":
        before, after = github_event.push_shas(event)
        tip = after or github_sha
        if tip is None:
            raise CiEnvError("GitHub push: neither `after` in GITHUB_EVENT_PATH nor GITHUB_SHA names a commit")
        if before is None:
            return CiContext(
                tip=tip,
                base=None,
                base_kind=REMOTES,
                branch=branch,
                source=f"push of a new branch (`before` is all zeros): {_short(tip)}'s commits on no other "
                "remote branch",
                **common,
            )
        return CiContext(
            tip=tip,
            base=before,
            base_kind=COMMIT,
            branch=branch,
            source=f"push: before..after from GITHUB_EVENT_PATH ({_short(before)}..{_short(tip)})",
            **common,
        )
    if github_sha is None:
        raise CiEnvError("GITHUB_SHA is not set: cannot tell which commit this job builds (give --from/--to)")
    return CiContext(
        tip=github_sha,
        base=None,
        base_kind=PARENT,
        branch=branch,
        source=f"{event_name or 'unknown'} event gives no range: the tip commit GITHUB_SHA {_short(github_sha)} alone",
        **common,
    )


def _gitlab(env: Mapping[str, str]) -> CiContext:
    tip = _sha(env, "CI_COMMIT_SHA", required=True)
    assert tip is not None
    pipeline_source = _text(env, "CI_PIPELINE_SOURCE")
    merge_request = bool(_text(env, "CI_MERGE_REQUEST_IID"))
    common: dict[str, Any] = {
        "system": "gitlab",
        "name": "GitLab CI",
        "tip": tip,
        "run_id": _text(env, "CI_PIPELINE_ID"),
        "attempt": 1,  # a retried GitLab job gets a new CI_JOB_ID
        "job": _text(env, "CI_JOB_ID"),
        "repository": _text(env, "CI_PROJECT_PATH"),
        "event": pipeline_source or ("merge_request_event" if merge_request else "push"),
    }
    if merge_request:
        branch = _text(env, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or _text(env, "CI_COMMIT_REF_NAME") or None
        diff_base = _sha(env, "CI_MERGE_REQUEST_DIFF_BASE_SHA")
        if diff_base is not None:
            return CiContext(
                base=diff_base,
                base_kind=COMMIT,
                branch=branch,
                source="merge request: CI_MERGE_REQUEST_DIFF_BASE_SHA..CI_COMMIT_SHA "
                f"({_short(diff_base)}..{_short(tip)})",
                **common,
            )
        target = _text(env, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME")
        if target:
            return CiContext(
                base=target,
                base_kind=BRANCH,
                branch=branch,
                source=f"merge request: merge base of target branch {_shown(target)} and CI_COMMIT_SHA {_short(tip)}",
                **common,
            )
    branch = _text(env, "CI_COMMIT_REF_NAME") or None
    before = _sha(env, "CI_COMMIT_BEFORE_SHA")
    if before is not None:
        return CiContext(
            base=before,
            base_kind=COMMIT,
            branch=branch,
            source=f"push: CI_COMMIT_BEFORE_SHA..CI_COMMIT_SHA ({_short(before)}..{_short(tip)})",
            **common,
        )
    if pipeline_source in ("", "push") and not merge_request:
        return CiContext(
            base=None,
            base_kind=REMOTES,
            branch=branch,
            source=f"push of a new branch (CI_COMMIT_BEFORE_SHA all zeros): {_short(tip)}'s commits on no other "
            "remote branch",
            **common,
        )
    return CiContext(
        base=None,
        base_kind=PARENT,
        branch=branch,
        source=f"{pipeline_source} pipeline gives no range: the tip commit CI_COMMIT_SHA {_short(tip)} alone",
        **common,
    )


def _jenkins(env: Mapping[str, str]) -> CiContext:
    tip = _sha(env, "GIT_COMMIT", required=True)
    assert tip is not None
    change_target = _text(env, "CHANGE_TARGET")
    branch = _text(env, "CHANGE_BRANCH") or _text(env, "BRANCH_NAME") or _branch_name(_text(env, "GIT_BRANCH")) or None
    common: dict[str, Any] = {
        "system": "jenkins",
        "name": "Jenkins",
        "tip": tip,
        "branch": branch,
        "run_id": _text(env, "BUILD_ID") or _text(env, "BUILD_NUMBER"),
        "attempt": 1,  # a rebuilt Jenkins job is a new build with its own BUILD_ID
        "job": _text(env, "JOB_NAME"),
        "repository": "",  # Jenkins names no repository slug (GIT_URL may hold credentials: never recorded)
        "event": "change_request" if _text(env, "CHANGE_ID") else "push",
    }
    if change_target:
        return CiContext(
            base=change_target,
            base_kind=BRANCH,
            source=f"change request: merge base of CHANGE_TARGET {_shown(change_target)} and GIT_COMMIT {_short(tip)}",
            **common,
        )
    for name in ("GIT_PREVIOUS_SUCCESSFUL_COMMIT", "GIT_PREVIOUS_COMMIT"):
        previous = _sha(env, name)
        if previous is not None and previous != tip:
            return CiContext(
                base=previous,
                base_kind=COMMIT,
                source=f"{name}..GIT_COMMIT ({_short(previous)}..{_short(tip)})",
                **common,
            )
    return CiContext(
        base=None,
        base_kind=PARENT,
        source=f"no earlier build of this job: the tip commit GIT_COMMIT {_short(tip)} alone",
        **common,
    )


def _buildkite(env: Mapping[str, str]) -> CiContext:
    commit = _text(env, "BUILDKITE_COMMIT")
    tip = _sha(env, "BUILDKITE_COMMIT") if commit != "HEAD" else None
    org, pipeline = _text(env, "BUILDKITE_ORGANIZATION_SLUG"), _text(env, "BUILDKITE_PIPELINE_SLUG")
    pull_request = _text(env, "BUILDKITE_PULL_REQUEST")
    target = _text(env, "BUILDKITE_PULL_REQUEST_BASE_BRANCH")
    common: dict[str, Any] = {
        "system": "buildkite",
        "name": "Buildkite",
        "tip": tip or "HEAD",
        "branch": _text(env, "BUILDKITE_BRANCH") or None,
        "run_id": _text(env, "BUILDKITE_BUILD_ID"),
        "attempt": _attempt(env, "BUILDKITE_RETRY_COUNT", counts_retries=True),
        "job": _text(env, "BUILDKITE_JOB_ID"),
        "repository": f"{org}/{pipeline}" if org and pipeline else "",
        "event": "pull_request" if pull_request not in ("", "false") else "push",
    }
    if pull_request not in ("", "false") and target:
        return CiContext(
            base=target,
            base_kind=BRANCH,
            source=f"pull request: merge base of BUILDKITE_PULL_REQUEST_BASE_BRANCH {_shown(target)} and the tip",
            **common,
        )
    return CiContext(
        base=None,
        base_kind=PARENT,
        source="Buildkite names no earlier commit: the tip commit BUILDKITE_COMMIT alone",
        **common,
    )


def _azure(env: Mapping[str, str]) -> CiContext:
    pr_tip = _sha(env, "SYSTEM_PULLREQUEST_SOURCECOMMITID")
    tip = pr_tip or _sha(env, "BUILD_SOURCEVERSION", required=True)
    assert tip is not None
    target = _branch_name(_text(env, "SYSTEM_PULLREQUEST_TARGETBRANCH"))
    pr_branch = _branch_name(_text(env, "SYSTEM_PULLREQUEST_SOURCEBRANCH"))
    common: dict[str, Any] = {
        "system": "azure",
        "name": "Azure Pipelines",
        "tip": tip,
        "branch": pr_branch or _branch_name(_text(env, "BUILD_SOURCEBRANCH")),
        "run_id": _text(env, "BUILD_BUILDID"),
        "attempt": _attempt(env, "SYSTEM_JOBATTEMPT"),
        "job": _text(env, "SYSTEM_JOBID") or _text(env, "SYSTEM_JOBNAME"),
        "repository": _text(env, "BUILD_REPOSITORY_NAME"),
        "event": _text(env, "BUILD_REASON") or "push",
    }
    if target:
        return CiContext(
            base=target,
            base_kind=BRANCH,
            source=f"pull request: merge base of SYSTEM_PULLREQUEST_TARGETBRANCH {_shown(target)} and {_short(tip)}",
            **common,
        )
    return CiContext(
        base=None,
        base_kind=PARENT,
        source=f"Azure Pipelines names no earlier commit: the tip commit BUILD_SOURCEVERSION {_short(tip)} alone",
        **common,
    )


def _circleci(env: Mapping[str, str]) -> CiContext:
    tip = _sha(env, "CIRCLE_SHA1", required=True)
    assert tip is not None
    user, name = _text(env, "CIRCLE_PROJECT_USERNAME"), _text(env, "CIRCLE_PROJECT_REPONAME")
    return CiContext(
        system="circleci",
        name="CircleCI",
        tip=tip,
        base=None,
        base_kind=PARENT,
        branch=_text(env, "CIRCLE_BRANCH") or None,
        run_id=_text(env, "CIRCLE_WORKFLOW_ID") or _text(env, "CIRCLE_BUILD_NUM"),
        attempt=1,  # a rerun CircleCI job gets a new CIRCLE_BUILD_NUM
        job=_text(env, "CIRCLE_BUILD_NUM") or _text(env, "CIRCLE_JOB"),
        repository=f"{user}/{name}" if user and name else "",
        event="pull_request" if _text(env, "CIRCLE_PULL_REQUEST") else "push",
        source=f"CircleCI names no earlier commit: the tip commit CIRCLE_SHA1 {_short(tip)} alone",
    )


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes")


# (system, "is it running?", reader), in order: Jenkins last, as JENKINS_URL may leak into other environments.
SYSTEMS: tuple[tuple[str, Callable[[Mapping[str, str]], bool], Callable[[Mapping[str, str]], CiContext]], ...] = (
    ("github", lambda env: env.get("GITHUB_ACTIONS", "") == "true", _github),
    ("gitlab", lambda env: env.get("GITLAB_CI", "") == "true", _gitlab),
    ("buildkite", lambda env: env.get("BUILDKITE", "") == "true", _buildkite),
    ("azure", lambda env: _truthy(env.get("TF_BUILD", "")), _azure),
    ("circleci", lambda env: env.get("CIRCLECI", "") == "true", _circleci),
    ("jenkins", lambda env: bool(env.get("JENKINS_URL", "").strip()), _jenkins),
)


def detect(env: Mapping[str, str]) -> CiContext | None:
    """The CI system running this process and what its variables say; None outside any known CI."""
    for _, running, read in SYSTEMS:
        if running(env):
            return read(env)
    return None


def describe(context: CiContext) -> str:
    """The one line a CI log shows: which system, which range and why, which branch."""
    from ci_risk_hook.safetext import clean

    branch = f", branch {context.branch}" if context.branch else ""
    return clean(f"{context.name}: {context.source}{branch}")
