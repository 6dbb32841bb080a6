"""GitHub's event file (GITHUB_EVENT_PATH): the few fields a gate needs, read defensively.

The file is JSON written by the runner, but a job can overwrite it and a
workflow can point the variable elsewhere: anything that is not a readable,
reasonably sized JSON object with the expected types is a one-line
`CiEnvError`.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from ci_risk_hook.ci.detect import SHA, ZERO, CiEnvError

MAX_EVENT_BYTES = 64 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB; a larger file is not an event


def read(path: str) -> dict[str, Any]:
    """The event as a dict; {} when no path is given (a run without an event file)."""
    if not path:
        return {}
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the job, a device never end
            raise CiEnvError("GITHUB_EVENT_PATH: not a regular file")
        size = info.st_size
        if size > MAX_EVENT_BYTES:
            raise CiEnvError(f"GITHUB_EVENT_PATH: {size:,} bytes, larger than any GitHub event ({MAX_EVENT_BYTES:,})")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_EVENT_BYTES + 1)
    except OSError as exc:
        raise CiEnvError(f"GITHUB_EVENT_PATH: cannot read the event file: {exc.strerror or exc}") from None
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        message = str(exc).split("\n", 1)[0][:120]
        raise CiEnvError(f"GITHUB_EVENT_PATH: not JSON ({message})") from None
    if not isinstance(event, dict):
        raise CiEnvError(f"GITHUB_EVENT_PATH: expected a JSON object, got {type(event).__name__}")
    return event


def _field(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _sha(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not SHA.match(value):
        shown = type(value).__name__ if not isinstance(value, str) else repr(value[:60])
        raise CiEnvError(f"GITHUB_EVENT_PATH: {where} is not a commit id: {_clean(shown)}")
    return None if ZERO.match(value) else value.lower()


def _clean(text: str) -> str:
    from ci_risk_hook.safetext import clean

    return clean(text)


def push_shas(event: dict[str, Any]) -> tuple[str | None, str | None]:
    """(before, after) of a push; before is None for a new branch (all zeros) or when absent."""
    return _sha(event.get("before"), "before"), _sha(event.get("after"), "after")


def pull_request_shas(event: dict[str, Any]) -> tuple[str, str]:
    """(base.sha, head.sha) of a pull request event; both must be there."""
    base = _sha(_field(event, "pull_request", "base", "sha"), "pull_request.base.sha")
    head = _sha(_field(event, "pull_request", "head", "sha"), "pull_request.head.sha")
    if base is None or head is None:
        raise CiEnvError("GITHUB_EVENT_PATH: a pull request event without pull_request.base.sha and .head.sha")
    return base, head
