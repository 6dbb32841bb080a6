"""`ci-risk demo`: a throw-away repository with a realistic history, trained on and scored in a minute.

It replaces the original demo's random table with real git: maintainers
making small source changes, newcomers, large CI-configuration and
dependency changes, tests and docs. CI outcomes are simulated from those
traits plus noise (and failures that linger until fixed), recorded in the
store, learnt by `train`, and two pending pushes are scored by the same gate
the hook runs.
"""
from __future__ import annotations

import os
import random
import subprocess
from typing import Callable, NamedTuple

from ci_risk_hook import paths
from ci_risk_hook.git import repo as git
from ci_risk_hook.outcomes.record import compute_build_features, open_for_repo
from ci_risk_hook.config import Settings
from ci_risk_hook.model.dataset import ci_table
from ci_risk_hook.gate.evaluate import GateReport, evaluate
from ci_risk_hook.model.workflow import run_train
from ci_risk_hook.outcomes.records import BuildRecord
from ci_risk_hook.git.ranges import PushRange

MAINTAINERS = ("Ada Lovelace <ada@demo.example>", "Grace Hopper <grace@demo.example>", "Alan Kay <alan@demo.example>")
NEWCOMERS = tuple(f"Newcomer {n} <{n.lower()}@demo.example>" for n in
                  ("Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea"))
START = 1_700_000_000
CI_FILES = (".github/workflows/ci.yml", ".github/workflows/release.yml")
BUILD_FILES = ("pyproject.toml", "requirements.txt", "requirements-dev.txt")


class DemoResult(NamedTuple):
    directory: str
    commits: int
    builds: int
    failures: int
    chosen: str
    low: GateReport
    high: GateReport


def _lines(n: int, tag: str) -> str:
    return "".join(f"{tag} line {i}\n" for i in range(n))


class _Repo:
    def __init__(self, path: str, rng: random.Random) -> None:
        self.path = path
        self.rng = rng
        self.clock = START
        subprocess.run(["git", "init", "-q", "-b", "main", path], check=True)

    def write(self, name: str, text: str) -> None:
        target = os.path.join(self.path, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(text)

    def commit(self, files: dict[str, str], message: str, author: str) -> str:
        for name, text in files.items():
            self.write(name, text)
        self.clock += self.rng.randint(1800, 6 * 3600)
        name, _, email = author.partition(" <")
        env = {**os.environ, "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email.rstrip(">"),
               "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email.rstrip(">"),
               "GIT_AUTHOR_DATE": f"{self.clock} +0000", "GIT_COMMITTER_DATE": f"{self.clock} +0000"}
        subprocess.run(["git", "add", "-A"], cwd=self.path, check=True, env=env)
        subprocess.run(["git", "-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-m", message],
                       cwd=self.path, check=True, env=env)
        return git.run(["rev-parse", "HEAD"], self.path).decode().strip()


def _change(repo: _Repo, i: int) -> tuple[dict[str, str], str, str, bool]:
    """One commit's files, message and author, and whether it is the risky kind."""
    rng = repo.rng
    risky = rng.random() < 0.22
    if risky:
        author = rng.choice(NEWCOMERS) if rng.random() < 0.7 else rng.choice(MAINTAINERS)
        target = rng.choice(CI_FILES + BUILD_FILES)
        files = {target: _lines(rng.randint(60, 400), f"cfg{i}")}
        if rng.random() < 0.5:
            files[f"src/app/module{rng.randint(0, 7)}.py"] = _lines(rng.randint(20, 200), f"v{i}")
        return files, rng.choice(["rework CI", "bump dependencies", "new build matrix", "pin tooling"]), author, True
    author = rng.choice(MAINTAINERS) if rng.random() < 0.85 else rng.choice(NEWCOMERS)
    module = rng.randint(0, 7)
    files = {f"src/app/module{module}.py": _lines(rng.randint(10, 60), f"v{i}")}
    if rng.random() < 0.6:
        files[f"tests/test_module{module}.py"] = _lines(rng.randint(5, 30), f"t{i}")
    if rng.random() < 0.2:
        files["docs/guide.md"] = _lines(rng.randint(3, 40), f"d{i}")
    return files, rng.choice(["small fix", "tidy module", "add test", "improve docs", "refactor helper"]), author, False


def build(directory: str, *, seed: int = 7, commits: int = 300,
          progress: Callable[[str], None] | None = None) -> DemoResult:
    say = progress or (lambda message: None)
    rng = random.Random(seed)
    repo = _Repo(directory, rng)
    say(f"building a repository with {commits} commits in {directory}")
    repo.commit({"src/app/__init__.py": "", **{f"src/app/module{m}.py": _lines(30, "init") for m in range(8)},
                 CI_FILES[0]: _lines(40, "ci"), "pyproject.toml": _lines(20, "build"), "README.md": "# demo\n"},
                "initial import", MAINTAINERS[0])
    outcomes: list[BuildRecord] = []
    seen: set[str] = set()
    failing = False
    for i in range(commits):
        files, message, author, risky = _change(repo, i)
        newcomer = author not in seen and author in NEWCOMERS
        seen.add(author)
        sha = repo.commit(files, message, author)
        size = sum(text.count("\n") for text in files.values())
        p = 0.04 + 0.45 * risky + 0.2 * newcomer + 0.1 * (size > 250) + (0.35 if failing else 0.0)
        failing = rng.random() < min(p, 0.95)
        outcomes.append(BuildRecord(commit=sha, status="fail" if failing else "pass", source="demo", branch="main",
                                    started_at=repo.clock + 60, finished_at=repo.clock + 60 + rng.randint(300, 900)))
    say(f"recording {len(outcomes)} simulated CI outcomes and computing their features")
    target = open_for_repo(paths.repo_store_file(os.path.join(directory, ".git")), directory)
    try:
        target.store.add_builds(target.repo_id, outcomes)
        compute_build_features(target, directory)
        table = ci_table(target.store, target.repo_id)
    finally:
        target.store.close()
    say("training a model on them (time-ordered validation)")
    info = git.repo_info(directory)
    model_path = paths.repo_model(info.common_dir)
    trained = run_train(table, "ci", ["demo"], model_path,
                        candidates=("forest", "gbdt", "logistic", "parrot", "rule+gbdt"))
    base = git.run(["rev-parse", "HEAD"], directory).decode().strip()
    low = _pending(repo, info, base, "small-fix", {"src/app/module3.py": _lines(34, "pending")},
                   "small fix in module3", MAINTAINERS[1])
    high = _pending(repo, info, base, "new-ci", {CI_FILES[0]: _lines(380, "pending"), "requirements.txt":
                                                  _lines(150, "pending")}, "rework the CI pipeline",
                    "Newcomer Zoe <zoe@demo.example>")
    return DemoResult(directory, commits + 1, len(outcomes), sum(o.status == "fail" for o in outcomes),
                      trained.result.model.name, low, high)


def _pending(repo: _Repo, info: git.RepoInfo, base: str, branch: str, files: dict[str, str], message: str,
             author: str) -> GateReport:
    """Commit on a new branch (as a push would) and score it with the gate."""
    subprocess.run(["git", "checkout", "-q", "-b", branch, base], cwd=repo.path, check=True)
    tip = repo.commit(files, message, author)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=repo.path, check=True)
    settings = Settings()
    settings.db = paths.repo_store_file(info.common_dir)
    # Pushed a minute after it was committed: the demo's history is fixed in time, so is its "now".
    return evaluate([PushRange(tip=tip, exclude=(base,), label=f"{branch} ({message})", branch="main")],
                    settings, info, cwd=repo.path, now=repo.clock + 60)
