"""Commands that need an optional extra check for it first and say, in one line, what installs it.

The default install (what pre-commit puts in the hook's environment) holds
only what scoring, recording and importing need; training and the views
that train or plot come with `ci-risk[train]`. The check looks the modules
up without importing them, so a command pays nothing for it.
"""

from __future__ import annotations

import importlib.util

import click

from ci_risk_hook.errors import EXIT_USAGE, CiRiskError

# extra -> (import name, distribution name), as declared in setup.cfg's extras_require
EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    "train": (
        ("numpy", "numpy"),
        ("sklearn", "scikit-learn"),
        ("joblib", "joblib"),
        ("threadpoolctl", "threadpoolctl"),
        ("matplotlib", "matplotlib"),
    ),
    "team": (("fsspec", "fsspec"), ("cryptography", "cryptography")),
    "s3": (("fsspec", "fsspec"), ("cryptography", "cryptography"), ("s3fs", "s3fs")),
}


class MissingExtra(CiRiskError, click.ClickException):
    """This installation lacks an extra the command needs: a usage error, not a bug (the fix is in the install)."""

    exit_code = EXIT_USAGE  # type: ignore[misc]  # click declares it per instance; the same value either way


def missing(extra: str) -> list[str]:
    """The distributions of `extra` this installation lacks."""
    return [dist for module, dist in EXTRAS[extra] if importlib.util.find_spec(module) is None]


def require(extra: str, url: str | None = None) -> None:
    """Raise MissingExtra, naming the `pip install` that fixes it, unless `extra` is installed.

    With `url` (a model source), the extra its protocol needs instead (`s3` for s3://).
    """
    if url is not None:
        from ci_risk_hook.distribution.remote import protocol_of

        extra = "s3" if protocol_of(url) in ("s3", "s3a") else extra
    lacking = missing(extra)
    if lacking:
        command = click.get_current_context(silent=True)
        name = f"`ci-risk {command.info_name}`" if command is not None else "this command"
        raise MissingExtra(
            f"{name} needs the {extra} extra ({', '.join(lacking)} missing): pip install 'ci-risk[{extra}]'"
        )
