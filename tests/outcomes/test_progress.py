"""Progress of long commands: a line every few seconds in a log, a live counter on a terminal."""

from __future__ import annotations

import io

from ci_risk_hook.progress import EVERY_S, Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_one_plain_line_every_few_seconds_and_none_for_a_quick_run() -> None:
    clock, log = Clock(), io.StringIO()
    progress = Progress("computing features", "builds", stream=log, clock=clock)
    for done in range(1, 1001):
        clock.now += 0.01  # 100 steps a second
        progress(done, 1000)
    progress.finish()
    lines = log.getvalue().splitlines()
    assert len(lines) == int(10 / EVERY_S)  # ten seconds of work
    assert lines[0] == f"ci-risk: computing features: {int(EVERY_S * 100)} of 1,000 builds (50%, 100/s)"
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()
    quick = io.StringIO()
    short = Progress("reading outcomes", "rows", stream=quick, clock=Clock())
    short(10)
    short.finish()
    assert quick.getvalue() == ""


def test_on_a_terminal_a_live_counter_that_ends_on_its_own_line() -> None:
    clock, screen = Clock(), Terminal()
    progress = Progress("reading outcomes", "rows", stream=screen, clock=clock)
    for done in (5_000, 10_000):
        clock.now += 1
        progress(done)
    progress.finish()
    text = screen.getvalue()
    assert text.count("\r") == 2 and text.endswith("ci-risk: reading outcomes: 10,000 rows, 5,000/s\n")
