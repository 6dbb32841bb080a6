"""The package as pip (and so pre-commit) installs it: not the source checkout, with its bundled model inside.

scripts/test.sh installs ci-risk non-editable, as pre-commit does; a wheel
that left the bundled model out would pass every test that imports the
checkout, so this one looks at what was installed.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from testing.repos import REPO_ROOT, Repo, lines

CI_RISK = str(Path(sys.executable).parent / "ci-risk")


def installed_package_dir() -> Path:
    spec = importlib.util.find_spec("ci_risk_hook")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).resolve().parent


def test_the_installed_package_carries_the_bundled_model_and_scores_with_it(repo: Repo) -> None:
    package = installed_package_dir()
    if package == REPO_ROOT / "ci_risk_hook":
        pytest.skip(
            f"ci_risk_hook is imported from the source checkout ({package}): "
            "run scripts/test.sh, which installs it as pre-commit does"
        )
    bundled = package / "bundled_model"
    assert (bundled / "model.json").is_file(), f"no bundled model in the installed package {package}"
    assert (bundled / "MODEL_CARD.md").is_file()
    repo.commit({"src/app.py": lines(20)}, "start")
    repo.commit({"src/app.py": lines(30), ".github/workflows/ci.yml": lines(40)}, "rework CI")
    proc = subprocess.run(
        [CI_RISK, "check", "--from", "HEAD~1", "--format", "json"], cwd=repo.path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["model"]["source"] == "bundled", report["model"]
    assert Path(report["model"]["path"]).resolve().parent == bundled
    assert 0.0 <= report["ranges"][0]["probability"] <= 1.0


def test_setup_cfg_lists_every_subpackage() -> None:
    """setup.cfg names packages one by one: a new subpackage left out installs without it (ImportError in CI)."""
    import configparser

    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    listed = set(parser["options"]["packages"].split())
    found = {
        ".".join(path.parent.relative_to(REPO_ROOT).parts) for path in (REPO_ROOT / "ci_risk_hook").rglob("__init__.py")
    }
    assert found - listed == set()
