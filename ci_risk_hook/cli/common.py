"""What commands of several groups do alike: open the store to record or to read, show progress, settings' warnings."""

from __future__ import annotations

import sys
from typing import Any

import click

from ci_risk_hook import errors
from ci_risk_hook.safetext import clean


def open_target(db: str | None) -> Any:
    """The store a recording command writes and this repository's row in it (created as needed).

    Without --db/CI_RISK_DB: the store this repository records into; --db repoints the hook's there.
    """
    from ci_risk_hook.outcomes.record import open_for_repo

    return open_for_repo(db, records=True)


def open_reading(db: str | None, *, this_repo: bool = True) -> Any:
    """The store a reading command reads (never created nor repointed) and this repository's id in it.

    A repository the store does not know yet reads as an empty history, said in one line when the command
    reads `this_repo`: reading adds nothing.
    """
    from ci_risk_hook.outcomes.record import open_for_reading

    reading = open_for_reading(db)
    if reading.repo_id is None and this_repo:
        click.echo(
            clean(
                f"ci-risk: note: {reading.store.where} holds no history of this repository "
                f"(root commit {reading.root[:12]}) yet: `record` or `import` adds it"
            ),
            err=True,
        )
    return reading


def all_repos_store(db: str | None) -> tuple[str | None, str]:
    """The store of `--all-repos` (the scheduled job, which needs no checkout): (this clone's git dir or None, URL)."""
    from ci_risk_hook.git import repo as git
    from ci_risk_hook.outcomes.store import default_url, store_for

    try:
        common_dir: str | None = git.repo_info().common_dir
    except errors.CiRiskError:
        common_dir = None
    return common_dir, store_for(common_dir, db) if common_dir else db or default_url()


def repositories(store: Any) -> tuple[list[int], list[str]]:
    """Every repository of the store: ids, and names to show (without a name: the start of its root commit)."""
    repos = store.repositories()
    return [r[0] for r in repos], [r[2] or r[1][:12] for r in repos]


def note(message: str) -> None:
    """A library's progress note, on stderr as ci-risk's own lines (the `log` callback of training and publishing)."""
    click.echo(f"ci-risk: {clean(message)}", err=True)


def bar(label: str) -> Any:
    """A progress callback: a bar on a terminal, silence elsewhere."""
    if not sys.stderr.isatty():
        return None
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = click.progressbar(length=total, label=label, file=sys.stderr)
            state["bar"].__enter__()
        state["bar"].update(done - state.get("done", 0))
        state["done"] = done
        if done >= total:
            state["bar"].__exit__(None, None, None)

    return update


def settings_warnings(settings: Any) -> None:
    """A setting that was refused or ignored (`config.resolve(tolerant=True)`) is one line, never silent."""
    for warning in settings.warnings:
        click.echo(f"ci-risk: warning: {warning}", err=True)
