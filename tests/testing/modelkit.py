"""Build a repository with a realistic history and train a real model on it.

Outcomes are simulated from the traits that make pushes risky (CI and build
configuration changes, newcomers, large changes) plus noise; the model is a
real RandomForest trained on the features ci-risk computes, exported to the
portable artifact. Tests then pick thresholds around its actual score.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

from ci_risk_hook.features.analysis import analyze
from ci_risk_hook.features.extract import FEATURE_NAMES, Limits
from ci_risk_hook.git import repo as git
from testing.repos import Repo, built_once, lines

MAINTAINERS = ["Ada Maintainer <ada@example.com>", "Bo Maintainer <bo@example.com>"]
NEWCOMERS = [f"New Person{i} <new{i}@example.com>" for i in range(8)]


def grow_history(repo: Repo, commits: int = 80, seed: int = 7, root: str | None = None) -> dict[str, int]:
    """Commit a mixed history; return the simulated CI outcome (1 = failed) per commit.

    `root`: first commit a NAME file holding it, so that repositories grown alike have roots of their own (a store
    tells repositories apart by their root commit). The root commit has no outcome.
    """

    def build(r: Repo) -> dict[str, int]:
        if root is not None:
            r.commit({"NAME": root}, "root")
        return _grow_history(r, commits, seed)

    return built_once(repo, f"grow_history({commits}, {seed}, root={root!r})", build)


def imported_history(repo: Repo, store: Path, commits: int, seed: int, interval: int, duration: int) -> dict[str, int]:
    """grow_history's commits with their simulated CI outcomes imported into a new SQLite store by `ci-risk import`.

    Build i starts `i * interval` seconds after the first and runs `duration` seconds. The import runs once per
    process; each test gets a copy of the repository (its .git/ci-risk included) and of the store, and the
    repository's store pointer names the copy.
    """
    from ci_risk_hook.cli import main as cli
    from ci_risk_hook.outcomes.store import remember

    def build(r: Repo) -> tuple[dict[str, int], str]:
        labels = grow_history(r, commits=commits, seed=seed)
        csv = r.path.parent / "outcomes.csv"
        rows = [
            f"{sha},{'failed' if label else 'passed'},main,{1_600_000_000 + i * interval},{duration}"
            for i, (sha, label) in enumerate(labels.items())
        ]
        csv.write_text("commit,status,branch,started_at,duration_s\n" + "\n".join(rows) + "\n")
        db = r.path.parent / "history.sqlite"
        here = os.getcwd()
        os.chdir(r.path)
        try:
            assert cli.main(["import", str(csv), "--format", "csv", "--db", str(db)]) == 0
        finally:
            os.chdir(here)
        return labels, str(db)

    labels, built = built_once(repo, f"imported_history({commits}, {seed}, {interval}, {duration})", build)
    shutil.copyfile(built, store)
    remember(str(repo.path / ".git"), str(store))
    return labels


def _grow_history(repo: Repo, commits: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    labels: dict[str, int] = {}
    repo.commit(
        {
            "src/core.py": lines(40),
            "tests/test_core.py": lines(20),
            ".github/workflows/ci.yml": lines(15),
            "setup.cfg": lines(10),
            "README.md": lines(5),
        },
        "initial import",
        author=MAINTAINERS[0],
    )
    newcomer_turn = 0
    for i in range(commits):
        risky = rng.random() < 0.3
        if risky:
            author = NEWCOMERS[newcomer_turn % len(NEWCOMERS)]
            newcomer_turn += 1
            n = rng.randint(80, 300)
            target = rng.choice([".github/workflows/ci.yml", "setup.cfg", "requirements.txt"])
            files = {target: lines(n, f"cfg{i}"), "src/core.py": lines(40 + i % 7)}
            fail_p = 0.75
        else:
            author = rng.choice(MAINTAINERS)
            files = {"src/core.py": lines(40 + i % 5, f"v{i}"), "tests/test_core.py": lines(20 + i % 3)}
            if rng.random() < 0.3:
                files["docs/guide.md"] = lines(3 + i % 4)
            fail_p = 0.08
        sha = repo.commit(files, f"change {i}", author=author)
        labels[sha] = 1 if rng.random() < fail_p else 0
    return labels


def training_rows(repo: Repo, labels: dict[str, int]) -> tuple[list[list[float]], list[int]]:
    info = git.repo_info(str(repo.path))
    rows: list[list[float]] = []
    y: list[int] = []
    for sha, label in labels.items():
        parent = repo.git("rev-parse", f"{sha}^")
        from ci_risk_hook.git.ranges import PushRange

        result = analyze(PushRange(tip=sha, exclude=(parent,)), info, Limits(), cwd=str(repo.path))
        rows.append([float("nan") if v is None else float(v) for v in result.vector()])
        y.append(label)
    return rows, y


# The artifact per (tip commit, labels): the commits fix the features and the forest has a fixed seed.
_trained: dict[tuple[str, tuple[tuple[str, int], ...]], bytes] = {}


def train_model(repo: Repo, labels: dict[str, int], out: Path) -> Path:
    """Fit a RandomForest on the repository's own features and export it (once per history and labels)."""
    key = (repo.head(), tuple(sorted(labels.items())))
    if key not in _trained:
        _trained[key] = _train_model(repo, labels, out).read_bytes()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(_trained[key])
    return out


def _train_model(repo: Repo, labels: dict[str, int], out: Path) -> Path:
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    from ci_risk_hook.model.export import export_model, write_artifact

    rows, y = training_rows(repo, labels)
    forest = RandomForestClassifier(n_estimators=40, max_depth=5, min_samples_leaf=3, random_state=0)
    forest.fit(np.array(rows), np.array(y))
    artifact = export_model(
        forest, list(FEATURE_NAMES), provenance={"trained_on": "simulated test history", "rows": len(y)}
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_artifact(artifact, out)
    return out


def check_json(output: str) -> dict:
    return json.loads(output)
