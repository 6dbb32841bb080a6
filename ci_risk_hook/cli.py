"""The `ci-risk` command line: a thin click layer over the library.

Exit codes: 0 pass or warn, 1 blocked, 2 usage error, 3 ci-risk's own error
in strict mode (without --strict such an error prints one warning line and
exits 0, so a bug in ci-risk never stops a push).
"""
from __future__ import annotations

import functools
import os
import sys
import time
from typing import Any, Callable, TypeVar

import click

from . import __version__

EXIT_OK, EXIT_BLOCKED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

F = TypeVar("F", bound=Callable[..., Any])


def _gate_options(func: F) -> F:
    options = [
        click.option("--mode", type=click.Choice(["warn", "block", "off"]), default=None,
                     help="warn (default): report only; block: exit 1 at --block-at; off: do nothing."),
        click.option("--warn-at", type=click.FloatRange(0, 1), default=None, help="Warn from this probability."),
        click.option("--block-at", type=click.FloatRange(0, 1), default=None, help="Block (in block mode) from this probability."),
        click.option("--strict/--no-strict", default=None, help="Fail closed (exit 3) on ci-risk's own errors."),
        click.option("--model", "model", type=str, default=None, help="Model artifact (.json) to score with."),
        click.option("--max-commits", type=click.IntRange(1), default=None, help="Most commits of one push to read."),
        click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", help="Output format."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ci-risk")
def cli() -> None:
    """Predict whether a push will fail CI, before the test suite runs."""


