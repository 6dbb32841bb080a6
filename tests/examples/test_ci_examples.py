"""The example CI files in examples/ci run as written: their commands, under each CI system's variables.

Each test reads the example file, takes its ci-risk steps exactly as a user
copies them (only the `${{ }}` expressions GitHub would fill in are filled in,
from a table that fails the test on any expression it does not know), and
runs them with bash in a CI-like checkout of a real repository: a depth-1
clone, the CI system's variables and event file, a shared PostgreSQL store,
the team model published on a real S3 server (moto) and signed. The install
steps are not run (the package under test is installed); their extras are
checked against setup.cfg.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest
import yaml

from testing.modelkit import grow_history
from testing.postgres import fresh_schema
from testing.published import artifact_variant, aws_env
from testing.repos import REPO_ROOT, Repo, built_once, lines, make_repo, shallow_clone

EXAMPLES = REPO_ROOT / "examples" / "ci"
BIN = str(Path(sys.executable).parent)
HASH_KEY = "an example hashing key of the team"
PASSING_TEST = "def test_app():\n    assert True\n"
FAILING_TEST = "def test_app():\n    assert False\n"


def _extras() -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    return set(parser["options.extras_require"])


def assert_installable(command: str) -> None:
    """An install line names only extras ci-risk declares."""
    for spec in re.findall(r'"ci-risk\[([^\]]*)\]"', command):
        unknown = set(spec.split(",")) - _extras()
        assert not unknown, f"{command!r} installs unknown extras {sorted(unknown)}"


def bash(command: str, cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-c", command], cwd=cwd, env=dict(env), capture_output=True, text=True)


# -- the project, its team store, its team model ------------------------------------------------


@pytest.fixture
def upstream(tmp_path: Path) -> Repo:
    """A project with a pytest suite and 12 commits of history on main."""
    r = make_repo(tmp_path / "upstream")
    built_once(r, "examples upstream", _twelve_commits)
    return r


def _twelve_commits(r: Repo) -> None:
    r.commit({"app.py": lines(30), "test_app.py": PASSING_TEST}, "initial import", author="Ann <ann@example.com>")
    for i in range(11):
        r.commit({"app.py": lines(31 + i)}, f"improve app {i}", author="Ann <ann@example.com>")


@pytest.fixture
def team_store() -> Iterator[str]:
    with fresh_schema("ci_risk_examples") as url:
        yield url


@pytest.fixture
def signing(tmp_path: Path) -> tuple[Path, str]:
    """A signing key made by `ci-risk model keygen`: (private key file, public key line)."""
    key = tmp_path / "signing-key.pem"
    made = subprocess.run([f"{BIN}/ci-risk", "model", "keygen", str(key)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    public = re.search(r"ci-risk-ed25519:\S+", made.stdout)
    assert public, made.stdout
    return key, public.group(0)


@pytest.fixture
def team_model(s3_bucket: str, signing: tuple[Path, str], tmp_path: Path) -> str:
    """A signed team model published to the S3 bucket: its source URL."""
    source = f"s3://{s3_bucket}/ci-risk"
    model = tmp_path / "team-model.json"
    model.write_bytes(artifact_variant(0.42))
    published = subprocess.run(
        [f"{BIN}/ci-risk", "model", "publish", source, "--model", str(model), "--sign", str(signing[0])],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert published.returncode == 0, published.stderr
    return source


def ci_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GITLAB_", "CI_", "JENKINS"))}
    for name in ("CI_RISK_HOME", "CI_RISK_CONFIG", "CI_RISK_INDEX_BUDGET", "CI_RISK_STORE_BUDGET", "CI_RISK_CACHE"):
        if name in os.environ:
            env[name] = os.environ[name]
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def builds(store_url: str) -> list[tuple[Any, ...]]:
    """The recorded builds; none while nothing was recorded (the gate creates no tables in an empty database)."""
    import psycopg

    with psycopg.connect(store_url) as conn:
        if conn.execute("SELECT to_regclass('builds')").fetchone() == (None,):
            return []
        return list(
            conn.execute("SELECT commit_sha, status, branch, job_id, attempt FROM builds ORDER BY id").fetchall()
        )


def stored_authors(store_url: str) -> list[str]:
    import psycopg

    with psycopg.connect(store_url) as conn:
        rows = conn.execute("SELECT author FROM build_features").fetchall()
    return [row[0] for row in rows if row[0] is not None]


# -- GitHub Actions ---------------------------------------------------------------------------------


def github_steps(name: str, job: str) -> list[dict[str, Any]]:
    workflow = yaml.safe_load((EXAMPLES / name).read_text())
    steps = workflow["jobs"][job]["steps"]
    assert isinstance(steps, list)
    return steps


def github_job_env(name: str, job: str, values: Mapping[str, str]) -> dict[str, str]:
    workflow = yaml.safe_load((EXAMPLES / name).read_text())
    return {key: fill(str(value), values) for key, value in workflow["jobs"][job].get("env", {}).items()}


def fill(text: str, values: Mapping[str, str]) -> str:
    """GitHub's `${{ expr }}` from the table; an expression the table lacks fails the test."""

    def one(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        assert expr in values, f"the example uses ${{{{ {expr} }}}}, which this test does not know"
        return values[expr]

    return re.sub(r"\$\{\{(.*?)\}\}", one, text)


def run_github_job(
    steps: list[dict[str, Any]], cwd: Path, env: dict[str, str], values: dict[str, str]
) -> dict[str, Any]:
    """Run the `run:` steps in order as GitHub would: `if: always()` steps run after a failure, others stop."""
    results: dict[str, Any] = {}
    failed = False
    for step in steps:
        if "uses" in step:
            continue
        command = step["run"]
        if command.lstrip().startswith("pip install"):
            assert_installable(command)
            continue
        condition = str(step.get("if", ""))
        if failed and condition != "always()":
            if "id" in step:
                values[f"steps.{step['id']}.outcome"] = "skipped"
            continue
        done = bash(fill(command, values), cwd, env)
        results[step.get("id") or step["name"]] = done
        if "id" in step:
            values[f"steps.{step['id']}.outcome"] = "success" if done.returncode == 0 else "failure"
        failed = failed or done.returncode != 0
    return results


def github_push(
    tmp_path: Path,
    upstream: Repo,
    store: str,
    source: str,
    public_key: str,
    run_id: str,
    test_source: str,
    aws: Mapping[str, str],
) -> tuple[dict[str, Any], str, Path]:
    """A developer pushes one commit to main; the example workflow runs on it in a depth-1 checkout."""
    before = upstream.head()
    after = upstream.commit({"app.py": lines(60), "test_app.py": test_source}, f"change for run {run_id}")
    checkout = shallow_clone(upstream, tmp_path / f"checkout-{run_id}", "main")
    event = tmp_path / f"event-{run_id}.json"
    event.write_text(json.dumps({"before": before, "after": after, "ref": "refs/heads/main", "forced": False}))
    summary = tmp_path / f"summary-{run_id}.md"
    values = {
        "secrets.CI_RISK_DB": store,
        "secrets.CI_RISK_HASH_AUTHORS_KEY": HASH_KEY,
        "vars.CI_RISK_MODEL_SOURCE": source,
        "vars.CI_RISK_TRUSTED_KEYS": public_key,
    }
    env = ci_env(
        {
            **aws,
            **github_job_env("github-actions.yml", "tests", values),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_SHA": after,
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_REF_NAME": "main",
            "GITHUB_REPOSITORY": "example/app",
            "GITHUB_RUN_ID": run_id,
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_JOB": "tests",
            "GITHUB_STEP_SUMMARY": str(summary),
        }
    )
    results = run_github_job(github_steps("github-actions.yml", "tests"), checkout.path, env, values)
    return results, after, summary


def test_github_workflow_gates_with_the_team_model_then_records_the_tests_outcome(
    tmp_path: Path,
    upstream: Repo,
    team_store: str,
    team_model: str,
    signing: tuple[Path, str],
    moto_endpoint: str,
) -> None:
    aws = aws_env(moto_endpoint)
    results, after, summary = github_push(
        tmp_path, upstream, team_store, team_model, signing[1], "9001", FAILING_TEST, aws
    )
    gate = results["ci-risk gate"]
    assert gate.returncode == 0, gate.stderr  # the team model's thresholds do not block this change
    assert "GitHub Actions: push" in gate.stderr
    shown = team_model.replace("-", "\\-")  # the summary escapes Markdown
    assert f"| model | team \\({shown}\\)" in summary.read_text()  # pulled, verified and used
    assert "(warn at 0.42)" in gate.stdout  # the team model's own thresholds
    assert results["tests"].returncode != 0  # the project's own test fails
    assert [row[:5] for row in builds(team_store)] == [(after, "fail", "main", "9001/tests", 1)]
    authors = stored_authors(team_store)
    assert authors and not any("@" in a for a in authors)  # the shared store holds keyed hashes only

    # The same run's record step again (a rerun of the step): still one row.
    values = {"steps.tests.outcome": "failure"}
    step = github_steps("github-actions.yml", "tests")[-1]
    env = ci_env(
        {
            **aws,
            **github_job_env(
                "github-actions.yml",
                "tests",
                {
                    "secrets.CI_RISK_DB": team_store,
                    "secrets.CI_RISK_HASH_AUTHORS_KEY": HASH_KEY,
                    "vars.CI_RISK_MODEL_SOURCE": team_model,
                    "vars.CI_RISK_TRUSTED_KEYS": signing[1],
                },
            ),
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_EVENT_PATH": str(tmp_path / "event-9001.json"),
            "GITHUB_SHA": after,
            "GITHUB_REF_NAME": "main",
            "GITHUB_REPOSITORY": "example/app",
            "GITHUB_RUN_ID": "9001",
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_JOB": "tests",
        }
    )
    again = bash(fill(step["run"], values), tmp_path / "checkout-9001", env)
    assert again.returncode == 0, again.stderr
    assert len(builds(team_store)) == 1


def test_github_workflow_blocked_by_the_gate_records_nothing(
    tmp_path: Path,
    upstream: Repo,
    team_store: str,
    team_model: str,
    signing: tuple[Path, str],
    moto_endpoint: str,
) -> None:
    """Block mode stops the job; the skipped tests are no outcome, so the history learns nothing false."""
    with open(tmp_path / "user.ini", "w") as fh:
        fh.write("[ci-risk]\nblock_at = 0.0\nwarn_at = 0.0\n")  # the team wants everything blocked today
    aws = {**aws_env(moto_endpoint), "CI_RISK_CONFIG": str(tmp_path / "user.ini")}
    results, _, summary = github_push(tmp_path, upstream, team_store, team_model, signing[1], "77", PASSING_TEST, aws)
    assert results["ci-risk gate"].returncode == 1
    assert "::error" in results["ci-risk gate"].stdout
    assert "tests" not in results
    assert "not an outcome" in results["Record the outcome"].stdout + results["Record the outcome"].stderr
    assert builds(team_store) == []


# -- GitLab CI ----------------------------------------------------------------------------------------


def gitlab_job(name: str) -> dict[str, Any]:
    pipeline = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())
    job = pipeline[name]
    assert isinstance(job, dict)
    return job


