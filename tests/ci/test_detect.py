"""What each CI system's recorded environment says: range, branch, ids; hostile variables and event files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ci_risk_hook.ci import detect
from ci_risk_hook.ci.detect import BRANCH, COMMIT, PARENT, REMOTES, CiEnvError

A, B, C = "a" * 40, "b" * 40, "c" * 40
ZEROS = "0" * 40


def github(tmp_path: Path, event_name: str, event: object, **extra: str) -> dict[str, str]:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(path),
        "GITHUB_SHA": C,
        "GITHUB_REF_NAME": "main",
        "GITHUB_RUN_ID": "123",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_JOB": "test",
        "GITHUB_REPOSITORY": "owner/project",
        **extra,
    }


def test_github_push_uses_before_and_after(tmp_path: Path) -> None:
    ctx = detect.detect(github(tmp_path, "push", {"before": A, "after": B, "ref": "refs/heads/main"}))
    assert ctx is not None
    assert (ctx.system, ctx.tip, ctx.base, ctx.base_kind, ctx.branch) == ("github", B, A, COMMIT, "main")
    assert (ctx.run_id, ctx.attempt, ctx.job, ctx.repository, ctx.job_key) == (
        "123",
        2,
        "test",
        "owner/project",
        "123/test",
    )
    assert "before..after from GITHUB_EVENT_PATH" in detect.describe(ctx)


def test_github_new_branch_scores_commits_on_no_other_branch(tmp_path: Path) -> None:
    ctx = detect.detect(github(tmp_path, "push", {"before": ZEROS, "after": B}, GITHUB_REF_NAME="topic"))
    assert ctx is not None and (ctx.tip, ctx.base, ctx.base_kind, ctx.branch) == (B, None, REMOTES, "topic")


def test_github_pull_request_uses_base_and_head_and_the_head_branch(tmp_path: Path) -> None:
    event = {"pull_request": {"base": {"sha": A, "ref": "main"}, "head": {"sha": B, "ref": "topic"}}}
    env = github(tmp_path, "pull_request", event, GITHUB_HEAD_REF="topic", GITHUB_REF_NAME="7/merge")
    ctx = detect.detect(env)
    assert ctx is not None and (ctx.tip, ctx.base, ctx.base_kind, ctx.branch) == (B, A, COMMIT, "topic")


def test_github_other_events_score_the_tip_alone(tmp_path: Path) -> None:
    ctx = detect.detect(github(tmp_path, "workflow_dispatch", {}))
    assert ctx is not None and (ctx.tip, ctx.base_kind) == (C, PARENT)


def test_gitlab_push_merge_request_and_new_branch() -> None:
    base = {
        "GITLAB_CI": "true",
        "CI_COMMIT_SHA": B,
        "CI_COMMIT_REF_NAME": "main",
        "CI_PIPELINE_ID": "9",
        "CI_JOB_ID": "77",
    }
    ctx = detect.detect({**base, "CI_COMMIT_BEFORE_SHA": A, "CI_PIPELINE_SOURCE": "push", "CI_PROJECT_PATH": "g/p"})
    assert ctx is not None and (ctx.base, ctx.base_kind, ctx.branch, ctx.job_key, ctx.repository) == (
        A,
        COMMIT,
        "main",
        "9/77",
        "g/p",
    )
    mr = {
        **base,
        "CI_COMMIT_BEFORE_SHA": ZEROS,
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_IID": "5",
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": A,
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "topic",
    }
    ctx = detect.detect(mr)
    assert ctx is not None and (ctx.base, ctx.base_kind, ctx.branch) == (A, COMMIT, "topic")
    ctx = detect.detect({**base, "CI_COMMIT_BEFORE_SHA": ZEROS, "CI_PIPELINE_SOURCE": "push"})
    assert ctx is not None and ctx.base_kind == REMOTES
    ctx = detect.detect({**base, "CI_COMMIT_BEFORE_SHA": ZEROS, "CI_PIPELINE_SOURCE": "schedule"})
    assert ctx is not None and ctx.base_kind == PARENT


def test_jenkins_previous_successful_commit_and_branch_not_head() -> None:
    env = {
        "JENKINS_URL": "https://ci.example/",
        "GIT_COMMIT": B,
        "GIT_PREVIOUS_COMMIT": C,
        "GIT_PREVIOUS_SUCCESSFUL_COMMIT": A,
        "GIT_BRANCH": "origin/release",
        "BUILD_ID": "41",
        "JOB_NAME": "project/release",
    }
    ctx = detect.detect(env)
    assert ctx is not None and (ctx.base, ctx.base_kind, ctx.branch, ctx.run_id) == (A, COMMIT, "release", "41")
    ctx = detect.detect({**env, "CHANGE_ID": "3", "CHANGE_TARGET": "main", "CHANGE_BRANCH": "PR-3"})
    assert ctx is not None and (ctx.base, ctx.base_kind, ctx.branch) == ("main", BRANCH, "PR-3")


def test_buildkite_azure_circleci() -> None:
    ctx = detect.detect(
        {
            "BUILDKITE": "true",
            "BUILDKITE_COMMIT": B,
            "BUILDKITE_BRANCH": "topic",
            "BUILDKITE_PULL_REQUEST": "12",
            "BUILDKITE_PULL_REQUEST_BASE_BRANCH": "main",
            "BUILDKITE_RETRY_COUNT": "1",
            "BUILDKITE_BUILD_ID": "u-1",
            "BUILDKITE_JOB_ID": "j-1",
        }
    )
    assert ctx is not None and (ctx.base, ctx.base_kind, ctx.attempt, ctx.branch) == ("main", BRANCH, 2, "topic")
    ctx = detect.detect(
        {
            "TF_BUILD": "True",
            "BUILD_SOURCEVERSION": B,
            "BUILD_SOURCEBRANCH": "refs/heads/dev",
            "BUILD_BUILDID": "5",
            "SYSTEM_JOBATTEMPT": "3",
        }
    )
    assert ctx is not None and (ctx.system, ctx.base_kind, ctx.branch, ctx.attempt) == ("azure", PARENT, "dev", 3)
    ctx = detect.detect({"CIRCLECI": "true", "CIRCLE_SHA1": B, "CIRCLE_BRANCH": "x", "CIRCLE_BUILD_NUM": "8"})
    assert ctx is not None and (ctx.system, ctx.tip, ctx.branch, ctx.job) == ("circleci", B, "x", "8")


def test_outside_ci_nothing_is_detected() -> None:
    assert detect.detect({"CI": "true", "HOME": "/root"}) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe garbage", "not JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (json.dumps({"before": 12, "after": "b" * 40}).encode(), "before is not a commit id: int"),
        (json.dumps({"before": "a" * 40, "after": "$(rm -rf /)"}).encode(), "after is not a commit id"),
        (b"[" * 100_000 + b"]" * 100_000, "GITHUB_EVENT_PATH"),
    ],
)
def test_hostile_event_files_are_one_line_errors(tmp_path: Path, content: bytes, message: str) -> None:
    env = github(tmp_path, "push", {})
    Path(env["GITHUB_EVENT_PATH"]).write_bytes(content)
    with pytest.raises(CiEnvError) as caught:
        detect.detect(env)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_huge_event_file_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ci_risk_hook.ci import github_event

    monkeypatch.setattr(github_event, "MAX_EVENT_BYTES", 1000)
    env = github(tmp_path, "push", {"before": A, "after": B, "padding": "x" * 5000})
    with pytest.raises(CiEnvError, match="larger than any GitHub event"):
        detect.detect(env)


def test_pull_request_without_shas_and_wrong_types(tmp_path: Path) -> None:
    for event in ({"pull_request": "yes"}, {"pull_request": {"base": {"sha": ["x"]}, "head": {"sha": B}}}):
        with pytest.raises(CiEnvError):
            detect.detect(github(tmp_path, "pull_request", event))


def test_hostile_variables(tmp_path: Path) -> None:
    with pytest.raises(CiEnvError, match="GITHUB_RUN_ATTEMPT"):
        detect.detect(github(tmp_path, "push", {"before": A, "after": B}, GITHUB_RUN_ATTEMPT="two"))
    with pytest.raises(CiEnvError, match="too long"):
        detect.detect(github(tmp_path, "push", {"before": A, "after": B}, GITHUB_REF_NAME="x" * 10_000))
    with pytest.raises(CiEnvError, match=r"CI_COMMIT_SHA: not a commit id: '\\x1b\[2J'"):
        detect.detect({"GITLAB_CI": "true", "CI_COMMIT_SHA": "\x1b[2J"})
    with pytest.raises(CiEnvError, match="GIT_COMMIT is not set"):
        detect.detect({"JENKINS_URL": "https://ci.example/"})


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"GITLAB_CI": "true", "CI_COMMIT_SHA": ZEROS}, "CI_COMMIT_SHA"),
        ({"JENKINS_URL": "https://ci.example/", "GIT_COMMIT": ZEROS}, "GIT_COMMIT"),
        ({"TF_BUILD": "True", "BUILD_SOURCEVERSION": ZEROS}, "BUILD_SOURCEVERSION"),
        ({"CIRCLECI": "true", "CIRCLE_SHA1": ZEROS}, "CIRCLE_SHA1"),
        ({"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "schedule", "GITHUB_SHA": ZEROS}, "GITHUB_SHA"),
    ],
)
def test_a_tip_of_all_zeros_is_a_usage_error_naming_the_variable(env: dict[str, str], name: str) -> None:
    """All zeros is git's "no commit": the job's tip is unknown, said in one line (it was an AssertionError)."""
    with pytest.raises(CiEnvError, match=f"^{name} is all zeros: cannot tell which commit"):
        detect.detect(env)


def test_an_event_path_that_is_not_a_file_never_blocks(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero", str(tmp_path)):
        env = github(tmp_path, "push", {})
        env["GITHUB_EVENT_PATH"] = path
        with pytest.raises(CiEnvError, match="not a regular file"):
            detect.detect(env)
    env["GITHUB_EVENT_PATH"] = str(tmp_path / "missing.json")
    with pytest.raises(CiEnvError, match="cannot read the event file"):
        detect.detect(env)
