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


def run_gate(
    range_source: Callable[[Any, Any], Any], options: dict[str, Any], in_hook: bool = False, ci: Any = None
) -> int:
    """Shared by `check` and `hook`: resolve settings and ranges, score, print, exit.

    In the hook a bad setting from the environment or a file is a warning and
    the push goes on (a typo committed to .ci-risk.ini must not stop every
    push); `check`, run by hand, treats it as a usage error. `ci` (a
    `ci.gate.CiCheck`) renders for the CI system and writes its side outputs.
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
        if _observing(options):  # git failing before the repository's files are read: observe stays silent
            return EXIT_OK
        return fail(exc, strict_hint, output_format=output_format)
    if settings.mode == "observe":  # before --strict's refusal of a bad setting: observing never stops a push
        return _observe(range_source, settings, info, in_hook, ci)
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

        push_ranges = range_source(info, settings)
        if ci is not None:
            info = git.repo_info()  # a CI range may have deepened the clone: its shallow boundary moved
        report = gate.evaluate(
            push_ranges, settings, info, progress, refresh=ci is None, place=_place(in_hook, ci), ci_run=_run(ci)
        )
        gate.remember_scores(info, report)
        # Rendered inside the guard too: a bug in the output must not stop a push either.
        extra: list[str] = []
        if ci is not None:
            text = ci.render(report, output_format)
            extra = ci.publish(report, text, output_format)
        elif output_format == "json":
            text = output.render_json(report)
        elif output_format == "text":
            text = output.render_text(report, colour=output.use_colour(sys.stdout))
        else:
            from ci_risk_hook.ci import outputs

            text = outputs.render(report, output_format, ", ".join(r.describe() for r in push_ranges))
    except ranges.RangeError as exc:  # a bad revision (exit 2), or nothing to check yet (exit 0)
        _err(f"ci-risk: {clean(str(exc))}")
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - a bug in ci-risk must not stop a push
        if ci is not None:
            for line in ci.failed(errors.handle(exc).message, settings.strict, output_format):
                _out(line)
        return fail(exc, settings.strict, output_format=output_format)
    finally:
        progress.finish()
    if ci is not None and ci.output_file:
        text = output.render_text(report)  # the file has the format asked for; the log shows the text
    _out(text)
    for line in extra:
        _out(line)
    return report.exit_code


def _place(in_hook: bool, ci: Any) -> str:
    """Where this prediction is made, as recorded: the hook, a CI step (a CI system detected), or by hand."""
    if in_hook:
        return "hook"
    return "ci" if ci is not None and ci.context is not None else "manual"


def _run(ci: Any) -> str:
    context = None if ci is None else ci.context
    return "" if context is None else str(context.run_id)


def _observing(options: dict[str, Any]) -> bool:
    """Whether the option, environment or user config (all that is known outside a repository) says observe."""
    from ci_risk_hook import config

    try:
        return config.resolve(options, toplevel=None, tolerant=True).mode == "observe"
    except config.ConfigError:
        return False


def _observe(range_source: Callable[[Any, Any], Any], settings: Any, info: Any, in_hook: bool, ci: Any) -> int:
    """Observation mode: score and record, print nothing, exit 0 whatever happens (even --strict).

    The way a team starts: `ci-risk monitor` shows later how the predictions
    would have done, before anyone is warned or blocked by them.
    """
    import contextlib
    import io

    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            from ci_risk_hook.gate import evaluate as gate
            from ci_risk_hook.git import repo as git

            push_ranges = range_source(info, settings)
            if ci is not None:
                info = git.repo_info()
            report = gate.evaluate(
                push_ranges, settings, info, None, refresh=ci is None, place=_place(in_hook, ci), ci_run=_run(ci)
            )
            gate.remember_scores(info, report)
    except BaseException as exc:  # noqa: BLE001 - observing never stops a push or a job
        if isinstance(exc, KeyboardInterrupt):
            return errors.EXIT_INTERRUPTED
    finally:
        if ci is not None:
            ci._restore_env()  # what rendering does in the other modes: CI_RISK_REPO as it was
    return EXIT_OK


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


def check(options: dict[str, Any]) -> int:
    """`ci-risk check` from either parser: the manual range, or with --ci the CI system's."""
    from_rev, to_rev, branch = options.pop("from_rev"), options.pop("to_rev"), options.pop("branch")
    output_file = options.pop("output_file", None)
    if options.pop("ci", False):
        from ci_risk_hook.ci.gate import CiCheck

        ci = CiCheck(from_rev, to_rev, branch, output_file)
        return run_gate(ci.source, options, ci=ci)
    if output_file:
        from ci_risk_hook.ci.gate import CiCheck

        ci = CiCheck(from_rev, to_rev, branch, output_file, env={})  # no CI system: --output alone
        return run_gate(check_source(from_rev, to_rev, branch), options, ci=ci)
    return run_gate(check_source(from_rev, to_rev, branch), options)


def check_source(from_rev: str | None, to_rev: str | None, branch: str | None) -> Callable[[Any, Any], Any]:
    from ci_risk_hook.git import ranges
    from ci_risk_hook.git import repo as git

    def source(info: Any, settings: Any = None) -> Any:
        return [ranges.explicit(from_rev, to_rev)._replace(branch=branch or git.current_branch(info))]

    return source


def hook_source(raw: bool, remote: str | None) -> Callable[[Any, Any], Any]:
    from ci_risk_hook.git import ranges
    from ci_risk_hook.git import repo as git

    def source(info: Any, settings: Any = None) -> Any:
        if raw:
            lines = [] if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read().splitlines()
            return ranges.from_hook_stdin(lines, remote or "origin")
        found = ranges.from_pre_commit_env(os.environ)
        if found is not None:
            return found
        return [ranges.explicit(None, None)._replace(branch=git.current_branch(info))]

    return source
