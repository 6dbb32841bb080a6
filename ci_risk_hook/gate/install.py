"""Write and remove a raw git pre-push hook, for people who do not use pre-commit.

The hook calls this interpreter by absolute path. If that interpreter is
gone (a deleted virtualenv), the hook says so and lets the push through:
ci-risk must never be the reason a push breaks.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys

from ci_risk_hook.errors import EXIT_BLOCKED, CiRiskError
from ci_risk_hook.git import repo as git

MARKER = "# ci-risk pre-push hook: written by `ci-risk install`, removed by `ci-risk uninstall`"
BACKUP_SUFFIX = ".pre-ci-risk"


class InstallError(CiRiskError):
    """The hook cannot be written or removed as asked."""

    exit_code = EXIT_BLOCKED


def hook_path(cwd: str | None = None) -> str:
    out = git.run(["rev-parse", "--path-format=absolute", "--git-path", "hooks/pre-push"], cwd)
    return os.fsdecode(out.strip())


def hook_script(python: str | None = None) -> str:
    from ci_risk_hook.launch import bootstrap  # not `-m`: git runs the hook in the work tree (see launch)

    interpreter = shlex.quote(python or sys.executable)
    return f"""#!/bin/sh
{MARKER}
PYTHON={interpreter}
if [ ! -x "$PYTHON" ]; then
    echo "ci-risk: $PYTHON is gone; push not checked (run 'ci-risk install --force' again)" >&2
    exit 0
fi
exec "$PYTHON" -c {shlex.quote(bootstrap("ci_risk_hook"))} hook --raw "$@"
"""


def is_ours(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return MARKER in fh.read(4096)
    except OSError:
        return False


def install(cwd: str | None = None, force: bool = False) -> str:
    """Write the hook; an existing foreign hook is kept as <hook>.pre-ci-risk with --force."""
    path = hook_path(cwd)
    if os.path.lexists(path) and not is_ours(path):
        if not force:
            raise InstallError(
                f"{path} exists and was not written by ci-risk; "
                f"use --force to replace it (it is kept as {path}{BACKUP_SUFFIX})"
            )
        os.replace(path, path + BACKUP_SUFFIX)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(hook_script())
    mode = os.stat(tmp).st_mode
    os.chmod(tmp, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, path)
    return path


def uninstall(cwd: str | None = None) -> str | None:
    """Remove our hook only; restore the hook it replaced, if any. Returns the removed path."""
    path = hook_path(cwd)
    if not os.path.lexists(path):
        return None
    if not is_ours(path):
        raise InstallError(f"{path} was not written by ci-risk; leaving it alone")
    os.remove(path)
    backup = path + BACKUP_SUFFIX
    if os.path.lexists(backup):
        os.replace(backup, path)
    return path
