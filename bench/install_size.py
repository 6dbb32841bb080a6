"""What installing ci-risk costs: default install size and time, and pre-commit's hook install time.

    python bench/install_size.py [REV ...]     (default: HEAD; e.g. `main HEAD` for before/after)

For each revision of this checkout: a fresh venv gets `pip install <rev>`
(no extras, as pre-commit installs a hook); its site-packages minus a bare
venv's is the size. Then a throw-away repository whose .pre-commit-config.yaml
points at this checkout (repo: the local path, rev: the commit) is timed
through `pre-commit install --install-hooks` with an empty PRE_COMMIT_HOME.
pip's cache is whatever it is (warm after the first run): the figures
measure building and installing, not downloading. Run it with the test
venv's Python (it needs pre-commit).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("sklearn", "numpy", "pandas", "matplotlib", "scipy")


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def site_packages(env: Path) -> Path:
    return next(env.glob("lib/python*/site-packages"))


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def default_install(sha: str, work: Path, bare_size: int) -> tuple[float, int, list[str]]:
    source = work / "src"
    source.mkdir()
    archive = subprocess.run(["git", "archive", sha], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    env = work / "venv"
    venv.create(env, with_pip=True)
    started = time.monotonic()
    subprocess.run(
        [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)],
        check=True,
        capture_output=True,
    )
    seconds = time.monotonic() - started
    probe = f"import importlib.util as u; print(' '.join(m for m in {HEAVY!r} if u.find_spec(m)))"
    heavy = subprocess.run(
        [str(env / "bin" / "python"), "-c", probe], check=True, capture_output=True, text=True
    ).stdout.split()
    return seconds, du(site_packages(env)) - bare_size, heavy


def pre_commit_install(sha: str, work: Path) -> float:
    project = work / "project"
    project.mkdir()
    git("init", "-q", cwd=project)
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n- repo: {ROOT}\n  rev: {sha}\n  hooks:\n  - id: ci-risk\n", encoding="utf-8"
    )
    env = {**os.environ, "PRE_COMMIT_HOME": str(work / "pre-commit-home")}
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "pre_commit", "install", "--install-hooks", "-t", "pre-push"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def main(revs: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="ci-risk-install-bench-") as tmp:
        bare = Path(tmp) / "bare"
        venv.create(bare, with_pip=True)
        bare_size = du(site_packages(bare))
        print(
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
            "pip cache as it is (warm after a first run)"
        )
        for rev in revs:
            sha = git("rev-parse", rev)
            work = Path(tmp) / sha
            work.mkdir()
            seconds, size, heavy = default_install(sha, work, bare_size)
            hook = pre_commit_install(sha, work)
            print(
                f"{rev} ({sha[:10]}): default install {size / 1e6:.1f} MB in {seconds:.1f} s "
                f"(heavy: {', '.join(heavy) or 'none'}); pre-commit install --install-hooks {hook:.1f} s"
            )
            shutil.rmtree(work)


if __name__ == "__main__":
    main(sys.argv[1:] or ["HEAD"])
