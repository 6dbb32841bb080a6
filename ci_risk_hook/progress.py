"""Progress of a long command on stderr: a live counter on a terminal, a line every few seconds elsewhere.

Off a terminal (a CI log, a file) a live counter would be one endless line of
carriage returns, and silence looks like a hang: there, one plain line every
EVERY_S seconds, nothing at all for a command that finishes sooner.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

EVERY_S = 5.0  # seconds between progress lines off a terminal
_REDRAW_S = 0.1  # seconds between redraws of the live counter


class Progress:
    """Call with (done) or (done, total); `finish()` ends the live line."""

    def __init__(
        self,
        label: str,
        unit: str,
        stream: TextIO | None = None,
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _isatty(self.stream)
        self.every_s = (_REDRAW_S if self.tty else EVERY_S) if every_s is None else every_s
        self.clock = clock
        self.started = clock()
        self.last = self.started
        self.live = False

    def __call__(self, done: int, total: int | None = None) -> None:
        now = self.clock()
        if now - self.last < self.every_s and not (self.tty and total is not None and done >= total):
            return
        self.last = now
        text = self.text(done, total, now - self.started)
        if self.tty:
            self.stream.write(f"\r\x1b[2K{text}")
            self.live = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def text(self, done: int, total: int | None, seconds: float) -> str:
        rate = f", {done / seconds:,.0f}/s" if seconds > 0 else ""
        if total:
            return f"ci-risk: {self.label}: {done:,} of {total:,} {self.unit} ({done / total:.0%}{rate})"
        return f"ci-risk: {self.label}: {done:,} {self.unit}{rate}"

    def finish(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
            self.live = False


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream: treat as a log
        return False
