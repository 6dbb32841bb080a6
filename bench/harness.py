"""What benchmarks share about running ci-risk: the ci-risk under test, an environment that keeps
its files out of the user's, and a repository's ci-risk files made cold again.

Bench scripts run as `python bench/NAME.py` have bench/ on sys.path and import `from harness import ...`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

from ci_risk_hook import paths

CI_RISK = str(Path(sys.executable).parent / "ci-risk")  # the console script installed beside this Python
OWN_VARIABLES = "CI_RISK_"  # the prefix of every variable ci-risk reads


def isolated_env(scratch: str | os.PathLike[str]) -> dict[str, str]:
    """This environment with every file ci-risk reads or writes for the user in `scratch`.

    The store (`history.sqlite`), user data, history index (`index/`), pulled team models (`cache/`) and the user's
    config (`config.ini`, absent unless a benchmark writes it): a benchmark never reads the user's own settings or
    models, and never leaves anything behind. The caller's own CI_RISK_* settings (a model source, a strict mode)
    are dropped, so figures do not depend on who runs the benchmark.
    """
    inherited = {name: value for name, value in os.environ.items() if not name.startswith(OWN_VARIABLES)}
    return {
        **inherited,
        paths.DB_ENV: os.path.join(scratch, paths.STORE_FILE),
        paths.HOME_ENV: os.fspath(scratch),
        paths.INDEX_DIR_ENV: os.path.join(scratch, "index"),
        paths.CACHE_ENV: os.path.join(scratch, "cache"),
        paths.USER_CONFIG_ENV: os.path.join(scratch, paths.USER_CONFIG_FILE),
    }


def common_dir(repo: Path) -> Path:
    """The repository's git common dir (`.git` of its main worktree), where ci-risk keeps its per-repository files."""
    out = subprocess.run(
        ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def index_file(common: Path) -> Path:
    """The history index a push uses when CI_RISK_INDEX_DIR does not move it (the benchmarks leave it unset)."""
    return Path(paths.repo_dir(str(common))) / paths.INDEX_FILE


def reset_repository(common: Path) -> None:
    """The next push starts cold: the history index (and its WAL files), its build log and the store pointer removed."""
    index = index_file(common)
    for path in (
        *(Path(str(index) + suffix) for suffix in ("", "-wal", "-shm")),
        Path(paths.index_build_log(paths.index_lock(str(index)))),
        Path(paths.store_pointer(str(common))),
    ):
        path.unlink(missing_ok=True)


def git(*args: str, cwd: Path, stdin: bytes | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, check=True).stdout.decode().strip()


def synthetic_history(path: Path, commits: int, content: Callable[[int], bytes]) -> None:
    """A repository of `commits` commits on main (17 authors, 200 files, ten minutes apart), written by one
    `git fast-import`: thousands of commits in a second. Commit i writes content(i) to src/mod{i % 200}.py."""
    path.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=path)
    parts: list[bytes] = []
    for i in range(commits):
        data = content(i)
        message = f"change {i}\n".encode()
        when = 1_600_000_000 + i * 600
        parts.append(b"commit refs/heads/main\n")
        parts.append(f"committer Dev{i % 17} <dev{i % 17}@example.com> {when} +0000\n".encode())
        parts.append(b"data %d\n%s" % (len(message), message))
        parts.append(f"M 100644 inline src/mod{i % 200}.py\n".encode() + b"data %d\n%s\n" % (len(data), data))
    git("fast-import", "--quiet", cwd=path, stdin=b"".join(parts))
    git("checkout", "-q", "main", cwd=path)
