"""Real git repositories in temporary directories, with commits by chosen authors at chosen times."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Mapping, Union

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent.parent

Content = Union[str, bytes, None]  # None deletes the file


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
                self.git("rm", "-q", "--", name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
            self.git("add", "--", name)
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
