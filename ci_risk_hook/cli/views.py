"""What ci-risk shows: `report` (charts, one page), `monitor` (live accuracy), `dashboard` (a local page), `demo`."""

from __future__ import annotations

import os
import sys
import time

import click

from ci_risk_hook import errors, paths
from ci_risk_hook.cli.common import bar, open_reading, settings_warnings
from ci_risk_hook.cli.extras import require
from ci_risk_hook.cli.options import Share, db_option
from ci_risk_hook.outcomes import monitor as live  # its defaults are the options' defaults
from ci_risk_hook.safetext import clean


@click.command()
@click.option(
    "--out",
    default="ci-risk-report",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory for the PNG charts (and report.html).",
)
@click.option("--html", "html_page", is_flag=True, help="Also write one self-contained HTML page.")
@click.option("--retrain-every", type=click.IntRange(1), default=25, show_default=True)
@db_option
def report(out: str, html_page: bool, retrain_every: int, db: str | None) -> None:
    """Charts of what the model learnt and how it backtested here (PNG; --html for one page)."""
    require("train")
    from ci_risk_hook import config
    from ci_risk_hook.gate.evaluate import choose_model
    from ci_risk_hook.views import report as report_lib

    target = open_reading(db)
    try:
        settings = config.resolve({}, toplevel=target.info.toplevel, tolerant=True)
        settings_warnings(settings)
        choice = choose_model(settings, target.info)
    except BaseException:
        target.store.close()
        raise
    if choice is None or target.repo_id is None:
        target.store.close()
        raise click.ClickException(
            "no model to report on: `ci-risk train` first" if choice is None else "no recorded history to report on"
        )
    made = report_lib.build_for_repo(
        out,
        target.store,
        target.repo_id,
        target.info,
        choice,
        html_page=html_page,
        retrain_every=retrain_every,
        progress=bar("backtest"),
    )
    for name, path in made.charts.items():
        click.echo(f"ci-risk: {name}: {clean(path)}")
    if made.html:
        click.echo(f"ci-risk: report: {clean(made.html)}")


