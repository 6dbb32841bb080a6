"""Several CI runners of two repositories write outcomes into one PostgreSQL history at once; the retrain reads all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ci_risk_hook.distribution.published import read_published
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


def test_concurrent_runners_lose_nothing_and_the_retrain_reads_them_all_and_publishes(
    tmp_path: Path, s3_bucket: str
) -> None:
    """The team loop end to end: runners record at once, the scheduled job retrains and publishes (signed) to S3."""
    key = tmp_path / "signing.pem"
    made = subprocess.run([CI_RISK, "model", "keygen", str(key)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    public = next(word for word in made.stdout.split() if word.startswith("ci-risk-ed25519:"))
    with fresh_schema() as url:
        repos = []
        for name, seed in (("alpha", 3), ("beta", 8)):
            repo = make_repo(tmp_path / name)
            labels = list(grow_history(repo, commits=48, seed=seed, root=name + "\n").items())
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
        dest = f"s3://{s3_bucket}/org"
        done = subprocess.run(
            [CI_RISK, "retrain", "--all-repos", "--db", url, "--out", str(out), "--publish", dest, "--sign", str(key)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert (
            "trained on 96 builds of 2 repositories" in done.stdout
            and "(published model: none published)" in done.stdout
        )
        provenance = json.loads(out.read_text())["provenance"]
        assert sorted(provenance["repositories"]) == ["alpha", "beta"] and provenance["rows"] == 96

        # What the runners' gates and the developers' hooks pull: the same model, verified with the team's key.
        pulled = subprocess.run(
            [CI_RISK, "model", "pull", dest],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "CI_RISK_TRUSTED_KEYS": public},
        )
        assert pulled.returncode == 0, pulled.stderr
        published = read_published(dest, trusted_keys=(public,))
        assert published is not None and published.artifact == json.loads(out.read_text())
        assert published.manifest["metrics"]["sampled_builds"] == 96

        # The next scheduled run compares with what is published, verified with the trusted key.
        again = subprocess.run(
            [CI_RISK, "retrain", "--all-repos", "--db", url, "--publish", dest, "--sign", str(key)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "CI_RISK_TRUSTED_KEYS": public},
        )
        assert again.returncode == 0, again.stderr
        assert "published model: 0." in again.stdout or "kept the model published" in again.stdout


def test_retrain_all_repos_outside_a_checkout_needs_out(tmp_path: Path) -> None:
    done = subprocess.run(
        [CI_RISK, "retrain", "--all-repos", "--db", str(tmp_path / "h.sqlite")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--all-repos needs --out FILE" in done.stderr


def test_publish_and_sign_go_with_all_repos(tmp_path: Path) -> None:
    for args in (["--publish", str(tmp_path / "d")], ["--all-repos", "--sign", str(tmp_path / "k")]):
        done = subprocess.run(
            [CI_RISK, "retrain", "--db", str(tmp_path / "h.sqlite"), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2, done.stderr
        assert "--all-repos" in done.stderr or "--sign needs --publish" in done.stderr


def test_a_published_model_that_fails_verification_stops_the_job_and_is_not_overwritten(tmp_path: Path) -> None:
    """A damaged or forged team model is an incident to look at: the job fails in one line and publishes nothing."""
    from testing.published import artifact_variant, write_by_hand

    dest = tmp_path / "published"
    write_by_hand(dest, artifact_variant(0.3))
    manifest = (dest / "manifest.json").read_bytes()
    victim = next((dest / "models").iterdir())
    victim.write_bytes(victim.read_bytes().replace(b'"warn":0.3', b'"warn":0.9'))  # the artifact altered in place
    with fresh_schema() as url:
        repo = make_repo(tmp_path / "alpha")
        labels = grow_history(repo, commits=40, seed=3, root="alpha\n")
        # The builds in one import (the runners' many processes are the test above's subject).
        csv = tmp_path / "outcomes.csv"
        rows = [f"{sha},{'failed' if label else 'passed'},main" for sha, label in labels.items()]
        csv.write_text("commit,status,branch\n" + "\n".join(rows) + "\n")
        imported = subprocess.run(
            [CI_RISK, "import", str(csv), "--format", "csv", "--db", url], cwd=repo.path, capture_output=True, text=True
        )
        assert imported.returncode == 0, imported.stderr
        done = subprocess.run(
            [CI_RISK, "retrain", "--all-repos", "--db", url, "--publish", str(dest)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("Error: ") and "does not match the manifest" in done.stderr  # before any training
    assert len(done.stderr.strip().splitlines()) == 1
    assert (dest / "manifest.json").read_bytes() == manifest and len(list((dest / "models").iterdir())) == 1
