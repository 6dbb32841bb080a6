"""`ci-risk demo`: a real repository, simulated outcomes, a trained model, two pushes on either side of warn."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ci_risk_hook.views import demo

CI_RISK = str(Path(sys.executable).parent / "ci-risk")


def test_demo_scores_the_two_pushes_on_either_side_of_the_warn_threshold(tmp_path: Path) -> None:
    proc = subprocess.run([CI_RISK, "demo", str(tmp_path / "d")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    low, high = proc.stdout.split("A large CI-configuration change by a newcomer:")
    assert "low risk" in low and "touches CI configuration: .github/workflows/ci.yml" in high
    assert "risky: this push may fail CI" in high or "BLOCKED" in high
    assert "Try next" in high
    assert (tmp_path / "d" / ".git" / "ci-risk" / "model.json").exists()


def test_demo_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    first = demo.build(str(tmp_path / "a"), seed=3, commits=80)
    second = demo.build(str(tmp_path / "b"), seed=3, commits=80)
    assert first.low.ranges[0].features.commits == second.low.ranges[0].features.commits
    assert first.high.ranges[0].probability == second.high.ranges[0].probability
    assert first.low.ranges[0].probability == second.low.ranges[0].probability
    high, low = first.high.ranges[0], first.low.ranges[0]
    assert high.probability is not None and low.probability is not None
    assert low.probability < first.low.warn_at <= high.probability
