"""Which CI system runs us, and what its environment says about the commits to score.

One typed value (`CiContext`) whatever the system: the range (tip and how to
find its base), the branch CI builds (never the detached HEAD), the run, its
attempt, the job, the repository's slug, and one human line saying which
variables were used. Variables are untrusted text: a malformed one is a
one-line `CiEnvError`, never a traceback.

Each system is one `System` row in `SYSTEMS`, declaring which variables say
what; the reading is shared. What one system alone does (GitHub's event
file, GitLab's merge-request base and all-zeros before-sha) is a small
named rule the row lists.

Standard library only; imported by `check --ci` on a CI runner.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, NamedTuple, Optional

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
    system: str  # a `System.system` of SYSTEMS: github | gitlab | buildkite | azure | circleci | jenkins
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


class Range(NamedTuple):
    """What a system's variables say about the commits to score: the `CiContext` fields of that name."""

    tip: str
    base: str | None
    base_kind: str
    source: str


class Ref(str):
    """A variable that holds a ref (`refs/heads/x`, `origin/x`) where a branch name is wanted: read as `x`."""


class Request(NamedTuple):
    """How a system says a build is of a pull (merge, change) request, and which branch that targets."""

    flag: str  # set, and not "false", on a request's build; "" where the target being set says it
    target: str  # the target branch: the range starts at its merge base with the tip ("" when never named)
    event: str  # the event recorded for a request's build when the system's event variable says none
    label: str = "pull request"


# A system's own way to a range, tried before the shared ones: None when it has nothing to say.
# It gets the tip (None where the tip variables are unset: the shared rules then say so).
Rule = Callable[[Mapping[str, str], Optional[str]], Optional[Range]]


class System(NamedTuple):
    """One CI system: which variables say what. Variables in a tuple: the first one set wins."""

    system: str
    name: str
    running: tuple[str, Callable[[str], bool]]  # the variable that says the system runs us, and its test
    tip: tuple[str, ...]  # the commit the job builds
    branch: tuple[str, ...]
    run_id: tuple[str, ...]
    job: tuple[str, ...]
    repository: tuple[str, ...]  # one variable, or owner and name joined by "/" (both set, else unknown)
    attempt: str = ""  # the rerun number; "" where a rerun gets new ids, so the attempt is always 1
    counts_retries: bool = False  # the attempt variable counts retries (0 on the first run)
    event: str = ""  # names the event; where unset: the request's event on a request's build, else "push"
    request: Request | None = None
    previous: tuple[str, ...] = ()  # a commit built before (all zeros, or the tip itself: none)
    rules: tuple[Rule, ...] = ()
    no_range: str = "{name} names no earlier commit"  # why the tip alone is scored ({name}, {event})
    tip_may_be_head: bool = False  # the tip variable may be unset or "HEAD": the checkout's HEAD is built


