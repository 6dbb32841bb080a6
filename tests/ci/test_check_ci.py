"""`check --ci` on real shallow clones under recorded CI environments: the range scored, deepening, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ci_risk_hook.ci import outputs
from ci_risk_hook.safetext import workflow_data, workflow_property
from testing.repos import Repo, lines, shallow_clone
from testing.repos import run_cli as run

ZEROS = "0" * 40


def github_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, event_name: str, event: dict, **extra: str) -> Path:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    summary = tmp_path / "summary.md"
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(path),
        "GITHUB_RUN_ID": "555",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_JOB": "gate",
        "GITHUB_REPOSITORY": "owner/upstream",
        "GITHUB_STEP_SUMMARY": str(summary),
        **extra,
    }.items():
        monkeypatch.setenv(name, value)
    return summary


def scored(out: str) -> dict:
    report = json.loads(out)
    assert len(report["ranges"]) == 1
    return report


def test_github_push_in_a_depth_1_clone_is_deepened_to_its_base(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = upstream.git("rev-parse", "main~4")
    after = upstream.head()
    clone = shallow_clone(upstream, tmp_path / "clone", "main")
    assert clone.git("rev-list", "--count", "HEAD") == "1"
    github_env(monkeypatch, tmp_path, "push", {"before": before, "after": after}, GITHUB_REF_NAME="main")
    monkeypatch.chdir(clone.path)
    code, out, err = run(["check", "--ci", "--format", "json"], capsys)
    assert code == 0, err
    report = scored(out)
    assert report["ranges"][0]["commits"] == [upstream.git("rev-parse", f"main~{i}") for i in range(4)]
    assert report["ci"]["system"] == "github" and report["ci"]["branch"] == "main"
    assert "GitHub Actions: push: before..after from GITHUB_EVENT_PATH" in err
    assert any("shallow clone: fetched the history the range needs" in n for n in report["notes"])
    assert not any("shallow-clone boundary" in n for n in report["ranges"][0]["notes"])
    assert clone.git("cat-file", "-t", before) == "commit"


def test_github_new_branch_scores_only_commits_on_no_other_branch(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tip = upstream.git("rev-parse", "feature")
    clone = shallow_clone(upstream, tmp_path / "clone", "feature")
    github_env(monkeypatch, tmp_path, "push", {"before": ZEROS, "after": tip}, GITHUB_REF_NAME="feature")
    monkeypatch.chdir(clone.path)
    code, out, err = run(["check", "--ci", "--format", "json"], capsys)
    assert code == 0, err
    assert scored(out)["ranges"][0]["commits"] == [upstream.git("rev-parse", f"feature~{i}") for i in range(3)]
    assert "new branch" in err


def test_github_pull_request_scores_from_the_merge_base(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base, head = upstream.head(), upstream.git("rev-parse", "feature")
    clone = shallow_clone(upstream, tmp_path / "clone", "main")  # the PR head is not even fetched
    event = {"pull_request": {"base": {"sha": base}, "head": {"sha": head}}}
    github_env(monkeypatch, tmp_path, "pull_request", event, GITHUB_HEAD_REF="feature", GITHUB_REF_NAME="1/merge")
    monkeypatch.chdir(clone.path)
    code, out, err = run(["check", "--ci", "--format", "json"], capsys)
    assert code == 0, err
    report = scored(out)
    assert report["ranges"][0]["commits"] == [upstream.git("rev-parse", f"feature~{i}") for i in range(3)]
    assert report["ci"]["branch"] == "feature"


def test_gitlab_push_and_merge_request(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clone = shallow_clone(upstream, tmp_path / "clone", "feature", depth=2)
    monkeypatch.chdir(clone.path)
    for name, value in {
        "GITLAB_CI": "true",
        "CI_COMMIT_SHA": upstream.git("rev-parse", "feature"),
        "CI_COMMIT_REF_NAME": "feature",
        "CI_PIPELINE_ID": "1",
        "CI_JOB_ID": "2",
        "CI_PIPELINE_SOURCE": "push",
        "CI_COMMIT_BEFORE_SHA": upstream.git("rev-parse", "feature~2"),
    }.items():
        monkeypatch.setenv(name, value)
    code, out, err = run(["check", "--ci", "--format", "json"], capsys)
    assert code == 0, err
    assert len(scored(out)["ranges"][0]["commits"]) == 2
    monkeypatch.setenv("CI_COMMIT_BEFORE_SHA", ZEROS)
    monkeypatch.setenv("CI_PIPELINE_SOURCE", "merge_request_event")
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", "4")
    monkeypatch.setenv("CI_MERGE_REQUEST_DIFF_BASE_SHA", upstream.git("merge-base", "main", "feature"))
    code, out, err = run(["check", "--ci", "--format", "json"], capsys)
    assert code == 0, err
    assert len(scored(out)["ranges"][0]["commits"]) == 3 and "merge request" in err
    code, out, err = run(["check", "--ci"], capsys)  # text on GitLab: a folded log section
    assert code == 0 and out.startswith("\x1b[0Ksection_start:") and "[collapsed=true]" in out.split("\n")[0]
    assert out.rstrip("\n").endswith(f"section_end:{out.split(':')[1]}:ci_risk\r\x1b[0K")


def test_jenkins_previous_successful_build(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(upstream.path)
    for name, value in {
        "JENKINS_URL": "https://jenkins.example/",
        "GIT_COMMIT": upstream.head(),
        "GIT_PREVIOUS_SUCCESSFUL_COMMIT": upstream.git("rev-parse", "main~6"),
        "GIT_BRANCH": "origin/main",
        "BUILD_ID": "17",
        "JOB_NAME": "upstream",
    }.items():
        monkeypatch.setenv(name, value)
    code, out, err = run(["check", "--ci", "--format", "json"], capsys)
    assert code == 0, err
    report = scored(out)
    assert len(report["ranges"][0]["commits"]) == 6 and report["ci"]["branch"] == "main"


def test_outside_ci_without_a_range_is_a_usage_error(upstream: Repo, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(upstream.path)
    code, _, err = run(["check", "--ci"], capsys)
    assert code == 2 and "no CI system detected" in err and "--from/--to" in err
    code, out, _ = run(["check", "--ci", "--from", "HEAD~2", "--format", "json"], capsys)
    assert code == 0 and len(scored(out)["ranges"][0]["commits"]) == 2


def test_a_hostile_event_file_never_fails_the_job(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    github_env(monkeypatch, tmp_path, "push", {})
    (tmp_path / "event.json").write_bytes(b"\x00{{{ not json")
    monkeypatch.chdir(upstream.path)
    code, out, err = run(["check", "--ci"], capsys)
    assert code == 0
    assert err.count("\n") == 1 and "GITHUB_EVENT_PATH: not JSON" in err and "Traceback" not in err
    assert out.startswith("::warning title=ci-risk did not check this change::")
    code, out, err = run(["check", "--ci", "--strict"], capsys)
    assert code == 3 and out.startswith("::error title=")


def test_step_summary_and_annotation_text(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A risky change: the annotation and the summary say exactly the score, decision, reasons, model, thresholds."""
    upstream.commit({"src/evil|`x`\n::error::.py": lines(400)}, "huge change")
    before, after = upstream.git("rev-parse", "HEAD~1"), upstream.head()
    summary = github_env(monkeypatch, tmp_path, "push", {"before": before, "after": after}, GITHUB_REF_NAME="main")
    monkeypatch.chdir(upstream.path)
    code, out, err = run(["check", "--ci", "--warn-at", "0", "--format", "json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["decision"] == "warn"
    entry = report["ranges"][0]
    score = entry["probability"]
    model = report["model"]
    code, out, _ = run(["check", "--ci", "--warn-at", "0"], capsys)
    annotation = out.rstrip("\n").split("\n")[-1]
    headline = f"ci-risk: risky: this change may fail CI (risk {score:.2f})"
    assert annotation.startswith(f"::warning title={workflow_property(headline)}::")
    assert annotation.startswith("::warning title=ci-risk%3A risky%3A this change may fail CI (risk ")
    message = annotation.split("::", 2)[2]
    parts = message.split("%0A")
    assert parts[0] == headline
    assert parts[1 : 1 + len(entry["reasons"])] == [
        workflow_data(f"{i}. {r['text']}".replace("\n", "\\n")) for i, r in enumerate(entry["reasons"], 1)
    ]
    assert parts[-1].startswith(f"model: {model['source']}") and parts[-1].endswith(f"(sha256 {model['sha256'][:12]})")
    assert "\n" not in message and "%0A" in message
    text = summary.read_text()
    shown = f"{score:.2f}".replace(".", "\\.")
    assert text.startswith(f"### ci\\-risk: risky: this change may fail CI \\(risk {shown}\\)\n\n| | |\n|---|---|\n")
    assert f"| score | {score:.2f} |" in text
    assert "| decision | warn (mode warn, exit 0) |" in text
    assert f"| thresholds | warn at 0.00, block at {report['block_at']:.2f} |" in text
    assert f"(sha256 {model['sha256'][:12]}\\) |" in text
    unit = "" if entry["contribution_space"] == "probability" else " log-odds"  # trees: probability; boosting: log-odds
    for i, reason in enumerate(entry["reasons"], 1):
        assert f"\n{i}. " in text and f"({reason['contribution']:+.2f}{unit})\n" in text
    assert "\n::error" not in text and "evil|" not in text


def test_annotation_escapes_untrusted_text_exactly() -> None:
    assert workflow_data("50% done\r\nnext::x") == "50%25 done%0D%0Anext::x"
    assert workflow_property("a: b, c%") == "a%3A b%2C c%25"


def test_output_file_holds_the_format_asked_for(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(upstream.path)
    target = tmp_path / "report.md"
    code, out, _ = run(["check", "--from", "HEAD~1", "--format", "markdown", "--output", str(target)], capsys)
    assert code == 0 and target.read_text().startswith("### ci\\-risk: ") and out.startswith("ci-risk: ")
    assert outputs.SECTION == "ci_risk"


def test_out_of_deepening_budget_it_scores_what_is_known_and_says_so(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clone = shallow_clone(upstream, tmp_path / "clone", "main")
    github_env(monkeypatch, tmp_path, "push", {"before": upstream.git("rev-parse", "main~4"), "after": upstream.head()})
    monkeypatch.setenv("CI_RISK_DEEPEN_BUDGET", "0")
    monkeypatch.chdir(clone.path)
    code, out, err = run(["check", "--ci", "--format", "json"], capsys)
    assert code == 0, err
    report = scored(out)
    assert report["ranges"][0]["commits"] == [upstream.head()]
    assert any("not fetched within the deepening budget" in n for n in report["notes"])
    assert any("history incomplete" in n and "budget" in n for n in report["notes"])
    assert clone.git("rev-list", "--count", "HEAD") == "1"  # nothing fetched


def test_markdown_escapes_untrusted_text_exactly() -> None:
    from ci_risk_hook.safetext import markdown

    assert markdown("a|b <img src=x> [l](u)\n# h `c` *d*") == (
        "a\\|b &lt;img src=x\\> \\[l\\]\\(u\\)\\\\n\\# h \\`c\\` \\*d\\*"
    )


def test_markdown_breaks_mentions_so_a_summary_pings_nobody() -> None:
    from ci_risk_hook.safetext import markdown

    assert markdown("@org/team and a@b") == "@\u200borg/team and a@\u200bb"


def test_a_file_named_like_a_team_mention_pings_nobody_from_the_step_summary(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream.commit({".github/workflows/@org/team.yml": lines(280), "requirements.txt": lines(120)}, "rework CI")
    before, after = upstream.git("rev-parse", "HEAD~1"), upstream.head()
    summary = github_env(monkeypatch, tmp_path, "push", {"before": before, "after": after}, GITHUB_REF_NAME="main")
    monkeypatch.chdir(upstream.path)
    code, out, err = run(["check", "--ci", "--warn-at", "0"], capsys)
    assert code == 0, err
    text = summary.read_text()
    assert "@org" not in text
    assert "@\u200borg/team" in text  # the file is named, as `@`, a zero-width space, `org/team`


def test_a_complete_clone_stays_complete(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """fetch-depth: 0 checkouts: fetching the other branches for a new branch must not make the clone shallow."""
    import subprocess

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--single-branch", "--branch", "feature", str(upstream.path), str(clone)])
    tip = upstream.git("rev-parse", "feature")
    github_env(monkeypatch, tmp_path, "push", {"before": ZEROS, "after": tip}, GITHUB_REF_NAME="feature")
    monkeypatch.chdir(clone)
    code, out, err = run(["check", "--ci", "--format", "json"], capsys)
    assert code == 0, err
    assert scored(out)["ranges"][0]["commits"] == [upstream.git("rev-parse", f"feature~{i}") for i in range(3)]
    assert Repo(clone).git("rev-parse", "--is-shallow-repository") == "false"


def test_a_shallow_gate_finds_the_build_history_by_the_ci_slug(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The root commit is unknown in a depth-1 clone; the store's repository named owner/upstream is found instead."""
    monkeypatch.setenv("CI_RISK_DB", str(tmp_path / "store.sqlite"))
    github_env(monkeypatch, tmp_path, "push", {"before": upstream.git("rev-parse", "main~2"), "after": upstream.head()})
    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    monkeypatch.chdir(upstream.path)
    assert run(["record", "--ci", "--status", "failure"], capsys)[0] == 0  # names the repository owner/upstream
    clone = shallow_clone(upstream, tmp_path / "clone", "main")
    monkeypatch.chdir(clone.path)
    monkeypatch.setenv("GITHUB_RUN_ID", "556")
    monkeypatch.setenv("CI_RISK_DEEPEN_BUDGET", "0")  # no fetching: the clone stays shallow
    code, out, err = run(["check", "--ci", "--format", "json"], capsys)
    assert code == 0, err
    report = scored(out)
    assert report["ranges"][0]["features"]["prev_build_failed"] == 1
    assert any("found in the store by its name owner/upstream" in n for n in report["notes"])
    assert clone.git("rev-parse", "--is-shallow-repository") == "true"
    import os

    assert "CI_RISK_REPO" not in os.environ  # set for that run only


def test_azure_pull_request_fetches_its_target_branch(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clone = shallow_clone(upstream, tmp_path / "clone", "feature")  # single-branch: main is not even known
    assert clone.git("branch", "-r").split() == ["origin/feature"]
    for name, value in {
        "TF_BUILD": "True",
        "BUILD_SOURCEVERSION": upstream.git("rev-parse", "feature"),
        "SYSTEM_PULLREQUEST_SOURCECOMMITID": upstream.git("rev-parse", "feature"),
        "SYSTEM_PULLREQUEST_TARGETBRANCH": "refs/heads/main",
        "SYSTEM_PULLREQUEST_SOURCEBRANCH": "refs/heads/feature",
        "BUILD_BUILDID": "12",
        "SYSTEM_JOBATTEMPT": "1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(clone.path)
    code, out, err = run(["check", "--ci", "--format", "json"], capsys)
    assert code == 0, err
    report = scored(out)
    assert report["ranges"][0]["commits"] == [upstream.git("rev-parse", f"feature~{i}") for i in range(3)]
    assert report["ci"]["system"] == "azure" and report["ci"]["branch"] == "feature"


def test_block_mode_exits_1_with_an_error_annotation(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    github_env(monkeypatch, tmp_path, "push", {"before": upstream.git("rev-parse", "main~1"), "after": upstream.head()})
    monkeypatch.chdir(upstream.path)
    code, out, _ = run(["check", "--ci", "--mode", "block", "--warn-at", "0", "--block-at", "0"], capsys)
    assert code == 1
    assert out.rstrip("\n").split("\n")[-1].startswith("::error title=ci-risk%3A BLOCKED%3A this change is likely")
    code, out, _ = run(["check", "--ci", "--mode", "block", "--block-at", "1"], capsys)
    assert code == 0 and "::error" not in out


def test_a_summary_or_output_that_is_a_fifo_nobody_reads_never_blocks_the_job(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GITHUB_STEP_SUMMARY or --output naming a FIFO without a reader: a warning each, the job goes on."""
    import os
    import subprocess
    import sys

    before, after = upstream.git("rev-parse", "HEAD~1"), upstream.head()
    github_env(monkeypatch, tmp_path, "push", {"before": before, "after": after})
    fifos = [tmp_path / "summary.fifo", tmp_path / "output.fifo"]
    for fifo in fifos:
        os.mkfifo(fifo)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(fifos[0]))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ci-risk"), "check", "--ci", "--output", str(fifos[1])],
        cwd=upstream.path,
        capture_output=True,
        text=True,
        # A blocked open fails the test (TimeoutExpired) instead of hanging the suite; no assertion on time.
        # The command takes about a second, so 20 s is a wide margin on a busy machine, and the
        # mutant that makes the open block (scripts/mutants.py) is killed in 20 s, not 2 minutes.
        timeout=20,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"cannot write {fifos[1]}: a FIFO that nobody reads" in proc.stderr
    assert "cannot append to GITHUB_STEP_SUMMARY: a FIFO that nobody reads" in proc.stderr
    assert "ci-risk: " in proc.stdout


def test_a_remote_named_like_an_option_is_fetched_from_never_run(
    upstream: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--upload-pack=touch` is a valid remote name: passed before `--` it made `git fetch` run `touch`."""
    before = upstream.git("rev-parse", "main~4")
    clone = shallow_clone(upstream, tmp_path / "clone", "main")
    url = clone.git("remote", "get-url", "origin")
    clone.git("remote", "remove", "origin")
    clone.git("remote", "add", "--", "--upload-pack=touch", url)
    github_env(monkeypatch, tmp_path, "push", {"before": before, "after": upstream.head()})
    monkeypatch.chdir(clone.path)
    code, out, err = run(["check", "--ci", "--format", "json"], capsys)
    assert code == 0, err
    assert not (clone.path / before).exists(), "git fetch ran the remote's name as its upload-pack"
    assert scored(out)["ranges"][0]["commits"] == [upstream.git("rev-parse", f"main~{i}") for i in range(4)]
