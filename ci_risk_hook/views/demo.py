"""`ci-risk demo`: a throw-away repository with a realistic history, trained on and scored in a minute.

It replaces the original demo's random table with real git: maintainers
making small source changes, newcomers, large CI-configuration and
dependency changes, tests and docs. CI outcomes are simulated from those
traits plus noise (and failures that linger until fixed), recorded in the
store, learnt by `train`, and two pending pushes are scored by the same gate
the hook runs. The history ends just before the demo runs, so `ci-risk
check` afterwards sees it as recent, as a real repository's would be.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from typing import Any, Callable, NamedTuple

from ci_risk_hook import paths
from ci_risk_hook.config import Settings
from ci_risk_hook.gate.evaluate import GateReport, evaluate
from ci_risk_hook.git import repo as git
from ci_risk_hook.git.ranges import PushRange
from ci_risk_hook.model.backtest import BacktestResult
from ci_risk_hook.model.dataset import Table, ci_table
from ci_risk_hook.model.training import TrainError
from ci_risk_hook.model.workflow import run_backtest, run_train
from ci_risk_hook.outcomes.record import compute_build_features, open_for_repo
from ci_risk_hook.outcomes.records import BuildRecord

MAINTAINERS = ("Ada Lovelace <ada@demo.example>", "Grace Hopper <grace@demo.example>", "Alan Kay <alan@demo.example>")
NEWCOMERS = tuple(
    f"Newcomer {n} <{n.lower()}@demo.example>"
    for n in ("Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea")
)
GAP = (1800, 6 * 3600)  # seconds between two commits
CI_FILES = (".github/workflows/tests.yml", ".github/workflows/release.yml", ".github/workflows/lint.yml")
NEW_PIPELINE = ".github/workflows/ci.yml"  # the newcomer's pending push: a CI configuration with no history yet
BUILD_FILES = ("pyproject.toml", "requirements.txt", "requirements-dev.txt")
# Learnt from the demo's own history only: the bundled model knows nothing of these simulated traits.
CANDIDATES = ("forest", "gbdt", "logistic", "parrot", "rule+gbdt")


class DemoResult(NamedTuple):
    directory: str
    commits: int
    builds: int
    failures: int
    chosen: str
    low: GateReport
    high: GateReport
    store: str  # the demo's own outcomes store, which `.git/ci-risk/store` points to
    backtest: dict[str, Any] | None  # the replayed history, also kept in the model's provenance


def _lines(n: int, tag: str) -> str:
    return "".join(f"{tag} line {i}\n" for i in range(n))


class _Repo:
    def __init__(self, path: str, rng: random.Random, gaps: list[int], end: int) -> None:
        self.path = path
        self.rng = rng
        self.gaps = gaps
        # The gaps are drawn first, so the history can end at `end` (a minute before the demo scores).
        self.clock = end - sum(gaps)
        subprocess.run(["git", "init", "-q", "-b", "main", path], check=True)

    def write(self, name: str, text: str) -> None:
        target = os.path.join(self.path, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(text)

    def commit(self, files: dict[str, str], message: str, author: str) -> str:
        for name, text in files.items():
            self.write(name, text)
        self.clock += self.gaps.pop(0)
        name, _, email = author.partition(" <")
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email.rstrip(">"),
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email.rstrip(">"),
            "GIT_AUTHOR_DATE": f"{self.clock} +0000",
            "GIT_COMMITTER_DATE": f"{self.clock} +0000",
        }
        subprocess.run(["git", "add", "-A"], cwd=self.path, check=True, env=env)
        subprocess.run(
            ["git", "-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-m", message],
            cwd=self.path,
            check=True,
            env=env,
        )
        return git.run(["rev-parse", "HEAD"], self.path).decode().strip()


def _change(repo: _Repo, i: int) -> tuple[dict[str, str], str, str, int]:
    """One commit's files, message and author, and how many kinds of configuration it changes (CI, build)."""
    rng = repo.rng
    if rng.random() < 0.22:
        author = rng.choice(NEWCOMERS) if rng.random() < 0.7 else rng.choice(MAINTAINERS)
        kinds = [CI_FILES, BUILD_FILES]
        rng.shuffle(kinds)
        files = {rng.choice(kinds[0]): _lines(rng.randint(5, 300), f"cfg{i}")}
        if rng.random() < 0.35:  # the pipeline and the dependencies at once
            files[rng.choice(kinds[1])] = _lines(rng.randint(5, 200), f"dep{i}")
        if rng.random() < 0.5:
            files[f"src/app/module{rng.randint(0, 7)}.py"] = _lines(rng.randint(20, 200), f"v{i}")
        message = rng.choice(["rework CI", "bump dependencies", "new build matrix", "pin tooling"])
        return files, message, author, 1 + (len([f for f in files if not f.startswith("src/")]) > 1)
    author = rng.choice(MAINTAINERS) if rng.random() < 0.85 else rng.choice(NEWCOMERS)
    module = rng.randint(0, 7)
    # Now and then a large refactoring: size alone must not give the risky kind away.
    size = rng.randint(150, 400) if rng.random() < 0.12 else rng.randint(10, 60)
    files = {f"src/app/module{module}.py": _lines(size, f"v{i}")}
    if rng.random() < 0.6:
        files[f"tests/test_module{module}.py"] = _lines(rng.randint(5, 30), f"t{i}")
    if rng.random() < 0.2:
        files["docs/guide.md"] = _lines(rng.randint(3, 40), f"d{i}")
    return files, rng.choice(["small fix", "tidy module", "add test", "improve docs", "refactor helper"]), author, 0


