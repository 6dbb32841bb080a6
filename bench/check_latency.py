"""Benchmark: wall time of `ci-risk check` over a 10-commit range of a large repository.

Prints, side by side over the same range: `python -c pass` (interpreter start),
`git diff --numstat` (the least any tool must do), and `ci-risk check` with a
100-tree RandomForest and the history features; plus the cold first run
(history index built from nothing) and the update after 10 new commits.

Usage: python bench/check_latency.py --repo /path/to/numpy [--runs 15]

The repository is a work-tree clone of a fetched numpy/numpy (>= 40,000
commits), kept outside this project. The timing model is trained on the
repository's own features with a proxy label (a later commit within 20 whose
subject speaks of a fix touches the same files); it exists to make the
timing realistic (model size, scoring, reasons), not to be accurate.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import common_dir, reset_repository

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


SCORED = "ci-risk: risk "  # what a check that really scored prints first


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, expect: str | None = None) -> float:
    """Seconds for one run; with `expect`, the run counts only if its output starts with it.

    A check that failed open (a bug, a missing model) exits 0 fast: timing
    it as a success would report the speed of an error message.
    """
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode(errors='replace')}")
    out = proc.stdout.decode(errors="replace")
    if expect is not None and not out.startswith(expect):
        raise SystemExit(
            f"{' '.join(cmd)} did not score (printed {out[:80]!r}; stderr "
            f"{proc.stderr.decode(errors='replace').strip()[:200]!r}): not timing a failure"
        )
    return elapsed


def median_ms(
    cmd: list[str], cwd: Path, runs: int, env: dict[str, str] | None = None, expect: str | None = None
) -> tuple[float, float, float]:
    times = sorted(timed(cmd, cwd, env, expect) for _ in range(runs))
    return statistics.median(times) * 1000, times[0] * 1000, times[-1] * 1000


def train_timing_model(repo: Path, out: Path, commits: int = 1500) -> None:
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    from ci_risk_hook.features.analysis import analyze
    from ci_risk_hook.features.extract import FEATURE_NAMES, FIX_RE, Limits
    from ci_risk_hook.git import repo as git
    from ci_risk_hook.git.ranges import PushRange
    from ci_risk_hook.model.export import export_model, write_artifact

    info = git.repo_info(str(repo))
    history = [c for c in git.iter_commits(["HEAD~200", "--first-parent", "--no-merges"], str(repo), max_count=commits)]
    history.reverse()  # oldest first
    rows, labels = [], []
    for i, commit in enumerate(history):
        if not commit.parents:
            continue
        touched = {f.path for f in commit.files}
        later = history[i + 1 : i + 21]
        label = int(any(FIX_RE.search(c.subject) and touched & {f.path for f in c.files} for c in later))
        result = analyze(PushRange(tip=commit.sha, exclude=(commit.parents[0],)), info, Limits(), cwd=str(repo))
        rows.append([np.nan if v is None else v for v in result.vector()])
        labels.append(label)
    forest = RandomForestClassifier(
        n_estimators=100, max_depth=12, min_samples_leaf=5, class_weight="balanced", random_state=0, n_jobs=2
    )
    forest.fit(np.array(rows, dtype=float), np.array(labels))
    artifact = export_model(
        forest,
        list(FEATURE_NAMES),
        provenance={
            "purpose": "latency benchmark only",
            "rows": len(labels),
            "positive_rate": sum(labels) / len(labels),
        },
    )
    write_artifact(artifact, out)


def install_fresh() -> str:
    """A non-editable `pip install .` in a fresh venv, as pre-commit installs the hook.

    Only the hook's runtime needs (click, platformdirs) go in: scikit-learn
    and pandas are never imported on this path. An editable install would
    add its import finder's cost (~9 ms) to every run.
    """
    venv = OUT / "venv"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "click", "platformdirs"], check=True)
    subprocess.run([*pip, "--no-deps", "--force-reinstall", str(HERE.parent)], check=True)
    return str(venv / "bin" / "ci-risk")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=os.environ.get("CI_RISK_BENCH_REPO"), required=False)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if args.repo is None or not (args.repo / ".git").exists():
        raise SystemExit("give --repo: a work-tree clone of numpy/numpy (git clone from the fetched mirror)")
    repo: Path = args.repo.resolve()
    ci_risk = install_fresh()
    n_commits = int(
        subprocess.run(
            ["git", "rev-list", "--count", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout
    )
    in_range = int(
        subprocess.run(
            ["git", "rev-list", "--count", "HEAD~10..HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout
    )
    OUT.mkdir(exist_ok=True)
    model = OUT / "timing-model.json"
    if not model.exists():
        print("training the timing model (once) ...", flush=True)
        train_timing_model(repo, model)
    # Time what users run: an installed package has bytecode compiled by pip,
    # so compile here too and let Python use it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["CI_RISK_MODEL"] = str(model)
    site = subprocess.run(
        [
            str(Path(ci_risk).parent / "python"),
            "-c",
            "import click, os; print(os.path.dirname(os.path.dirname(click.__file__)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run([sys.executable, "-m", "compileall", "-q", site], check=True, env=env)
    reset_repository(common_dir(repo))  # a cold index, and no outcomes store until asked for below
    cold = timed([ci_risk, "check", "--from", "HEAD~30", "--to", "HEAD~20"], repo, env, SCORED)
    update = timed([ci_risk, "check", "--from", "HEAD~20", "--to", "HEAD~10"], repo, env, SCORED)
    timed([ci_risk, "check", "--from", "HEAD~10", "--to", "HEAD"], repo, env, SCORED)  # brings the index to HEAD~10

    python = median_ms([str(Path(ci_risk).parent / "python"), "-c", "pass"], repo, args.runs, env)
    diff = median_ms(["git", "diff", "--numstat", "HEAD~10", "HEAD"], repo, args.runs, env)
    check = median_ms([ci_risk, "check", "--from", "HEAD~10", "--to", "HEAD"], repo, args.runs, env, SCORED)
    size_kb = model.stat().st_size / 1024
    bundled_env = {k: v for k, v in env.items() if k != "CI_RISK_MODEL"}
    bundled = median_ms([ci_risk, "check", "--from", "HEAD~10", "--to", "HEAD"], repo, args.runs, bundled_env, SCORED)

    # The same check with an outcomes store of 1,500 builds (synthetic
    # statuses, for timing only) feeding the build-history features.
    store = OUT / "timing-store.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(store) + suffix).unlink(missing_ok=True)
    shas = subprocess.run(
        ["git", "rev-list", "--first-parent", "-n", "1500", "HEAD~12"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[::-1]
    outcomes = OUT / "timing-outcomes.csv"
    rng = random.Random(1)
    outcomes.write_text(
        "commit,status,branch,started_at,duration_s\n"
        + "".join(
            f"{sha},{'failed' if rng.random() < 0.2 else 'passed'},main,{1_600_000_000 + i * 3600},600\n"
            for i, sha in enumerate(shas)
        )
    )
    store_env = {**env, "CI_RISK_DB": str(store)}
    subprocess.run(
        [ci_risk, "import", str(outcomes), "--format", "csv"],
        cwd=repo,
        env=store_env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with_store = median_ms([ci_risk, "check", "--from", "HEAD~10", "--to", "HEAD"], repo, args.runs, store_env, SCORED)

    print(
        f"repository: {repo} ({n_commits:,} commits); range HEAD~10..HEAD = {in_range} commits; {args.runs} runs each"
    )
    print(f"model: RandomForest 100 trees, {size_kb:,.0f} KiB artifact")
    print(f"{'what':<44}{'median ms':>10}{'min':>8}{'max':>8}")
    for label, (med, lo, hi) in (
        ("python -c pass", python),
        ("git diff --numstat HEAD~10 HEAD", diff),
        ("ci-risk check (warm index, history features)", check),
        ("  same, with a 1,500-build outcomes store", with_store),
        ("  same, with the bundled model (no store)", bundled),
    ):
        print(f"{label:<44}{med:>10.1f}{lo:>8.1f}{hi:>8.1f}")
    print(f"{'cold first run (index built from nothing)':<44}{cold * 1000:>10.0f}")
    print(f"{'first run after 10 new commits (index update)':<44}{update * 1000:>10.1f}")
    worst = max(check[0], with_store[0], bundled[0])
    print(f"target: median <= 100 ms -> {'MET' if worst <= 100 else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