def _text(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if len(value) > MAX_VALUE:
        raise CiEnvError(f"{name}: {len(value):,} characters, too long for a CI variable")
    return value.strip()


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> str:
    """The first of `names` that is set ("" when none is); a `Ref` read as its branch name."""
    for name in names:
        value = _text(env, name)
        if isinstance(name, Ref):
            value = _branch_name(value) or ""
        if value:
            return value
    return ""


def _sha(env: Mapping[str, str], name: str) -> str | None:
    """A commit id from `name`: None when unset (or all zeros); CiEnvError when it is not a commit id."""
    value = _text(env, name)
    if not value:
        return None
    if not SHA.match(value):
        raise CiEnvError(f"{name}: not a commit id: {_shown(value)}")
    return None if ZERO.match(value) else value.lower()


def _required(env: Mapping[str, str], name: str, sha: str | None) -> str:
    if sha is None:
        said = "is all zeros" if _text(env, name) else "is not set"
        raise CiEnvError(f"{name} {said}: cannot tell which commit this job builds (give --from/--to)")
    return sha


def _attempt(env: Mapping[str, str], name: str, counts_retries: bool = False) -> int:
    """A rerun number from `name`; Buildkite counts retries (0 on the first run), so 1 is added there."""
    from ci_risk_hook.outcomes.records import parse_attempt

    value = _text(env, name) if name else ""
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


def _requested(env: Mapping[str, str], request: Request | None) -> bool:
    """Whether this build is of a pull (merge, change) request."""
    if request is None:
        return False
    if request.flag:
        return _text(env, request.flag) not in ("", "false")  # Buildkite says "false" on other builds
    return bool(request.target and _first(env, (request.target,)))


# -- the shared reading --------------------------------------------------------------


def _tip(env: Mapping[str, str], system: System) -> tuple[str, str | None]:
    """(the variable that named the tip, the tip); the last variable and None (or "HEAD") when none does."""
    for name in system.tip:
        if system.tip_may_be_head and _text(env, name) == "HEAD":
            return name, "HEAD"
        sha = _sha(env, name)
        if sha is not None:
            return name, sha
    return system.tip[-1], "HEAD" if system.tip_may_be_head else None


def _event(env: Mapping[str, str], system: System) -> str:
    named = _text(env, system.event) if system.event else ""
    request = system.request
    return named or (request.event if request is not None and _requested(env, request) else "push")


def _declared_range(env: Mapping[str, str], system: System, tip_name: str, tip: str, event: str) -> Range:
    """The range the row declares: a request's target branch, else a commit built before, else the tip alone."""
    request = system.request
    if request is not None and request.target and _requested(env, request):
        target = _first(env, (request.target,))
        if target:
            source = f"{request.label}: merge base of {request.target} {_shown(target)} and {tip_name} {_short(tip)}"
            return Range(tip, target, BRANCH, source)
    for name in system.previous:
        previous = _sha(env, name)
        if previous is not None and previous != tip:
            return Range(tip, previous, COMMIT, f"{event}: {name}..{tip_name} ({_short(previous)}..{_short(tip)})")
    why = system.no_range.format(name=system.name, event=event)
    return Range(tip, None, PARENT, f"{why}: the tip commit {tip_name} {_short(tip)} alone")


def _read(system: System, env: Mapping[str, str]) -> CiContext:
    tip_name, tip = _tip(env, system)
    event = _event(env, system)
    found = next((r for r in (rule(env, tip) for rule in system.rules) if r is not None), None)
    if found is None:
        found = _declared_range(env, system, tip_name, _required(env, tip_name, tip), event)
    return CiContext(
        system=system.system,
        name=system.name,
        branch=_first(env, system.branch) or None,
        run_id=_first(env, system.run_id),
        attempt=_attempt(env, system.attempt, system.counts_retries),
        job=_first(env, system.job),
        repository=_slug(env, system.repository),
        event=event,
        **found._asdict(),
    )


def _slug(env: Mapping[str, str], names: tuple[str, ...]) -> str:
    parts = [_text(env, name) for name in names]
    return "/".join(parts) if parts and all(parts) else ""


# -- what one system alone does ------------------------------------------------------


def _github_event_file(env: Mapping[str, str], github_sha: str | None) -> Range | None:
    """GitHub's pull request and push events give their range in the event file (GITHUB_EVENT_PATH)."""
    from ci_risk_hook.ci import github_event

    event_name = _text(env, "GITHUB_EVENT_NAME")
    event = github_event.read(_text(env, "GITHUB_EVENT_PATH"))
    if event_name in ("pull_request", "pull_request_target"):
        base, head = github_event.pull_request_shas(event)
        source = f"pull request: merge base of base {_short(base)} and head {_short(head)} "
        return Range(head, base, COMMIT, source + "(pull_request.base.sha/head.sha in GITHUB_EVENT_PATH)")
    if event_name != "push":
        return None
    before, after = github_event.push_shas(event)
    tip = after or github_sha
    if tip is None:
        raise CiEnvError("GitHub push: neither `after` in GITHUB_EVENT_PATH nor GITHUB_SHA names a commit")
    if before is None:
        source = f"push of a new branch (`before` is all zeros): {_short(tip)}'s commits on no other remote branch"
        return Range(tip, None, REMOTES, source)
    return Range(tip, before, COMMIT, f"push: before..after from GITHUB_EVENT_PATH ({_short(before)}..{_short(tip)})")


GITLAB_BEFORE = "CI_COMMIT_BEFORE_SHA"
GITLAB_MERGE_REQUEST = Request(
    "CI_MERGE_REQUEST_IID", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "merge_request_event", "merge request"
)


def _gitlab_merge_request_base(env: Mapping[str, str], tip: str | None) -> Range | None:
    """A merge request pipeline names the commit its diff starts from (else its target branch says)."""
    if tip is None or not _requested(env, GITLAB_MERGE_REQUEST):
        return None
    diff_base = _sha(env, "CI_MERGE_REQUEST_DIFF_BASE_SHA")
    if diff_base is None:
        return None
    source = f"merge request: CI_MERGE_REQUEST_DIFF_BASE_SHA..CI_COMMIT_SHA ({_short(diff_base)}..{_short(tip)})"
    return Range(tip, diff_base, COMMIT, source)


def _gitlab_new_branch(env: Mapping[str, str], tip: str | None) -> Range | None:
    """A push pipeline whose before-sha is all zeros (or unset) pushed a new branch."""
    if (
        tip is None
        or _requested(env, GITLAB_MERGE_REQUEST)
        or _text(env, "CI_PIPELINE_SOURCE") not in ("", "push")
        or _sha(env, GITLAB_BEFORE) is not None
    ):
        return None
    source = f"push of a new branch ({GITLAB_BEFORE} all zeros): {_short(tip)}'s commits on no other remote branch"
    return Range(tip, None, REMOTES, source)


# -- the systems ---------------------------------------------------------------------


def _is_true(value: str) -> bool:
    return value == "true"


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes")


def _is_set(value: str) -> bool:
    return bool(value.strip())


# In the order they are tried: Jenkins last, as JENKINS_URL may leak into other environments.
SYSTEMS: tuple[System, ...] = (
    System(
        "github",
        "GitHub Actions",
        running=("GITHUB_ACTIONS", _is_true),
        tip=("GITHUB_SHA",),
        branch=("GITHUB_HEAD_REF", "GITHUB_REF_NAME"),  # GITHUB_HEAD_REF: set on pull requests only
        run_id=("GITHUB_RUN_ID",),
        job=("GITHUB_JOB",),
        repository=("GITHUB_REPOSITORY",),
        attempt="GITHUB_RUN_ATTEMPT",
        event="GITHUB_EVENT_NAME",
        rules=(_github_event_file,),
        no_range="{event} event gives no range",
    ),
    System(
        "gitlab",
        "GitLab CI",
        running=("GITLAB_CI", _is_true),
        tip=("CI_COMMIT_SHA",),
        branch=("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "CI_COMMIT_REF_NAME"),
        run_id=("CI_PIPELINE_ID",),
        job=("CI_JOB_ID",),  # a retried GitLab job gets a new CI_JOB_ID: the attempt stays 1
        repository=("CI_PROJECT_PATH",),
        event="CI_PIPELINE_SOURCE",
        request=GITLAB_MERGE_REQUEST,
        previous=(GITLAB_BEFORE,),
        rules=(_gitlab_merge_request_base, _gitlab_new_branch),
        no_range="{event} pipeline gives no range",
    ),
    System(
        "buildkite",
        "Buildkite",
        running=("BUILDKITE", _is_true),
        tip=("BUILDKITE_COMMIT",),
        tip_may_be_head=True,
        branch=("BUILDKITE_BRANCH",),
        run_id=("BUILDKITE_BUILD_ID",),
        job=("BUILDKITE_JOB_ID",),
        repository=("BUILDKITE_ORGANIZATION_SLUG", "BUILDKITE_PIPELINE_SLUG"),
        attempt="BUILDKITE_RETRY_COUNT",
        counts_retries=True,
        request=Request("BUILDKITE_PULL_REQUEST", "BUILDKITE_PULL_REQUEST_BASE_BRANCH", "pull_request"),
    ),
    System(
        "azure",
        "Azure Pipelines",
        running=("TF_BUILD", _truthy),
        tip=("SYSTEM_PULLREQUEST_SOURCECOMMITID", "BUILD_SOURCEVERSION"),
        branch=(Ref("SYSTEM_PULLREQUEST_SOURCEBRANCH"), Ref("BUILD_SOURCEBRANCH")),
        run_id=("BUILD_BUILDID",),
        job=("SYSTEM_JOBID", "SYSTEM_JOBNAME"),
        repository=("BUILD_REPOSITORY_NAME",),
        attempt="SYSTEM_JOBATTEMPT",
        event="BUILD_REASON",
        request=Request("", Ref("SYSTEM_PULLREQUEST_TARGETBRANCH"), "pull_request"),
    ),
    System(
        "circleci",
        "CircleCI",
        running=("CIRCLECI", _is_true),
        tip=("CIRCLE_SHA1",),
        branch=("CIRCLE_BRANCH",),
        run_id=("CIRCLE_WORKFLOW_ID", "CIRCLE_BUILD_NUM"),
        job=("CIRCLE_BUILD_NUM", "CIRCLE_JOB"),  # a rerun CircleCI job gets a new CIRCLE_BUILD_NUM
        repository=("CIRCLE_PROJECT_USERNAME", "CIRCLE_PROJECT_REPONAME"),
        request=Request("CIRCLE_PULL_REQUEST", "", "pull_request"),
    ),
    System(
        "jenkins",
        "Jenkins",
        running=("JENKINS_URL", _is_set),
        tip=("GIT_COMMIT",),
        branch=("CHANGE_BRANCH", "BRANCH_NAME", Ref("GIT_BRANCH")),
        run_id=("BUILD_ID", "BUILD_NUMBER"),  # a rebuilt Jenkins job is a new build with its own BUILD_ID
        job=("JOB_NAME",),
        repository=(),  # Jenkins names no repository slug (GIT_URL may hold credentials: never recorded)
        request=Request("CHANGE_ID", "CHANGE_TARGET", "change_request", "change request"),
        previous=("GIT_PREVIOUS_SUCCESSFUL_COMMIT", "GIT_PREVIOUS_COMMIT"),
        no_range="no earlier build of this job",
    ),
)
_RUNNING = [system.running[0] for system in SYSTEMS]
NOT_DETECTED = f"--ci: no CI system detected (none of {', '.join(_RUNNING[:-1])} or {_RUNNING[-1]} is set)"


def detect(env: Mapping[str, str]) -> CiContext | None:
    """The CI system running this process and what its variables say; None outside any known CI."""
    for system in SYSTEMS:
        variable, running = system.running
        if running(env.get(variable, "")):
            return _read(system, env)
    return None


def describe(context: CiContext) -> str:
    """The one line a CI log shows: which system, which range and why, which branch."""
    from ci_risk_hook.safetext import clean

    branch = f", branch {context.branch}" if context.branch else ""
    return clean(f"{context.name}: {context.source}{branch}")
