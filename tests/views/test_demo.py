"""`ci-risk demo`: a real repository, simulated outcomes, a trained model, two pushes on either side of warn.

One demo (the default, as a newcomer runs it) is built per module and then used the way its output says:
every "Try next" command, run exactly as printed in the demo's directory.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from ci_risk_hook.views import demo

CI_RISK = str(Path(sys.executable).parent / "ci-risk")


class Demo(NamedTuple):
    directory: Path
    stdout: str
    env: dict[str, str]
    started: float = 0.0

    @property
    def pointer(self) -> Path:
        return self.directory / ".git" / "ci-risk" / "store"

    def try_next(self) -> list[str]:
        """The commands printed under "Try next", without their comments."""
        block = self.stdout.split("Try next, in ")[1].splitlines()[1:]
        return [line.split("#")[0].strip() for line in block if line.strip().startswith("ci-risk ")]

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        argv = shlex.split(command)
        assert argv[0] == "ci-risk"
        return subprocess.run([CI_RISK, *argv[1:]], cwd=self.directory, env=self.env, capture_output=True, text=True)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "CI_RISK_DB"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    home = tmp_path_factory.mktemp("demo-home")
    env = {
        **_clean_env(),
        "HOME": str(home),
        "CI_RISK_HOME": str(home / "ci-risk"),
        "NO_COLOR": "1",
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    directory = tmp_path_factory.mktemp("demo") / "d"
    started = time.time()
    proc = subprocess.run([CI_RISK, "demo", str(directory)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return Demo(directory, proc.stdout, env, started)


def _risk(text: str) -> float:
    found = re.search(r"ci-risk: risk (\d\.\d\d)", text)
    assert found, text
    return float(found.group(1))


def test_demo_scores_the_two_pushes_on_either_side_of_the_warn_threshold(built: Demo) -> None:
    low, high = built.stdout.split("A large CI-configuration change by a newcomer:")
    assert "low risk" in low and "touches CI configuration: .github/workflows/ci.yml" in high
    assert "risky: this push may fail CI" in high or "BLOCKED" in high
    assert "Try next" in high
    assert (built.directory / ".git" / "ci-risk" / "model.json").exists()


def test_every_try_next_command_works_as_printed_and_reads_leave_the_store_pointer_alone(built: Demo) -> None:
    commands = built.try_next()
    assert {c.split()[1] for c in commands} >= {"check", "history", "backtest", "model", "report"}
    assert all("--db" not in c for c in commands), "no CI_RISK_DB was set: the commands need no --db"
    pointer = built.pointer.read_bytes()
    assert pointer.decode().strip() == str(built.directory / ".git" / "ci-risk" / "history.sqlite")
    builds = int(re.search(r"(\d+) builds \((\d+) failed\)", built.stdout).group(1))  # type: ignore[union-attr]
    outputs = {}
    for command in commands:
        proc = built.run(command)
        assert proc.returncode == 0, (command, proc.stderr)
        outputs[command.split()[1]] = proc.stdout
        assert built.pointer.read_bytes() == pointer, f"{command} rewrote the store pointer"
    assert re.search(rf"total\s+{builds}\b", outputs["history"]), outputs["history"]
    assert re.search(rf"of {builds} builds predicted", outputs["backtest"]), outputs["backtest"]
    assert "ROC-AUC" in outputs["model"] and "{" not in outputs["model"], outputs["model"]
    assert (built.directory / "ci-risk-report" / "report.html").exists()
    assert not re.search(r"\b0 builds", "".join(outputs.values()))


def test_checking_the_newcomers_push_by_hand_agrees_with_the_demo(built: Demo) -> None:
    """The history ends when the demo runs: a check afterwards sees recent builds, not years-old ones."""
    demo_score = _risk(built.stdout.split("A large CI-configuration change by a newcomer:")[1])
    command = next(c for c in built.try_next() if c.startswith("ci-risk check"))
    proc = built.run(command)
    assert proc.returncode == 0, proc.stderr
    assert abs(_risk(proc.stdout) - demo_score) <= 0.05, (demo_score, proc.stdout)
    assert "risky" in proc.stdout or "BLOCKED" in proc.stdout
    hours = re.search(r"([\d,.]+) hours since the previous build", proc.stdout)
    assert hours is None or float(hours.group(1).replace(",", "")) < 48


def test_the_demo_backtest_shows_the_lift_its_simulated_traits_allow(built: Demo) -> None:
    """Kept in the model's provenance (model show, report and dashboard read it there)."""
    import json

    prov = json.loads((built.directory / ".git" / "ci-risk" / "model.json").read_text())["provenance"]
    backtest = prov["backtest"]
    assert backtest["model"]["roc_auc"] > backtest["parrot"]["roc_auc"] + 0.1, backtest
    assert backtest["model"]["pr_auc"] > backtest["parrot"]["pr_auc"], backtest


def test_with_ci_risk_db_set_the_demo_keeps_its_own_store_and_the_pointer_agrees(tmp_path: Path) -> None:
    elsewhere = tmp_path / "team" / "history.sqlite"
    env = {**os.environ, "CI_RISK_DB": str(elsewhere)}
    directory = tmp_path / "d"
    proc = subprocess.run(
        [CI_RISK, "demo", str(directory), "--commits", "100"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    own = directory / ".git" / "ci-risk" / "history.sqlite"
    assert (directory / ".git" / "ci-risk" / "store").read_text().strip() == str(own)
    assert not elsewhere.exists(), "simulated outcomes must not land in the store CI_RISK_DB names"
    shown = Demo(directory, proc.stdout, env)
    history = next(c for c in shown.try_next() if c.startswith("ci-risk history"))
    assert f"--db {own}" in history
    listed = shown.run(history)
    assert listed.returncode == 0 and re.search(r"total\s+100\b", listed.stdout), listed.stdout + listed.stderr


def test_demo_is_deterministic_for_a_seed_and_a_clock(tmp_path: Path) -> None:
    first = demo.build(str(tmp_path / "a"), seed=3, commits=80, now=1_800_000_000)
    second = demo.build(str(tmp_path / "b"), seed=3, commits=80, now=1_800_000_000)
    assert first.low.ranges[0].features.commits == second.low.ranges[0].features.commits
    assert first.high.ranges[0].probability == second.high.ranges[0].probability
    assert first.low.ranges[0].probability == second.low.ranges[0].probability
    high, low = first.high.ranges[0], first.low.ranges[0]
    assert high.probability is not None and low.probability is not None
    assert low.probability < first.low.warn_at <= high.probability


def test_the_demo_history_ends_when_the_demo_runs(built: Demo) -> None:
    newest = int(
        subprocess.run(
            ["git", "log", "-1", "--all", "--format=%ct"],
            cwd=built.directory,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert built.started - 3600 < newest <= time.time()


def test_try_next_never_prints_the_password_of_a_ci_risk_db_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from ci_risk_hook.cli.views import try_next

    monkeypatch.setenv("CI_RISK_DB", "postgresql://ci:s3cret@db.example/ci_risk")
    text = try_next("/tmp/d", "/tmp/d/.git/ci-risk/history.sqlite")
    assert "s3cret" not in text and "postgresql://ci@db.example/ci_risk" in text
    assert "ci-risk history --db /tmp/d/.git/ci-risk/history.sqlite" in text