class _Progress:
    """Index-building progress on stderr: a live counter on a terminal, two lines otherwise."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int) -> None:
        if self.started is None:
            self.started = time.monotonic()
            click.echo("ci-risk: indexing this repository's history (once; later pushes add only new commits)", err=True)
        if self.tty:
            click.echo(f"\rci-risk: indexed {done:,} commits", err=True, nl=False)

    def finish(self) -> None:
        if self.started is not None:
            prefix = "\r" if self.tty else ""
            click.echo(f"{prefix}ci-risk: history index ready ({time.monotonic() - self.started:.1f} s)", err=True)


def _log_internal_error(exc: BaseException) -> str | None:
    import traceback  # only on this rare path: importing it costs ~5 ms on every push

    try:
        from .config import user_data_dir

        directory = user_data_dir()
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "error.log")
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} ci-risk {__version__}\n")
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return path
    except OSError:
        return None


def _run_gate(range_source: Callable[[Any], Any], options: dict[str, Any]) -> int:
    """Shared by `check` and `hook`: resolve settings and ranges, score, print, exit."""
    from . import config, git, ranges
    from .history_index import IndexError_
    from .scoring import ModelError

    output_format = options.pop("output_format")
    strict_hint = options.get("strict")
    if strict_hint is None:
        strict_hint = os.environ.get("CI_RISK_STRICT", "").lower() in ("1", "true", "yes", "on")
    try:
        info = git.repo_info()
        settings = config.resolve(options, toplevel=info.toplevel)
    except config.ConfigError as exc:
        click.echo(f"ci-risk: error: {exc}", err=True)
        return EXIT_USAGE
    except git.GitError as exc:
        return _fail(exc, strict_hint, known=True)
    if settings.mode == "off":
        if output_format == "json":
            click.echo('{"decision": "off", "exit_code": 0}')
        return EXIT_OK
    progress = _Progress()
    try:
        from . import gate, output

        push_ranges = range_source(info)
        report = gate.evaluate(push_ranges, settings, info, progress)
    except ranges.RangeError as exc:
        click.echo(f"ci-risk: {exc}", err=True)
        return EXIT_OK if str(exc).startswith("nothing to check") else EXIT_USAGE
    except (git.GitError, ModelError, IndexError_, OSError) as exc:
        return _fail(exc, settings.strict, known=True)
    except Exception as exc:  # noqa: BLE001 - a bug in ci-risk must not stop a push
        return _fail(exc, settings.strict, known=False)
    finally:
        progress.finish()
    if output_format == "json":
        click.echo(output.render_json(report))
    else:
        click.echo(output.render_text(report, colour=output.use_colour(sys.stdout)))
    return report.exit_code


def _fail(exc: BaseException, strict: bool, known: bool) -> int:
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    where = ""
    if not known:
        log = _log_internal_error(exc)
        message = f"internal error ({type(exc).__name__}: {message})"
        where = f"; details in {log}" if log else ""
    if strict:
        click.echo(f"ci-risk: error: {message}{where}", err=True)
        return EXIT_INTERNAL
    click.echo(f"ci-risk: warning: {message}{where}; push not checked (--strict fails instead)", err=True)
    return EXIT_OK


@cli.command()
@click.option("--from", "from_rev", default=None, help="Base revision (default: @{upstream}, else what no remote has).")
@click.option("--to", "to_rev", default=None, help="Tip revision (default: HEAD).")
@_gate_options
def check(from_rev: str | None, to_rev: str | None, **options: Any) -> None:
    """Score the commits a push would publish, with the top reasons."""
    from . import ranges

    sys.exit(_run_gate(lambda info: [ranges.explicit(from_rev, to_rev)], options))


@cli.command()
@click.option("--raw", is_flag=True, help="Read git's pre-push stdin (set by `ci-risk install`).")
@click.argument("remote", required=False)
@click.argument("url", required=False)
@_gate_options
def hook(raw: bool, remote: str | None, url: str | None, **options: Any) -> None:
    """Entry point of the pre-push hook (pre-commit or raw git)."""
    from . import ranges

    def source(info: Any) -> Any:
        if raw:
            lines = [] if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read().splitlines()
            return ranges.from_hook_stdin(lines, remote or "origin")
        found = ranges.from_pre_commit_env(os.environ)
        return found if found is not None else [ranges.explicit(None, None)]

    sys.exit(_run_gate(source, options))


@cli.command()
@click.option("--force", is_flag=True, help="Replace a pre-push hook ci-risk did not write (kept as a backup).")
def install(force: bool) -> None:
    """Install a raw git pre-push hook (for repositories without pre-commit)."""
    from .install import InstallError, install as do_install

    try:
        path = do_install(force=force)
    except InstallError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"ci-risk: pre-push hook installed at {path}")


@cli.command()
def uninstall() -> None:
    """Remove the pre-push hook written by `ci-risk install` (and only that)."""
    from .install import InstallError, uninstall as do_uninstall

    try:
        path = do_uninstall()
    except InstallError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"ci-risk: removed {path}" if path else "ci-risk: no pre-push hook to remove")


@cli.command()
@click.option("--rebuild", is_flag=True, help="Delete the index and build it again.")
def index(rebuild: bool) -> None:
    """Build or update the history index that makes history features fast."""
    from . import git
    from .history_index import HistoryIndex, IndexError_, default_path

    info = git.repo_info()
    path = default_path(info.common_dir)
    if rebuild:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    if info.is_shallow:
        click.echo("ci-risk: note: shallow clone; the hook ignores history features until `git fetch --unshallow`", err=True)
    tips = git.run(["for-each-ref", "--format=%(objectname)", "refs/heads", "refs/remotes"]).decode().split()
    try:
        head = git.run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]).decode().strip()
        tips.append(head)
    except git.GitError:
        pass
    started = time.monotonic()
    progress = _Progress()
    try:
        idx = HistoryIndex(path)
        added = idx.ensure_covers(list(dict.fromkeys(tips)), progress)
        total = idx.commit_count()
        idx.close()
    except IndexError_ as exc:
        raise click.ClickException(f"{exc} (use --rebuild)") from None
    finally:
        progress.finish()
    click.echo(f"ci-risk: {path}: {total:,} commits ({added:,} new, {time.monotonic() - started:.1f} s)")


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="ci-risk", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
