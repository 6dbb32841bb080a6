"""ci-risk's exit codes, its error base class, and the one place an exception becomes an exit code and a line.

Exit codes: 0 pass or warn, 1 blocked (or a command refused), 2 usage error,
3 ci-risk's own error (the hook fails open instead unless --strict),
4 `ci-risk monitor --fail-on-drift` found drift, 130 interrupted. Every
ci-risk exception subclasses `CiRiskError` and says which code it means;
`handle` maps any exception to (code, one line), as pre-commit's
error_handler does: a known error gives its own code and message, Ctrl-C
gives 130, anything else is a bug: exit 3, with the traceback written to
the error log.

Imported on every push: standard library only.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

EXIT_OK = 0
EXIT_BLOCKED = 1  # the gate blocked the push, or a command refused (bad store, missing commit, ...)
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_DRIFT = 4  # `monitor --fail-on-drift`: live recall or calibration drifted (for a scheduled job to notice)
EXIT_INTERRUPTED = 130


class CiRiskError(Exception):
    """An error ci-risk expects and explains in one line; `exit_code` is what a command exits with."""

    exit_code = EXIT_BLOCKED


class Handled(NamedTuple):
    exit_code: int
    message: str  # one line, escaped
    log: str | None = None  # a bug in ci-risk: where its traceback was written

    @property
    def line(self) -> str:
        """The message, and where the details are when there are any."""
        return f"{self.message}; details in {self.log}" if self.log else self.message


def handle(exc: BaseException) -> Handled:
    """The exit code and one-line message for any exception (unexpected ones are logged)."""
    from ci_risk_hook.safetext import clean, one_line

    if isinstance(exc, CiRiskError):
        return Handled(exc.exit_code, one_line(exc))
    if isinstance(exc, KeyboardInterrupt):
        return Handled(EXIT_INTERRUPTED, "interrupted")
    if isinstance(exc, OSError):  # the machine's trouble (disk, permissions), not ci-risk's bug
        return Handled(EXIT_INTERNAL, one_line(exc))
    log = log_internal_error(exc)
    return Handled(
        EXIT_INTERNAL, f"internal error ({type(exc).__name__}: {one_line(exc)})", clean(log) if log else None
    )


def log_internal_error(exc: BaseException) -> str | None:
    """Append the traceback to the user's error log; its path, or None if it cannot be written."""
    import traceback  # only on this rare path: importing it costs ~5 ms on every push

    from ci_risk_hook import __version__, paths

    try:
        path = paths.error_log()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} ci-risk {__version__}\n")
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return path
    except OSError:
        return None
