"""The console entry point: `check` and `hook` parsed by hand, everything else by click.

A push runs `ci-risk hook ...` with a handful of options; parsing them here
keeps click's import (~15 ms) off the push. The options mirror the click
definitions in cli.py (a test holds the two to the same names); anything
this parser does not recognise, including --help and every malformed value,
is handed to click, which prints the proper message and exit code.
"""
from __future__ import annotations

import sys
from typing import Any, Callable

_MODES = ("warn", "block", "off")
_FORMATS = ("text", "json")


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(text)
    return value


def _warn_at(text: str) -> float | str:
    from .config import NAMED_WARN_AT

    return text if text in NAMED_WARN_AT else _probability(text)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(text)
        return text

    return parse


# option -> (parameter name, parser); a None parser marks a flag and its value.
GATE_OPTIONS: dict[str, tuple[str, Callable[[str], Any] | None, Any]] = {
    "--mode": ("mode", _choice(_MODES), None),
    "--warn-at": ("warn_at", _warn_at, None),
    "--block-at": ("block_at", _probability, None),
    "--strict": ("strict", None, True),
    "--no-strict": ("strict", None, False),
    "--model": ("model", str, None),
    "--max-commits": ("max_commits", _positive, None),
    "--db": ("db", str, None),
    "--format": ("output_format", _choice(_FORMATS), None),
}
CHECK_OPTIONS = {"--from": ("from_rev", str, None), "--to": ("to_rev", str, None), "--branch": ("branch", str, None)}
HOOK_OPTIONS: dict[str, tuple[str, Callable[[str], Any] | None, Any]] = {"--raw": ("raw", None, True)}


def parse(argv: list[str]) -> tuple[str, dict[str, Any], list[str]] | None:
    """(command, options, positionals) for a well-formed check/hook call, else None."""
    if not argv or argv[0] not in ("check", "hook"):
        return None
    command = argv[0]
    table = {**GATE_OPTIONS, **(CHECK_OPTIONS if command == "check" else HOOK_OPTIONS)}
    options: dict[str, Any] = {name: None for name, _, _ in table.values()}
    options["output_format"] = "text"
    if command == "hook":
        options["raw"] = False
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
                options[name] = flag_value
            else:
                if eq:
                    text = inline
                elif i + 1 < len(argv):
                    i += 1
                    text = argv[i]
                else:
                    return None
                try:
                    options[name] = parser(text)
                except ValueError:
                    return None
        elif arg.startswith("-") and arg != "-":
            return None
        else:
            positionals.append(arg)
        i += 1
    if command == "check" and positionals or len(positionals) > 2:
        return None
    return command, options, positionals


def _never_fail_on_encoding() -> None:
    """Names in no particular encoding (git's hook stdin, a file name shown) never stop a run.

    Bytes read that are not valid in the locale's encoding are kept as
    surrogates (`git.short_branch` turns them into name keys); text the
    terminal cannot show is written escaped.
    """
    for stream, errors in ((sys.stdin, "surrogateescape"), (sys.stdout, "backslashreplace"),
                           (sys.stderr, "backslashreplace")):
        try:
            stream.reconfigure(errors=errors)  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):  # no stream, or not a text file: nothing to protect
            pass


def main(argv: list[str] | None = None) -> int:
    _never_fail_on_encoding()
    args = sys.argv[1:] if argv is None else list(argv)
    parsed = parse(args)
    if parsed is None:
        from .cli import main as click_main

        return click_main(args)
    from .hookrun import check_source, hook_source, run_gate

    command, options, positionals = parsed
    if command == "check":
        source = check_source(options.pop("from_rev"), options.pop("to_rev"), options.pop("branch"))
    else:
        source = hook_source(options.pop("raw"), positionals[0] if positionals else None)
    return run_gate(source, options)
