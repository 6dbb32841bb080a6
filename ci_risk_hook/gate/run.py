"""Running the gate for `check` and `hook`, without click.

This is the path of every push: the console script parses these two
commands' options itself (`fastpath`) and lands here, so a push never pays
for importing click (~15 ms of a 100 ms budget). Anything unusual (help, a
bad option) goes to the click CLI, which owns the messages.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable

from ci_risk_hook import errors
from ci_risk_hook.errors import EXIT_INTERNAL, EXIT_OK
from ci_risk_hook.safetext import clean


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str, end: str = "\n") -> None:
    sys.stderr.write(text + end)
    sys.stderr.flush()


class Progress:
    """Index-building progress on stderr: a live counter on a terminal, two lines otherwise."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int) -> None:
        if self.started is None:
            self.started = time.monotonic()
            _err("ci-risk: indexing this repository's history (once; later pushes add only new commits)")
        if self.tty:
            _err(f"\rci-risk: indexed {done:,} commits", end="")

    def finish(self) -> None:
        if self.started is not None:
            prefix = "\r" if self.tty else ""
            _err(f"{prefix}ci-risk: history index ready ({time.monotonic() - self.started:.1f} s)")


def run_gate(range_source: Callable[[Any], Any], options: dict[str, Any], in_hook: bool = False) -> int:
    """Shared by `check` and `hook`: resolve settings and ranges, score, print, exit.

    In the hook a bad setting from the environment or a file is a warning and
    the push goes on (a typo committed to .ci-risk.ini must not stop every
    push); `check`, run by hand, treats it as a usage error.
    """
    from ci_risk_hook import config
    from ci_risk_hook.git import ranges
    from ci_risk_hook.git import repo as git

    output_format = options.pop("output_format")
    strict_hint = options.get("strict")
    if strict_hint is None:
        strict_hint = os.environ.get("CI_RISK_STRICT", "").lower() in ("1", "true", "yes", "on")
    try:
        info = git.repo_info()
        settings = config.resolve(options, toplevel=info.toplevel, tolerant=in_hook)
    except config.ConfigError as exc:
        _err(f"ci-risk: error: {clean(str(exc))}")
        return exc.exit_code
    except git.GitError as exc:
        return fail(exc, strict_hint, output_format=output_format)
    if settings.strict and settings.errors:
        for line in settings.refused:
            _err(f"ci-risk: warning: {clean(line)}")
        for line in settings.errors:
            _err(f"ci-risk: error: {clean(line)}")
        return _json_error(EXIT_INTERNAL, settings.errors[0], output_format)
    for line in settings.warnings:
        _err(f"ci-risk: warning: {clean(line)}")
    if settings.mode == "off":
        if output_format == "json":
            _out('{"decision": "off", "exit_code": 0}')
        return EXIT_OK
    progress = Progress()
    try:
        from ci_risk_hook.gate import evaluate as gate
        from ci_risk_hook.gate import output

        push_ranges = range_source(info)
        report = gate.evaluate(push_ranges, settings, info, progress)
        gate.remember_scores(info, report)
        # Rendered inside the guard too: a bug in the output must not stop a push either.
        if output_format == "json":
            text = output.render_json(report)
        else:
            text = output.render_text(report, colour=output.use_colour(sys.stdout))
    except ranges.RangeError as exc:  # a bad revision (exit 2), or nothing to check yet (exit 0)
        _err(f"ci-risk: {clean(str(exc))}")
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - a bug in ci-risk must not stop a push
        return fail(exc, settings.strict, output_format=output_format)
    finally:
        progress.finish()
    _out(text)
    return report.exit_code


def fail(exc: BaseException, strict: bool, output_format: str = "text") -> int:
    """ci-risk could not check the push: exit 3 with --strict, else a warning and the push goes on."""
    handled = errors.handle(exc)
    if strict:
        _err(f"ci-risk: error: {handled.line}")
        return _json_error(EXIT_INTERNAL, handled.message, output_format)
    _err(f"ci-risk: warning: {handled.line}; push not checked (--strict fails instead)")
    return _json_error(EXIT_OK, handled.message, output_format)


def _json_error(code: int, message: str, output_format: str) -> int:
    """With --format json, stdout stays one JSON document even when nothing was scored."""
    if output_format == "json":
        import json

        _out(json.dumps({"decision": "error", "exit_code": code, "error": message}))
    return code


def check_source(from_rev: str | None, to_rev: str | None, branch: str | None) -> Callable[[Any], Any]:
    from ci_risk_hook.git import ranges
    from ci_risk_hook.git import repo as git

    def source(info: Any) -> Any:
        return [ranges.explicit(from_rev, to_rev)._replace(branch=branch or git.current_branch(info))]

    return source


def hook_source(raw: bool, remote: str | None) -> Callable[[Any], Any]:
    from ci_risk_hook.git import ranges
    from ci_risk_hook.git import repo as git

    def source(info: Any) -> Any:
        if raw:
            lines = [] if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read().splitlines()
            return ranges.from_hook_stdin(lines, remote or "origin")
        found = ranges.from_pre_commit_env(os.environ)
        if found is not None:
            return found
        return [ranges.explicit(None, None)._replace(branch=git.current_branch(info))]

    return source
