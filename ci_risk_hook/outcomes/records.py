"""One CI outcome, normalised, whatever it came from (record, run, CSV, GitHub, GitLab, Travis)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Mapping, NamedTuple

from ci_risk_hook.errors import EXIT_USAGE, CiRiskError

PASS, FAIL = "pass", "fail"

# What an outcome can hold. Beyond these a value is a unit mistake (milliseconds for
# seconds) or garbage, and would not fit the store's columns (attempt is a PostgreSQL
# INTEGER; times and durations must fit 64-bit integers).
LATEST_TIME = 253402300799  # 9999-12-31T23:59:59Z, in seconds since the epoch
MAX_DURATION_S = 366 * 86400  # a year: Travis's longest (a sum of job times) in 140,000 real builds was 5.5 days
MAX_ATTEMPT = 2**31 - 1

# Where CI systems put the job id (and the rerun number, where they have one); the first one set wins.
CI_JOB_VARIABLES = (
    ("GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT"),
    ("CI_JOB_ID", None),
    ("TRAVIS_JOB_ID", None),
    ("BUILD_ID", None),
)


class ScoredFailure(NamedTuple):
    """A failed build and the score a gate gave its commit before the build started."""

    score: float
    started_at: int
    finished_at: int


class OutOfRange(CiRiskError, ValueError):
    """A well-formed number or time outside what an outcome can hold; str() says the range."""

    exit_code = EXIT_USAGE


# Every spelling the supported CI systems use; None means "not an outcome"
# (cancelled, skipped, still running): such rows are counted, not recorded.
_STATUS = {
    "pass": PASS,
    "passed": PASS,
    "success": PASS,
    "successful": PASS,
    "succeeded": PASS,
    "succeededwithissues": PASS,  # Azure Pipelines' Agent.JobStatus: passed, with warnings
    "ok": PASS,
    "green": PASS,
    "fail": FAIL,
    "failed": FAIL,
    "failure": FAIL,
    "errored": FAIL,
    "error": FAIL,
    "broken": FAIL,
    "red": FAIL,
    "timed_out": FAIL,
    "startup_failure": FAIL,
    "unstable": FAIL,  # Jenkins' currentResult when tests failed
    "cancelled": None,
    "aborted": None,  # Jenkins
    "canceled": None,
    "skipped": None,
    "neutral": None,
    "created": None,
    "pending": None,
    "running": None,
    "manual": None,
    "scheduled": None,
    "action_required": None,
    "stale": None,
    "waiting_for_resource": None,
    "preparing": None,
    "in_progress": None,
    "queued": None,
    "requested": None,
    "waiting": None,
    "started": None,
}


class BuildRecord(NamedTuple):
    commit: str  # a sha (full or abbreviated) or any revision git can resolve
    status: str  # PASS or FAIL
    source: str  # record | run | csv | github | gitlab | travis
    raw_status: str = ""
    branch: str | None = None
    started_at: int | None = None  # seconds since the epoch, UTC
    finished_at: int | None = None
    duration_s: float | None = None
    base: str | None = None
    job_id: str = ""
    attempt: int = 1


def normalize_status(text: str) -> str | None:
    """PASS, FAIL, or None for a non-outcome; ValueError for a spelling nobody uses."""
    key = text.strip().lower().replace(" ", "_").replace("-", "_")
    if key not in _STATUS:
        raise ValueError(f"unknown status {text!r} (expected e.g. passed, success, failed, errored, cancelled)")
    return _STATUS[key]


def parse_time(text: str) -> int:
    """Seconds since the epoch from ISO 8601 (`Z` or offset), `YYYY-MM-DD HH:MM:SS[ UTC]`, or digits.

    OutOfRange (a ValueError) for a time before 1970 or after the year 9999.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty time")
    if value.isascii() and value.isdigit():
        digits = value.lstrip("0") or "0"  # a huge number must not reach int(): Python refuses 4,300+ digits
        return _in_time_range(int(digits) if len(digits) <= 18 else LATEST_TIME + 1, text)
    if value.endswith(" UTC"):
        value = value[:-4]
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value.replace(" ", "T", 1) if "T" not in value else value)
    except ValueError:
        raise ValueError(f"not a time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        seconds = int(moment.timestamp())
    except (OverflowError, ValueError):  # year 1 or 9999 pushed past the calendar by its offset
        raise OutOfRange(_time_range_message(text)) from None
    return _in_time_range(seconds, text)


def _in_time_range(seconds: int, text: str) -> int:
    if not 0 <= seconds <= LATEST_TIME:
        raise OutOfRange(_time_range_message(text))
    return seconds


def _time_range_message(text: str) -> str:
    shown = text.strip() if len(text.strip()) <= 40 else text.strip()[:37] + "..."
    return f"out of range: {shown!r} (expected a time from 1970 to 9999, or seconds since 1970 - not milliseconds)"


def check_duration(seconds: float) -> float:
    """A build duration in seconds: finite, >= 0 and at most MAX_DURATION_S, else OutOfRange."""
    if not 0 <= seconds <= MAX_DURATION_S:  # also false for NaN
        shown = f"{seconds:g}" if isinstance(seconds, float) else _shown(str(seconds))[1:-1]
        raise OutOfRange(f"out of range: {shown} (expected seconds from 0 to {MAX_DURATION_S:,})")
    return float(seconds)


def parse_attempt(text: str) -> int:
    """A rerun number: a whole number from 1 to MAX_ATTEMPT; ValueError (OutOfRange when too large) otherwise."""
    digits = text.strip().lstrip("0")
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"not a whole number >= 1: {_shown(text)}")
    if len(digits) > 10 or int(digits) > MAX_ATTEMPT:
        raise OutOfRange(f"out of range: {_shown(text)} (expected a whole number from 1 to {MAX_ATTEMPT:,})")
    return int(digits)


def ci_job(env: Mapping[str, str], want_attempt: bool = True) -> tuple[str, int]:
    """Job id and attempt from the CI system's own variables, so reruns are told apart.

    A job id is any text (Jenkins' BUILD_ID need not be a number); an attempt
    that is not a whole number raises ValueError naming the variable, unless
    it is not wanted (given on the command line): then it is 1.
    """
    for job_variable, attempt_variable in CI_JOB_VARIABLES:
        job_id = env.get(job_variable, "").strip()
        if not job_id:
            continue
        attempt_text = env.get(attempt_variable or "", "").strip()
        if not attempt_text or not want_attempt:
            return job_id, 1
        try:
            return job_id, parse_attempt(attempt_text)
        except ValueError as error:
            raise ValueError(f"{attempt_variable}: {error} (or pass --attempt)") from None
    return "", 1


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")
