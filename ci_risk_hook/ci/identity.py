"""Which repository of the store a CI job's outcomes belong to, in a shallow clone too.

A repository is identified by its oldest root commit (clones anywhere share
one history), but a shallow CI checkout does not have it. In order:

1. `CI_RISK_REPO` (the root commit), when the pipeline sets it;
2. the root commit itself, when the clone is complete (or it was cached);
3. the store's repository *named* by the CI system's slug (`owner/name`):
   every CI run that knows the root records the slug as the repository's name,
   so later shallow runs find it by name (only when exactly one has that name);
4. `git fetch --unshallow` within what is left of the deepening budget, then 2;
5. otherwise unknown: `record --ci` says to set CI_RISK_REPO, `check --ci`
   scores without build-history features.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from ci_risk_hook import paths
from ci_risk_hook.git import repo as git


class Identity(NamedTuple):
    root: str
    name: str
    how: str  # which of the ways above found it, for the log line


def root_by_name(store: object, name: str) -> str | None:
    """The root commit of the one repository in the store named `name` (None if none or several)."""
    if not name:
        return None
    matches = [root for _, root, named in store.repositories() if named == name]  # type: ignore[attr-defined]
    return matches[0] if len(matches) == 1 else None


def name_repository(store: object, repo_id: int, name: str) -> None:
    """Record the CI slug as the repository's name, so shallow runs can find it by name."""
    if not name:
        return
    with store.transaction():  # type: ignore[attr-defined]
        store.execute(  # type: ignore[attr-defined]
            "UPDATE repositories SET name = ? WHERE id = ? AND name <> ?", (name, repo_id, name)
        )


def known_root(info: git.RepoInfo, cwd: str | None = None) -> Identity | None:
    """Ways 1 and 2: without the store or the network."""
    if os.environ.get(paths.REPO_ENV, "").strip():
        return Identity(os.environ[paths.REPO_ENV].strip(), "", paths.REPO_ENV)
    root = git.root_commit(info, cwd)
    return Identity(root, "", "root commit") if root else None


def unshallow(seconds: float, cwd: str | None = None) -> bool:
    """Way 4: the whole history, if it arrives within `seconds`."""
    from ci_risk_hook.ci.shallow import Fetcher, remote_name

    fetcher = Fetcher(cwd, remote_name(cwd), seconds)
    return fetcher.remote is not None and fetcher.fetch(["--unshallow"])
