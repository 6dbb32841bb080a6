"""The options of `check` and `hook`, declared once.

Two parsers read them: the console entry point's own (`gate.entry`, which
keeps click off the push) and click's (`cli.options`, for help and error
messages). Both tables are generated from these declarations, and values are
checked with the same parsers `config.SETTINGS` uses for the environment and
the config files. Standard library only: read on every push.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from ci_risk_hook import config

FORMATS = ("text", "json", "markdown", "github", "gitlab")


class GateOption(NamedTuple):
    flag: str  # "--warn-at"; a "switch" also has its "--no-" form
    name: str  # the parameter it fills
    kind: str  # choice | probability | warn_at | positive | text | switch (--x/--no-x) | flag (present or not)
    help: str
    choices: tuple[str, ...] = ()
    default: Any = None


COMMON = (
    GateOption(
        "--mode",
        "mode",
        "choice",
        "warn (default): report only; block: exit 1 at --block-at; off: do nothing; observe: record silently.",
        choices=config.MODES,
    ),
    GateOption(
        "--warn-at", "warn_at", "warn_at", "Warn from this probability, or recall90: the model's 90 %-recall cut."
    ),
    GateOption("--block-at", "block_at", "probability", "Block (in block mode) from this probability."),
    GateOption("--strict", "strict", "switch", "Fail closed (exit 3) on ci-risk's own errors."),
    GateOption("--model", "model", "text", "Model artifact (.json) to score with."),
    GateOption("--max-commits", "max_commits", "positive", "Most commits of one push to read."),
    GateOption("--db", "db", "text", "History store (file or postgresql:// URL) for build-history features."),
    GateOption("--model-source", "model_source", "text", "Where the team's published model is pulled from."),
    GateOption(
        "--format",
        "output_format",
        "choice",
        "Output format: text, json, markdown (a job summary), github (an annotation), gitlab (a log section).",
        choices=FORMATS,
        default="text",
    ),
)
CHECK = (
    GateOption("--from", "from_rev", "text", "Base revision (default: @{upstream}, else what no remote has)."),
    GateOption("--to", "to_rev", "text", "Tip revision (default: HEAD)."),
    GateOption("--branch", "branch", "text", "Branch CI will build (default: the checked-out branch)."),
    GateOption(
        "--ci",
        "ci",
        "flag",
        "Run as a CI step: the range, branch and ids from the CI system's variables; shallow clones deepened.",
        default=False,
    ),
    GateOption("--output", "output_file", "text", "Also write the report, in --format, to this file."),
)
HOOK = (GateOption("--raw", "raw", "flag", "Read git's pre-push stdin (set by `ci-risk install`).", default=False),)

# The setting whose parser checks each kind of value (the same checks as for CI_RISK_* and the config files).
_SETTING_OF_KIND = {"probability": "block_at", "warn_at": "warn_at", "positive": "max_commits"}


def _exactly(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:  # as click's Choice: case and spaces matter on the command line
            raise ValueError(text)
        return text

    return parse


def _setting_parser(key: str) -> Callable[[str], Any]:
    parse = next(s.parse for s in config.SETTINGS if s.key == key)

    def checked(text: str) -> Any:
        try:
            return parse(text)
        except config.ConfigError:
            raise ValueError(text) from None

    return checked


def value_parser(option: GateOption) -> Callable[[str], Any] | None:
    """What turns the option's text into its value (ValueError if it cannot); None for a switch or flag."""
    if option.kind in ("switch", "flag"):
        return None
    if option.kind == "choice":
        return _exactly(option.choices)
    if option.kind in _SETTING_OF_KIND:
        return _setting_parser(_SETTING_OF_KIND[option.kind])
    return str


def fast_table(options: tuple[GateOption, ...]) -> dict[str, tuple[str, Callable[[str], Any] | None, Any]]:
    """The entry point's table: each spelling of an option -> (parameter, parser or None, value if a switch/flag)."""
    table: dict[str, tuple[str, Callable[[str], Any] | None, Any]] = {}
    for option in options:
        if option.kind == "switch":
            table[option.flag] = (option.name, None, True)
            table["--no-" + option.flag[2:]] = (option.name, None, False)
        elif option.kind == "flag":
            table[option.flag] = (option.name, None, True)
        else:
            table[option.flag] = (option.name, value_parser(option), None)
    return table


def defaults(options: tuple[GateOption, ...]) -> dict[str, Any]:
    return {option.name: option.default for option in options}
