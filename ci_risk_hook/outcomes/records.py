"""One CI outcome, normalised, whatever it came from (record, run, CSV, GitHub, GitLab, Travis)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import NamedTuple

PASS, FAIL = "pass", "fail"

# Every spelling the supported CI systems use; None means "not an outcome"
# (cancelled, skipped, still running): such rows are counted, not recorded.
_STATUS = {
    "pass": PASS, "passed": PASS, "success": PASS, "successful": PASS, "succeeded": PASS, "ok": PASS, "green": PASS,
    "fail": FAIL, "failed": FAIL, "failure": FAIL, "errored": FAIL, "error": FAIL, "broken": FAIL, "red": FAIL,
    "timed_out": FAIL, "startup_failure": FAIL,
    "cancelled": None, "canceled": None, "skipped": None, "neutral": None, "created": None, "pending": None,
    "running": None, "manual": None, "scheduled": None, "action_required": None, "stale": None,
    "waiting_for_resource": None, "preparing": None, "in_progress": None, "queued": None, "requested": None,
    "waiting": None, "started": None,
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
    """Seconds since the epoch from ISO 8601 (`Z` or offset), `YYYY-MM-DD HH:MM:SS[ UTC]`, or digits."""
    value = text.strip()
    if not value:
        raise ValueError("empty time")
    if value.isdigit():
        return int(value)
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
    return int(moment.timestamp())
