"""Real git repositories in temporary directories, with commits by chosen authors at chosen times."""

from __future__ import annotations

import atexit
import copy
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Mapping, TypeVar, Union

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent.parent

Content = Union[str, bytes, None]  # None deletes the file
Built = TypeVar("Built")


class Repo:
    """A real git repository with helpers to commit as different authors at chosen times."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.clock = 1_600_000_000

    def git(
        self,
        *args: str,
        input: bytes | None = None,  # noqa: A002 - subprocess.run's own name for it
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.path,
            input=input,
            capture_output=True,
            env={**os.environ, **(env or {})},
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
        return proc.stdout.decode("utf-8", "surrogateescape").strip()

    def commit(
        self,
        files: Mapping[str, Content],
        message: str = "change",
        author: str = "Test Person <test@example.com>",
        at: int | None = None,
    ) -> str:
        for name, content in files.items():
            target = self.path / name
            if content is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        # One `git rm` and one `git add` per commit, not one per file: histories of a hundred commits and more
        # are built this way all over the suite (and again in every mutant run).
        removed = [name for name, content in files.items() if content is None]
        added = [name for name, content in files.items() if content is not None]
        if removed:
            self.git("rm", "-q", "--", *removed)
        if added:
            self.git("add", "--", *added)
        self.clock = at if at is not None else self.clock + 3600
        name, _, email = author.partition(" <")
        date = f"{self.clock} +0000"
        env = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email.rstrip(">"),
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email.rstrip(">"),
            "GIT_COMMITTER_DATE": date,
        }
        self.git("commit", "-q", "--no-verify", "--no-gpg-sign", "--allow-empty", "-m", message, env=env)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")


def make_repo(path: Path) -> Repo:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    return Repo(path)


# -- histories built once per test process ---------------------------------------------------------
# Commits carry fixed authors and dates, so the same steps give the same commits, hashes included: a
# history dozens of tests start from is built once and copied, instead of rebuilt with hundreds of `git`
# runs per test. Each test still gets a repository of its own to change.

# The repository's own settings (`git init`, and whatever a test configured before) stay; the rest is copied.
_KEPT = frozenset({"config", "hooks", "description", "info"})
_templates: dict[str, tuple[Path, int, object]] = {}  # key -> (built repository, its clock, what build returned)
_templates_dir: list[Path] = []


def _template_root() -> Path:
    if not _templates_dir:
        root = Path(tempfile.mkdtemp(prefix="ci-risk-test-histories-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _templates_dir.append(root)
    return _templates_dir[0]


def built_once(repo: Repo, key: str, build: Callable[[Repo], Built]) -> Built:
    """`build(repo)` on a repository without commits, as a copy of the first build under `key` in this process.

    `build` must depend on nothing but `key`: it commits with explicit authors and dates and returns what
    only those commits determine. A repository that already has commits is built on directly.
    """
    if repo.git("rev-parse", "-q", "--verify", "HEAD", check=False):
        return build(repo)
    if key not in _templates:
        # Named as the repository is (a store names a repository after its directory); builds may nest.
        template = make_repo(Path(tempfile.mkdtemp(dir=_template_root())) / repo.path.name)
        result = build(template)
        _templates[key] = (template.path, template.clock, result)
    source, clock, result = _templates[key]
    for item in source.iterdir():
        if item.name != ".git":
            _copy(item, repo.path / item.name)
    for item in (source / ".git").iterdir():
        if item.name not in _KEPT:
            target = repo.path / ".git" / item.name
            if target.is_dir():
                shutil.rmtree(target)
            _copy(item, target)
    repo.clock = clock
    return copy.deepcopy(result)  # type: ignore[return-value] # stored under this key by the same `build`


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)


def shallow_clone(upstream: Repo, dest: Path, branch: str, depth: int = 1) -> Repo:
    """`git clone --depth N file://...`: a clone as shallow as a CI checkout."""
    subprocess.run(
        ["git", "clone", "-q", f"--depth={depth}", "--branch", branch, f"file://{upstream.path}", str(dest)],
        check=True,
    )
    return Repo(dest)


def lines(n: int, prefix: str = "line") -> str:
    return "".join(f"{prefix} {i}\n" for i in range(n))


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`ci-risk ARGS` in-process: (exit code, stdout, stderr)."""
    from ci_risk_hook.cli import main as cli

    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
