"""The console entry point: `check` and `hook` parsed by hand, everything else by click.

A push runs `ci-risk hook ...` with a handful of options; parsing them here
keeps click's import (~15 ms) off the push. The options and click's
definitions in cli/gate.py are both generated from `gate.options`; anything
this parser does not recognise, including --help and every malformed value,
is handed to click, which prints the proper message and exit code.
"""

from __future__ import annotations

import sys
from typing import Any

from ci_risk_hook.gate import options

GATE_OPTIONS = options.fast_table(options.COMMON)
CHECK_OPTIONS = options.fast_table(options.CHECK)
HOOK_OPTIONS = options.fast_table(options.HOOK)


def parse(argv: list[str]) -> tuple[str, dict[str, Any], list[str]] | None:
    """(command, options, positionals) for a well-formed check/hook call, else None."""
    if not argv or argv[0] not in ("check", "hook"):
        return None
    command = argv[0]
    own = options.CHECK if command == "check" else options.HOOK
    table = {**GATE_OPTIONS, **(CHECK_OPTIONS if command == "check" else HOOK_OPTIONS)}
    values: dict[str, Any] = {**options.defaults(options.COMMON), **options.defaults(own)}
    positionals: list[str] = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            key, eq, inline = arg.partition("=")
            if key not in table:
                return None
            name, parser, flag_value = table[key]
            if parser is None:
                if eq:
                    return None
                values[name] = flag_value
            else:
                if eq:
                    text = inline
                elif i + 1 < len(argv):
                    i += 1
                    text = argv[i]
                else:
                    return None
                try:
                    values[name] = parser(text)
                except ValueError:
                    return None
        elif arg.startswith("-") and arg != "-":
            return None
        else:
            positionals.append(arg)
        i += 1
    if command == "check" and positionals or len(positionals) > 2:
        return None
    return command, values, positionals


def _never_fail_on_encoding() -> None:
    """Names in no particular encoding (git's hook stdin, a file name shown) never stop a run.

    Bytes read that are not valid in the locale's encoding are kept as
    surrogates (`git.short_branch` turns them into name keys); text the
    terminal cannot show is written escaped.
    """
    for stream, errors in (
        (sys.stdin, "surrogateescape"),
        (sys.stdout, "backslashreplace"),
        (sys.stderr, "backslashreplace"),
    ):
        try:
            stream.reconfigure(errors=errors)  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):  # no stream, or not a text file: nothing to protect
            pass


def main(argv: list[str] | None = None) -> int:
    _never_fail_on_encoding()
    args = sys.argv[1:] if argv is None else list(argv)
    parsed = parse(args)
    if parsed is None:
        from ci_risk_hook.cli.main import main as click_main

        return click_main(args)
    from ci_risk_hook.gate.run import check, hook_source, run_gate

    command, options, positionals = parsed
    if command == "check":
        return check(options)
    source = hook_source(options.pop("raw"), positionals[0] if positionals else None)
    return run_gate(source, options, in_hook=True)