def gitlab_script(lines_: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """GitLab runs a job's script lines in one shell, stopping at the first that fails."""
    for line in lines_:
        if line.startswith("pip install"):
            assert_installable(line)
    runnable = [line for line in lines_ if not line.startswith("pip install")]
    return bash("\n".join(runnable), cwd, env)


def test_gitlab_pipeline_gates_then_records_in_after_script(
    tmp_path: Path,
    upstream: Repo,
    team_store: str,
    team_model: str,
    signing: tuple[Path, str],
    moto_endpoint: str,
) -> None:
    before = upstream.head()
    after = upstream.commit({"app.py": lines(70)}, "a change")
    checkout = shallow_clone(upstream, tmp_path / "gitlab-checkout", "main", depth=3)
    variables = {k: str(v) for k, v in yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())["variables"].items()}
    env = ci_env(
        {
            **aws_env(moto_endpoint),
            **variables,
            "CI_RISK_DB": team_store,
            "CI_RISK_HASH_AUTHORS_KEY": HASH_KEY,
            "CI_RISK_MODEL_SOURCE": team_model,
            "CI_RISK_TRUSTED_KEYS": signing[1],
            "CI": "true",
            "GITLAB_CI": "true",
            "CI_PIPELINE_SOURCE": "push",
            "CI_COMMIT_SHA": after,
            "CI_COMMIT_BEFORE_SHA": before,
            "CI_COMMIT_REF_NAME": "main",
            "CI_PROJECT_PATH": "example/app",
            "CI_PIPELINE_ID": "501",
            "CI_JOB_ID": "7001",
            "CI_JOB_NAME": "tests",
        }
    )
    gate = gitlab_script(gitlab_job("ci-risk-gate")["script"], checkout.path, env)
    assert gate.returncode == 0, gate.stderr
    assert "section_start:" in gate.stdout and "GitLab CI: push" in gate.stderr
    assert "(warn at 0.42)" in gate.stdout  # the team model pulled from S3, with its own thresholds

    tests = gitlab_job("tests")
    for line in tests["before_script"]:
        assert_installable(line)
    ran = gitlab_script(tests["script"], checkout.path, env)
    assert ran.returncode == 0, ran.stdout
    status = "success" if ran.returncode == 0 else "failed"
    recorded = gitlab_script(tests["after_script"], checkout.path, {**env, "CI_JOB_STATUS": status})
    assert recorded.returncode == 0, recorded.stderr
    assert [row[:5] for row in builds(team_store)] == [(after, "pass", "main", "501/7001", 1)]