_MONITOR_WINDOWS = {"50": "last 50 builds", "200": "last 200 builds", "30d": "last 30 days"}


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--window",
    type=click.Choice(["all", *_MONITOR_WINDOWS]),
    default="all",
    show_default=True,
    help="Which window to show: the last 50 or 200 builds, the last 30 days, or all three.",
)
@click.option(
    "--target-recall",
    type=Share(),
    default=live.DEFAULT_TARGET_RECALL,
    show_default=True,
    help="Share of failures the gate should flag; lower on the latest builds is drift.",
)
@click.option(
    "--drift-builds",
    type=click.IntRange(1),
    default=live.DEFAULT_DRIFT_BUILDS,
    show_default=True,
    help="How many of the latest builds recall is judged on.",
)
@click.option(
    "--calibration-margin",
    type=Share(),
    default=live.DEFAULT_CALIBRATION_MARGIN,
    show_default=True,
    help="Largest average gap between predicted and observed failure rate that is not drift.",
)
@click.option(
    "--fail-on-drift",
    is_flag=True,
    help=f"Exit {errors.EXIT_DRIFT} when drift is found (for a scheduled job).",
)
@db_option
def monitor(
    fmt: str,
    window: str,
    target_recall: float,
    drift_builds: int,
    calibration_margin: float,
    fail_on_drift: bool,
    db: str | None,
) -> None:
    """Is ci-risk right now? Recorded predictions against the outcomes that followed, beside the previous-build rule."""
    import json

    from ci_risk_hook.outcomes import spool
    from ci_risk_hook.outcomes.monitor import empty_summary, live_summary
    from ci_risk_hook.outcomes.store import StoreError
    from ci_risk_hook.views.monitor import render_text

    target = open_reading(db)
    try:
        repo_id = target.repo_id
        # This clone's latest pushes: their predictions go in now. Only into a repository the store knows: a
        # reading command adds none (the next push, `record` or `import` does, and moves them then).
        if repo_id is not None:
            try:
                moved = spool.move(target.store, repo_id, target.root, target.info.common_dir)
                for note in moved.notes:
                    click.echo(clean(f"ci-risk: warning: {note}"), err=True)
            except StoreError as exc:
                click.echo(f"ci-risk: warning: this clone's latest predictions stay pending: {exc}", err=True)
        summary = (
            empty_summary(target_recall)
            if repo_id is None
            else live_summary(
                target.store,
                repo_id,
                target_recall=target_recall,
                drift_builds=drift_builds,
                calibration_margin=calibration_margin,
            )
        )
    finally:
        target.store.close()
    if window != "all":
        summary["windows"] = [w for w in summary["windows"] if w["name"] == _MONITOR_WINDOWS[window]]
    click.echo(json.dumps(summary, indent=2, allow_nan=False) if fmt == "json" else render_text(summary))
    if fail_on_drift and summary["drift"]:
        sys.exit(errors.EXIT_DRIFT)


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; the default keeps the page on this machine only.",
)
@db_option
def dashboard(port: int, host: str, db: str | None) -> None:
    """A local web page: this push's score and reasons, what-if, history, backtest metrics."""
    require("train")
    from ci_risk_hook.views import dashboard as dash

    try:
        state = dash.load_state(db)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        server = dash.make_server(state, host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    click.echo(clean(dash.started_message(server)))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@click.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same repository and scores.")
@click.option("--commits", type=click.IntRange(60, 2000), default=300, show_default=True)
def demo(directory: str | None, seed: int, commits: int) -> None:
    """Build a throw-away repository with a realistic history, train on it, and score two pushes."""
    require("train")
    import tempfile

    from ci_risk_hook.gate.output import render_text
    from ci_risk_hook.views import demo as demo_lib

    if directory is None:
        directory = tempfile.mkdtemp(prefix="ci-risk-demo-")
    elif os.path.exists(directory) and os.listdir(directory):
        raise click.ClickException(f"{directory} is not empty; give a new or empty directory")
    started = time.monotonic()
    from ci_risk_hook.model.training import TrainError

    try:
        result = demo_lib.build(
            directory, seed=seed, commits=commits, progress=lambda m: click.echo(f"ci-risk demo: {m}")
        )
    except TrainError as exc:  # a short simulated history can leave nothing to validate on
        raise click.ClickException(f"{exc}; try more --commits or another --seed") from None
    click.echo(
        f"ci-risk demo: {result.commits} commits, {result.builds} builds ({result.failures} failed); "
        f"trained {result.chosen} ({time.monotonic() - started:.0f} s)\n"
    )
    click.echo("A small, tested source change by a regular maintainer:")
    click.echo(render_text(result.low) + "\n")
    click.echo("A large CI-configuration change by a newcomer:")
    click.echo(render_text(result.high) + "\n")
    click.echo(try_next(directory, result.store))


def try_next(directory: str, store: str) -> str:
    """Commands that work as printed in the demo's directory: they find its store through the repository."""
    import shlex

    over = os.environ.get(paths.DB_ENV)
    db = f" --db {shlex.quote(store)}" if over else ""  # CI_RISK_DB would take them to another store
    commands = [
        ("ci-risk check --from main --to new-ci" + db, "score the newcomer's push by hand"),
        ("ci-risk history" + db, "the recorded outcomes"),
        ("ci-risk backtest" + db, "would it have helped on this history?"),
        ("ci-risk model show", "what was trained, how it backtested"),
        ("ci-risk report --html" + db, "charts and one page, in ci-risk-report/"),
    ]
    width = max(len(c) for c, _ in commands) + 2
    lines = [f"Try next, in {clean(directory)}:"] + [f"  {c:<{width}}# {why}" for c, why in commands]
    if over:
        from ci_risk_hook.outcomes.store import redact

        lines.append(f"  (--db because CI_RISK_DB={redact(over)} is set; the demo kept its outcomes in its own store)")
    return "\n".join(lines) + "\n"
