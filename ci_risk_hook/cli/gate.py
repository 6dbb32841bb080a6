"""The push's commands: `check`, `hook` (click's parsing of them; a push parses them in `gate.entry`), the raw
git hook's `install` and `uninstall`, and the history index the hook reads.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ci_risk_hook.cli.options import declared_options
from ci_risk_hook.gate import options as gate_options
from ci_risk_hook.safetext import clean


@click.command()
@declared_options(gate_options.CHECK)
@declared_options(gate_options.COMMON)
def check(**options: Any) -> None:
    """Score the commits a push would publish (with --ci: the commits a CI job builds), with the top reasons."""
    from ci_risk_hook.gate.run import check as run_check

    sys.exit(run_check(options))


@click.command()
@declared_options(gate_options.HOOK)
@click.argument("remote", required=False)
@click.argument("url", required=False)
@declared_options(gate_options.COMMON)
def hook(raw: bool, remote: str | None, url: str | None, **options: Any) -> None:
    """Entry point of the pre-push hook (pre-commit or raw git)."""
    from ci_risk_hook.gate.run import hook_source, run_gate

    sys.exit(run_gate(hook_source(raw, remote), options, in_hook=True))


@click.command()
@click.option("--force", is_flag=True, help="Replace a pre-push hook ci-risk did not write (kept as a backup).")
def install(force: bool) -> None:
    """Install a raw git pre-push hook (for repositories without pre-commit)."""
    from ci_risk_hook.gate.install import install as do_install

    path = do_install(force=force)
    click.echo(f"ci-risk: pre-push hook installed at {clean(path)}")


@click.command()
def uninstall() -> None:
    """Remove the pre-push hook written by `ci-risk install` (and only that)."""
    from ci_risk_hook.gate.install import uninstall as do_uninstall

    path = do_uninstall()
    click.echo(f"ci-risk: removed {clean(path)}" if path else "ci-risk: no pre-push hook to remove")


@click.command()
@click.option("--rebuild", is_flag=True, help="Delete the index and build it again.")
def index(rebuild: bool) -> None:
    """Build or update the history index that makes history features fast."""
    from ci_risk_hook.features.index_build import index_repository
    from ci_risk_hook.gate.run import Progress
    from ci_risk_hook.git import repo as git

    info = git.repo_info()

    def waiting(holder: str) -> None:
        click.echo(f"ci-risk: waiting for the history index build already running ({holder})", err=True)

    progress = Progress()
    try:
        built = index_repository(info, progress, rebuild=rebuild, on_wait=waiting)
    finally:
        progress.finish()
    click.echo(f"ci-risk: {clean(built.path)}: {built.total:,} commits ({built.added:,} new, {built.seconds:.1f} s)")