# -- Jenkins ------------------------------------------------------------------------------------------


def jenkins_steps() -> tuple[dict[str, str], list[str]]:
    """The Jenkinsfile's environment block (name -> credentials id or literal) and its `sh '...'` steps."""
    text = (EXAMPLES / "Jenkinsfile").read_text()
    environment = dict(re.findall(r"^\s*([A-Z_]+) = (?:credentials\('([^']*)'\)|'[^']*')", text, re.M))
    literals = dict(re.findall(r"^\s*([A-Z_]+) = '([^']*)'", text, re.M))
    environment.update(literals)
    return environment, re.findall(r"^\s*sh '([^']*)'", text, re.M)


def test_jenkins_pipeline_gates_then_runs_and_records_the_tests(
    tmp_path: Path, upstream: Repo, team_store: str
) -> None:
    previous = upstream.head()
    tip = upstream.commit({"app.py": lines(80), "test_app.py": FAILING_TEST}, "break the app")
    checkout = tmp_path / "jenkins-workspace"
    subprocess.run(["git", "clone", "-q", f"file://{upstream.path}", str(checkout)], check=True)
    environment, steps = jenkins_steps()
    credentials = {"ci-risk-db": team_store, "ci-risk-hash-key": HASH_KEY}
    resolved = {name: credentials.get(value, value) for name, value in environment.items()}
    env = ci_env(
        {
            **resolved,
            "JENKINS_URL": "https://jenkins.example.com/",
            "GIT_COMMIT": tip,
            "GIT_PREVIOUS_SUCCESSFUL_COMMIT": previous,
            "GIT_BRANCH": "origin/main",
            "BRANCH_NAME": "main",
            "BUILD_ID": "42",
            "JOB_NAME": "app",
        }
    )
    assert len(steps) == 2, steps
    gate = bash(steps[0], checkout, env)
    assert gate.returncode == 0, gate.stderr
    assert "Jenkins" in gate.stderr
    tests = bash(steps[1], checkout, env)
    assert tests.returncode != 0  # `ci-risk run` exits with the tests' code
    assert [row[:5] for row in builds(team_store)] == [(tip, "fail", "main", "42/app", 1)]