def failure_chance(
    config_kinds: int, first_commit_of_newcomer: bool, size: int, untested: bool, previous_failed: bool
) -> float:
    """The simulated CI: traits a model can see in the change dominate; a failure lingers a little, plus noise."""
    p = (
        0.01
        + 0.45 * (config_kinds > 0)
        + 0.2 * (config_kinds > 1)
        + 0.3 * first_commit_of_newcomer
        + 0.15 * (size > 250)
        + 0.08 * untested
        + 0.08 * previous_failed
    )
    return min(p, 0.95)


def build(
    directory: str,
    *,
    seed: int = 7,
    commits: int = 300,
    now: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """The repository, its outcomes, a model and a backtest; same `seed` and `now`, same everything."""
    say = progress or (lambda message: None)
    rng = random.Random(seed)
    end = int(time.time() if now is None else now) - 60
    timing = random.Random(seed + 1)  # apart from `rng`, so the whole timeline is known before the first commit
    gaps = [timing.randint(*GAP) for _ in range(commits + 3)]  # the history and the two pending pushes
    repo = _Repo(directory, rng, gaps, end)
    say(f"building a repository with {commits} commits in {directory}")
    repo.commit(
        {
            "src/app/__init__.py": "",
            **{f"src/app/module{m}.py": _lines(30, "init") for m in range(8)},
            CI_FILES[0]: _lines(40, "ci"),
            "pyproject.toml": _lines(20, "build"),
            "README.md": "# demo\n",
        },
        "initial import",
        MAINTAINERS[0],
    )
    outcomes: list[BuildRecord] = []
    seen: set[str] = set()
    failing = False
    for i in range(commits):
        files, message, author, config_kinds = _change(repo, i)
        newcomer = author not in seen and author in NEWCOMERS
        seen.add(author)
        sha = repo.commit(files, message, author)
        size = sum(text.count("\n") for text in files.values())
        untested = not any(name.startswith("tests/") for name in files)
        failing = rng.random() < failure_chance(config_kinds, newcomer, size, untested, failing)
        outcomes.append(
            BuildRecord(
                commit=sha,
                status="fail" if failing else "pass",
                source="demo",
                branch="main",
                started_at=repo.clock + 60,
                finished_at=repo.clock + 60 + rng.randint(300, 900),
            )
        )
    say(f"recording {len(outcomes)} simulated CI outcomes and computing their features")
    info = git.repo_info(directory)
    store = paths.repo_store_file(info.common_dir)
    # Always the demo's own store (never a shared one named by CI_RISK_DB), and the pointer says so.
    target = open_for_repo(store, directory, records=True)
    try:
        target.store.add_builds(target.repo_id, outcomes)
        compute_build_features(target, directory)
        table = ci_table(target.store, target.repo_id)
    finally:
        target.store.close()
    say("replaying the history (each build predicted from the builds before it) and training a model")
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    # A few hundred rows: threads cost more than they save, and on a busy machine OpenMP spins (3x slower).
    with threadpool_limits(limits=1):
        replay = _replay(table, say)
        model_path = paths.repo_model(info.common_dir)
        # Warn where 80 % of failures are caught: at 90 % the simulated noise puts nine pushes in ten over it.
        trained = run_train(
            table, "ci", ["demo"], model_path, candidates=CANDIDATES, backtest_result=replay, target_recall=0.8
        )
    base = git.run(["rev-parse", "HEAD"], directory).decode().strip()
    low = _pending(
        repo,
        store,
        info,
        base,
        "small-fix",
        {"src/app/module3.py": _lines(34, "pending"), "tests/test_module3.py": _lines(12, "pending")},
        "small fix in module3, with its test",
        MAINTAINERS[1],
    )
    high = _pending(
        repo,
        store,
        info,
        base,
        "new-ci",
        {NEW_PIPELINE: _lines(380, "pending"), "requirements-ci.txt": _lines(150, "pending")},
        "a new CI pipeline and its dependencies",
        "Newcomer Zoe <zoe@demo.example>",
    )
    return DemoResult(
        directory,
        commits + 1,
        len(outcomes),
        sum(o.status == "fail" for o in outcomes),
        trained.result.model.name,
        low,
        high,
        store,
        replay.as_dict() if replay else None,
    )


def _replay(table: Table, say: Callable[[str], None]) -> BacktestResult | None:
    try:
        replay = run_backtest(table, candidates=CANDIDATES)
    except TrainError as exc:  # a short demo (--commits 60) may have too few builds to replay
        say(f"no backtest: {exc}")
        return None
    say(
        f"backtest: ROC-AUC {replay.model.roc_auc:.3f} against {replay.parrot.roc_auc:.3f} "
        "for the previous build's outcome"
    )
    return replay


def _pending(
    repo: _Repo,
    store: str,
    info: git.RepoInfo,
    base: str,
    branch: str,
    files: dict[str, str],
    message: str,
    author: str,
) -> GateReport:
    """Commit on a new branch (as a push would) and score it with the gate."""
    subprocess.run(["git", "checkout", "-q", "-b", branch, base], cwd=repo.path, check=True)
    tip = repo.commit(files, message, author)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=repo.path, check=True)
    settings = Settings()
    settings.db = store
    # Pushed a minute after it was committed (the last one a minute before the demo's `now`).
    return evaluate(
        [PushRange(tip=tip, exclude=(base,), label=f"{branch} ({message})", branch="main")],
        settings,
        info,
        cwd=repo.path,
        now=repo.clock + 60,
    )
