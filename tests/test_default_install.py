"""The default install, as pre-commit makes it for the hook: light, and still scoring pushes.

A fresh venv gets ci-risk without extras (pip's cache makes the second run
quick); training must then be missing, and the command that needs it must
say which `pip install` brings it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from testing.repos import REPO_ROOT, Repo, lines

HEAVY = ("sklearn", "numpy", "pandas", "matplotlib", "scipy", "joblib")


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding `pip install <this checkout>`, no extras: what the hook's environment holds."""
    root = tmp_path_factory.mktemp("light")
    source = root / "src"
    shutil.copytree(
        REPO_ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", "test-artifacts", ".mypy_cache", ".pytest_cache"
        ),
    )
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    pip = subprocess.run(
        [
            str(env_dir / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr
    return env_dir


def test_the_default_install_is_light_and_scores_a_push_with_the_bundled_model(
    light_venv: Path, repo: Repo, tmp_path: Path
) -> None:
    python = str(light_venv / "bin" / "python")
    probe = "import importlib.util as u; print(' '.join(m for m in %r if u.find_spec(m)))" % (HEAVY,)
    present = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert present == [], f"the default install pulled in {present}"

    ci_risk = str(light_venv / "bin" / "ci-risk")
    repo.commit({"src/app.py": lines(20)}, "start")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    repo.git("remote", "add", "origin", str(remote))
    repo.git("push", "-q", "--no-verify", "-u", "origin", "main")
    installed = subprocess.run([ci_risk, "install"], cwd=repo.path, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    tip = repo.commit({"src/app.py": lines(30), ".github/workflows/ci.yml": lines(40)}, "rework CI")
    # Blocking from probability 0 can only happen if the push was scored (a failing hook lets it through).
    pushed = subprocess.run(
        ["git", "push", "origin", "main"],
        cwd=repo.path,
        capture_output=True,
        text=True,
        env={**os.environ, "CI_RISK_MODE": "block", "CI_RISK_BLOCK_AT": "0"},
    )
    assert pushed.returncode != 0, pushed.stdout + pushed.stderr
    assert "BLOCKED" in pushed.stdout + pushed.stderr
    checked = subprocess.run(
        [ci_risk, "check", "--from", "HEAD~1", "--format", "json"], cwd=repo.path, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    assert '"source": "bundled"' in checked.stdout
    assert repo.git("ls-remote", "origin", "refs/heads/main").split()[0] != tip

    trained = subprocess.run([ci_risk, "train"], cwd=repo.path, capture_output=True, text=True)
    assert trained.returncode == 2, trained.stderr
    assert trained.stdout == ""
    hint = trained.stderr.strip().splitlines()
    assert len(hint) == 1, trained.stderr
    assert "pip install 'ci-risk[train]'" in hint[0] and "scikit-learn" in hint[0], hint


def test_every_command_that_trains_or_plots_checks_for_the_train_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hint comes before any work, from one check; here the extra is hidden from this interpreter."""
    from click.testing import CliRunner

    from ci_risk_hook.cli import extras
    from ci_risk_hook.cli.main import cli
    from ci_risk_hook.errors import EXIT_USAGE

    monkeypatch.setitem(extras.EXTRAS, "train", (("ci_risk_no_such_module", "scikit-learn"),))
    for command in (["train"], ["backtest"], ["retrain"], ["report"], ["dashboard"], ["demo"]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == EXIT_USAGE, (command, result.output)
        assert result.output.strip().splitlines() == [
            f"Error: `ci-risk {command[0]}` needs the train extra (scikit-learn missing): pip install 'ci-risk[train]'"
        ]
    assert extras.missing("train") == ["scikit-learn"]
    assert sys.modules.get("ci_risk_no_such_module") is None
