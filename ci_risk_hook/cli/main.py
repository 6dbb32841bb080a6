"""The `ci-risk` command line: a thin click layer over the library, one module per group of commands.

Exit codes are defined in `ci_risk_hook.errors`: 0 pass or warn, 1 blocked,
2 usage error, 3 ci-risk's own error in strict mode (without --strict such an
error prints one warning line and exits 0, so a bug in ci-risk never stops a push).

The command modules import only click and light modules at their top: each command imports the library it
calls when it runs (a push never comes here: `gate.entry` parses `check` and `hook` without click).
"""

from __future__ import annotations

from typing import Any

import click

from ci_risk_hook import __version__, errors
from ci_risk_hook.cli import gate, history, model, record, team, train, views
from ci_risk_hook.safetext import clean


def _escape(exc: click.ClickException) -> None:
    # Rewritten in place (click types `message` Final) so click still adds the usage line and hint.
    setattr(exc, "message", clean(exc.message))  # noqa: B010 - click declares it Final


def _refusal(exc: errors.CiRiskError) -> click.ClickException:
    """A library error as click shows it: `Error: <one line>`, exiting with the error's own code."""
    handled = errors.handle(exc)
    refusal = click.ClickException(handled.message)
    setattr(refusal, "exit_code", handled.exit_code)  # noqa: B010 - click types it ClassVar: this instance only
    return refusal


class _SafeGroup(click.Group):
    """Error messages quote file names, revisions, branches and option values: shown escaped, never raw.

    Library errors (`CiRiskError`) become click errors here, once for every command.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.ClickException as exc:
            _escape(exc)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            _escape(exc)
            raise
        except errors.CiRiskError as exc:
            raise _refusal(exc) from None


@click.group(cls=_SafeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ci-risk")
def cli() -> None:
    """Predict whether a push will fail CI, before the test suite runs."""


for command in (
    gate.check,
    gate.hook,
    gate.install,
    gate.uninstall,
    gate.index,
    record.record,
    record.run,
    history.import_,
    history.backfill,
    history.history,
    train.train,
    train.backtest,
    train.retrain,
    model.model,
    views.report,
    views.monitor,
    views.dashboard,
    views.demo,
):
    cli.add_command(command)
for command in (model.model_show, team.model_publish, team.model_pull, team.model_keygen):
    model.model.add_command(command)


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="ci-risk", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except Exception as exc:  # noqa: BLE001 - a bug in ci-risk: one line here, the traceback in the error log
        handled = errors.handle(exc)
        click.echo(f"ci-risk: error: {handled.line}", err=True)
        return handled.exit_code
    return 0