# -- the scheduled retrain (GitHub schedule and GitLab schedule) ----------------------------------------


def test_scheduled_retrain_examples_publish_a_signed_model_the_gates_can_pull(
    tmp_path: Path,
    team_store: str,
    signing: tuple[Path, str],
    s3_bucket: str,
    moto_endpoint: str,
) -> None:
    hashing = {"CI_RISK_HASH_AUTHORS": "true", "CI_RISK_HASH_AUTHORS_KEY": HASH_KEY}
    for name, seed in (("alpha", 3), ("beta", 9)):  # two of the team's repositories, their CI outcomes recorded
        project = make_repo(tmp_path / name)
        labels = grow_history(project, commits=40, seed=seed, root=f"{name}\n")
        csv = tmp_path / f"{name}.csv"
        rows = [
            f"{sha},{'failed' if label else 'passed'},main,{1_600_000_000 + i * 3600},600"
            for i, (sha, label) in enumerate(labels.items())
        ]
        csv.write_text("commit,status,branch,started_at,duration_s\n" + "\n".join(rows) + "\n")
        imported = bash(
            f"ci-risk import {csv} --format csv", project.path, ci_env({"CI_RISK_DB": team_store, **hashing})
        )
        assert imported.returncode == 0, imported.stderr
    source = f"s3://{s3_bucket}/ci-risk"
    values = {
        "secrets.CI_RISK_DB": team_store,
        "secrets.CI_RISK_HASH_AUTHORS_KEY": HASH_KEY,
        "vars.CI_RISK_MODEL_SOURCE": source,
        "secrets.CI_RISK_SIGNING_KEY": signing[0].read_text(),
    }
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    env = ci_env(
        {
            **aws_env(moto_endpoint),
            **github_job_env("github-retrain.yml", "retrain", values),
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": "schedule",
            "RUNNER_TEMP": str(runner_temp),
        }
    )
    results = run_github_job(github_steps("github-retrain.yml", "retrain"), tmp_path, env, values)
    published = results["Retrain and publish"]
    assert published.returncode == 0, published.stderr
    assert "trained on 80 builds of 2 repositories" in published.stdout and "signed by key" in published.stdout

    pulled = bash(f"ci-risk model pull {source}", tmp_path, {**env, "CI_RISK_TRUSTED_KEYS": signing[1]})
    assert pulled.returncode == 0, pulled.stderr

    # GitLab's scheduled job: the signing key is a file variable (a path); it compares with what is published.
    key_file = tmp_path / "gitlab-file-variable"
    key_file.write_text(signing[0].read_text())
    gitlab_env = ci_env(
        {
            **aws_env(moto_endpoint),
            "CI_RISK_DB": team_store,
            "CI_RISK_HASH_AUTHORS": "true",
            "CI_RISK_HASH_AUTHORS_KEY": HASH_KEY,
            "CI_RISK_MODEL_SOURCE": source,
            "CI_RISK_TRUSTED_KEYS": signing[1],
            "CI_RISK_SIGNING_KEY": str(key_file),
            "GITLAB_CI": "true",
            "CI_PIPELINE_SOURCE": "schedule",
        }
    )
    again = gitlab_script(gitlab_job("ci-risk-retrain")["script"], tmp_path, gitlab_env)
    assert again.returncode == 0, again.stderr
    assert "published model: 0." in again.stdout or "kept the model published" in again.stdout
