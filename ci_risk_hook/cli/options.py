"""Options several commands share, written once: the gate's (from `gate.options`), the store's, CI's, training's.

Also the parameter types they need (a share that refuses NaN, a warn threshold that may be a name).
"""

from __future__ import annotations

import os
from typing import Any, Callable, TypeVar

import click

from ci_risk_hook import paths
from ci_risk_hook.gate.options import GateOption

F = TypeVar("F", bound=Callable[..., Any])


class _WarnAt(click.ParamType):
    name = "P|recall90"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        """A name or a number; the number's range is checked with every other setting's (config.resolve)."""
        from ci_risk_hook.config import NAMED_WARN_AT

        text = str(value).strip().lower()
        if text in NAMED_WARN_AT:
            return text
        try:
            return float(text)
        except ValueError:
            self.fail(
                f"expected a probability between 0 and 1 or {' or '.join(NAMED_WARN_AT)}, got {value!r}", param, ctx
            )


class Share(click.FloatRange):
    """A share between 0 and 1: click's FloatRange lets NaN through (it compares false with both bounds)."""

    def __init__(self) -> None:
        super().__init__(0, 1)

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail(f"expected a number between 0 and 1, got {value!r}", param, ctx)
        return number


_CLICK_TYPES: dict[str, Any] = {
    "probability": click.FloatRange(0, 1),
    "warn_at": _WarnAt(),
    "positive": click.IntRange(1),
    "text": str,
}


def declared_options(declared: tuple[GateOption, ...]) -> Callable[[F], F]:
    """click options generated from the declarations in `gate.options` (which the push's own parser reads too)."""

    def decorate(func: F) -> F:
        for option in reversed(declared):
            if option.kind == "switch":
                decorator = click.option(
                    f"{option.flag}/--no-{option.flag[2:]}", option.name, default=None, help=option.help
                )
            elif option.kind == "flag":
                decorator = click.option(option.flag, option.name, is_flag=True, help=option.help)
            else:
                kind = click.Choice(option.choices) if option.kind == "choice" else _CLICK_TYPES[option.kind]
                decorator = click.option(option.flag, option.name, type=kind, default=option.default, help=option.help)
            func = decorator(func)
        return func

    return decorate


def _hash_authors(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """`--hash-authors` is the `hash_authors` setting for this process: every store it opens reads it."""
    if value:
        from ci_risk_hook.config import setting_env

        os.environ[setting_env("hash_authors")] = "1"


def db_option(func: F) -> F:
    """`--db` (the store; CI_RISK_DB) and `--hash-authors`, for every command that opens the store."""
    func = click.option(
        "--hash-authors",
        is_flag=True,
        expose_value=False,
        callback=_hash_authors,
        help="Store keyed hashes of authors (key from CI_RISK_HASH_AUTHORS_KEY) instead of e-mails.",
    )(func)
    return click.option(
        "--db",
        default=None,
        envvar=paths.DB_ENV,
        show_envvar=True,
        help="History store: a file path or postgresql:// URL (default: user data dir).",
    )(func)


def ci_option(func: F) -> F:
    """`--ci`: `record` and `run` take the job's facts from the CI system instead of options."""
    return click.option(
        "--ci",
        is_flag=True,
        help="This CI job's outcome: commit, branch, run id, attempt and job from the CI system's variables.",
    )(func)


def training_options(func: F) -> F:
    """What to learn from and the thresholds to choose: the same for `train`, `backtest` and `retrain`."""
    options = [
        click.option(
            "--labels",
            type=click.Choice(["ci", "szz", "both"]),
            default="ci",
            show_default=True,
            help="ci: recorded CI outcomes; szz: fix-inducing commits from backfill; both.",
        ),
        click.option("--all-repos", is_flag=True, help="Learn from every repository in the store."),
        click.option(
            "--target-recall",
            type=click.FloatRange(0.05, 1.0),
            default=0.9,
            show_default=True,
            help="Warn threshold: catch this share of failures (defer the rest).",
        ),
        click.option(
            "--target-precision",
            type=click.FloatRange(0.05, 1.0),
            default=0.8,
            show_default=True,
            help="Block threshold: block only when this sure.",
        ),
        db_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func
