"""Several CI runners of two repositories write outcomes into one PostgreSQL history at once; the retrain reads all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ci_risk_hook.outcomes.store import open_store
from testing.modelkit import grow_history
from testing.postgres import fresh_schema
from testing.repos import make_repo

CI_RISK = str(Path(sys.executable).parent / "ci-risk")
RUNNERS = 4  # processes per repository


def runner(repo: Path, url: str, commits: list[tuple[str, int]], job: str) -> subprocess.Popen[bytes]:
    """One "CI runner": a shell loop of `ci-risk record`, one process per outcome, as CI steps run it."""
    steps = [
        f"{CI_RISK} record --commit {sha} --status {'fail' if label else 'pass'} --branch main "
        f"--job-id {job}-{i} --duration {300 + i}"
        for i, (sha, label) in enumerate(commits)
    ]
    env = {**os.environ, "CI_RISK_DB": url}
    return subprocess.Popen(["sh", "-ec", " && ".join(steps)], cwd=repo, env=env, stdout=subprocess.DEVNULL)


def test_concurrent_runners_lose_nothing_and_the_retrain_reads_them_all(tmp_path: Path) -> None:
    with fresh_schema() as url:
        repos = []
        for name, seed in (("alpha", 3), ("beta", 8)):
            repo = make_repo(tmp_path / name)
            repo.commit({"NAME": name + "\n"}, "root")
            labels = list(grow_history(repo, commits=48, seed=seed).items())
            repos.append((repo, labels))
        procs = [
            runner(repo.path, url, labels[k::RUNNERS], f"{repo.path.name}-runner{k}")
            for repo, labels in repos
            for k in range(RUNNERS)
        ]
        assert [p.wait(timeout=600) for p in procs] == [0] * len(procs)

        store = open_store(url)
        try:
            stored = {
                (r[0], r[1]): int(r[2])
                for r in store.execute(
                    """SELECT p.name, b.status, COUNT(*) FROM builds b JOIN repositories p ON p.id = b.repo_id
                       JOIN build_features f ON f.build_id = b.id GROUP BY p.name, b.status"""
                ).fetchall()
            }
        finally:
            store.close()
        for repo, labels in repos:
            fails = sum(label for _, label in labels)
            assert stored.get((repo.path.name, "fail"), 0) == fails
            assert stored.get((repo.path.name, "pass"), 0) == len(labels) - fails

        out = tmp_path / "org-model.json"
        done = subprocess.run(
            [CI_RISK, "retrain", "--all-repos", "--db", url, "--out", str(out)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert "trained on 96 builds of 2 repositories" in done.stdout
        provenance = json.loads(out.read_text())["provenance"]
        assert sorted(provenance["repositories"]) == ["alpha", "beta"] and provenance["rows"] == 96


def test_retrain_all_repos_outside_a_checkout_needs_out(tmp_path: Path) -> None:
    done = subprocess.run(
        [CI_RISK, "retrain", "--all-repos", "--db", str(tmp_path / "h.sqlite")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--all-repos needs --out FILE" in done.stderr
