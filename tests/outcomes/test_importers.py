"""Importers: every format to exact BuildRecords, counted skips, one-line errors naming file, line and field."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ci_risk_hook.outcomes.importers import ImportFormatError, ImportResult, parse_file
from ci_risk_hook.outcomes.records import FAIL, PASS, BuildRecord, normalize_status
from testing.repos import REPO_ROOT

SHA1 = "1" * 40
SHA2 = "2" * 40
SHA3 = "3" * 40
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
REAL_TRAVIS = REPO_ROOT.parent / "shared/data/travis-builds/builds.csv"
TRAVIS_HEADER = "repo,lang,build_id,commit,pull_req,branch,status,duration_s,started_at,event_type,n_jobs\n"


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def write_json(tmp_path: Path, name: str, items: Any) -> Path:
    return write(tmp_path, name, json.dumps(items, indent=1))


def error_of(path: Path, fmt: str, **options: Any) -> str:
    with pytest.raises(ImportFormatError) as caught:
        parse_file(path, fmt, **options)
    text = str(caught.value)
    assert "\n" not in text, f"error message must be one line, got {text!r}"
    return text


def unknown_status_message(text: str) -> str:
    with pytest.raises(ValueError) as caught:
        normalize_status(text)
    return str(caught.value)


# ---- generic CSV ----


def test_csv_rows_become_exact_records(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "b.csv",
        (
            "commit,status,branch,started_at,duration_s,base,job_id,attempt\n"
            f"{SHA1},passed,main,2023-11-14T22:13:20Z,90,{'a' * 7},j1,1\n"
            f"{SHA2.upper()},FAILURE,,2023-11-14 22:13:20 UTC,12.5,,,2\n"
            f"{SHA3},errored,dev,{T0},,,,\n"
            f"{'abcdef1'},Success,,,,,,\n"
        ),
    )
    result = parse_file(path, "csv")
    assert result.records == [
        BuildRecord(SHA1, PASS, "csv", "passed", "main", T0, T0 + 90, 90.0, "a" * 7, "j1", 1),
        BuildRecord(SHA2, FAIL, "csv", "FAILURE", None, T0, T0 + 12, 12.5, None, "", 2),
        BuildRecord(SHA3, FAIL, "csv", "errored", "dev", T0, None, None, None, "", 1),
        BuildRecord("abcdef1", PASS, "csv", "Success", None, None, None, None, None, "", 1),
    ]
    assert result.skipped == Counter()
    assert result.bad == []
    assert result.rows_read == 4


def test_csv_minimal_header_any_order_finished_at_gives_duration(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "b.csv",
        (
            "\ufeffStatus , Commit,finished_at,started_at\n"  # BOM, spaces and capitals in the header are fine
            f"ok,{SHA1},2023-11-14T22:15:00+00:00,2023-11-14T22:13:20Z\n"
            "\n"
            f"cancelled,{SHA2},,\n"
            f"skipped,{SHA2},,\n"
            f"Canceled,{SHA2},,\n"
        ),
    )
    result = parse_file(path, "csv")
    assert result.records == [BuildRecord(SHA1, PASS, "csv", "ok", None, T0, T0 + 100, 100.0)]
    assert result.skipped == Counter({"status cancelled": 1, "status skipped": 1, "status canceled": 1})
    assert result.rows_read == 4, "blank lines are not rows"


BAD_ROW_COLUMNS = ("commit", "status", "started_at", "duration_s", "attempt", "base", "finished_at")


def csv_row(**values: str) -> str:
    return ",".join(values.get(column, "") for column in BAD_ROW_COLUMNS)


@pytest.mark.parametrize(
    "row, expected",
    [
        (csv_row(status="passed"), "commit: missing"),
        (
            csv_row(commit="zzzzzzz", status="passed"),
            "commit: not a commit sha: 'zzzzzzz' (expected 7 to 64 hex digits)",
        ),
        (csv_row(commit="abc123", status="passed"), "commit: not a commit sha: 'abc123' (expected 7 to 64 hex digits)"),
        (csv_row(commit=SHA1), "status: missing"),
        (csv_row(commit=SHA1, status="weird"), "status: " + unknown_status_message("weird")),
        (
            csv_row(commit=SHA1, status="passed", started_at="yesterday"),
            "started_at: not a time: 'yesterday' (expected e.g. 2024-05-01T12:00:00Z)",
        ),
        (csv_row(commit=SHA1, status="passed", duration_s="ten"), "duration_s: not a number: 'ten'"),
        (csv_row(commit=SHA1, status="passed", duration_s="nan"), "duration_s: not a number: 'nan'"),
        (csv_row(commit=SHA1, status="passed", duration_s="-5"), "duration_s: negative: '-5'"),
        (csv_row(commit=SHA1, status="passed", attempt="0"), "attempt: not a whole number >= 1: '0'"),
        (
            csv_row(commit=SHA1, status="passed", base="xyz"),
            "base: not a commit sha: 'xyz' (expected 7 to 64 hex digits)",
        ),
        (
            csv_row(
                commit=SHA1, status="passed", started_at="2023-11-14T22:13:20Z", finished_at="2023-11-14T22:00:00Z"
            ),
            "finished_at: earlier than the start time",
        ),
        (csv_row(commit=SHA1, status="passed") + ",extra", "row: 8 fields, the header has 7"),
        (f"{SHA1},passed", "row: 2 fields, the header has 7"),
    ],
)
def test_csv_bad_row_names_file_line_and_field(tmp_path: Path, row: str, expected: str) -> None:
    path = write(
        tmp_path, "b.csv", ",".join(BAD_ROW_COLUMNS) + "\n" + csv_row(commit=SHA2, status="passed") + f"\n{row}\n"
    )
    assert error_of(path, "csv") == f"{path}:3: {expected}"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("commit,branch\n", "1: header: missing required column status"),
        ("branch\n", "1: header: missing required columns commit, status"),
        (
            "commit,status,colour\n",
            "1: header: unknown column 'colour' (expected: commit, status, branch, started_at, "
            "finished_at, duration_s, base, job_id, attempt)",
        ),
        ("commit,status,commit\n", "1: header: column 'commit' appears twice"),
        ("", "1: header: empty file: expected a header row naming the columns"),
    ],
)
def test_csv_bad_header_is_an_error_even_with_skip_bad(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "b.csv", text + f"{SHA1},passed\n")
    if not text:
        path.write_text("")
    assert error_of(path, "csv", skip_bad=True) == f"{path}:{expected}"


def test_csv_line_numbers_count_physical_lines_of_quoted_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path, "b.csv", f'commit,status,branch\n{SHA1},passed,"two\nlines"\n{SHA2},passed,x\nbad,passed,y\n'
    )
    assert error_of(path, "csv") == f"{path}:5: commit: not a commit sha: 'bad' (expected 7 to 64 hex digits)"


def test_csv_value_with_a_newline_still_gives_a_one_line_message(tmp_path: Path) -> None:
    path = write(tmp_path, "b.csv", 'commit,status\n"abc\ndef",passed\n')
    assert error_of(path, "csv") == f"{path}:2: commit: not a commit sha: 'abc\\ndef' (expected 7 to 64 hex digits)"


def test_csv_malformed_quoting_is_a_bad_row(tmp_path: Path) -> None:
    path = write(tmp_path, "b.csv", f'commit,status\n"{SHA1}"x,passed\n{SHA2},failed\n')
    result = parse_file(path, "csv", skip_bad=True)
    assert [str(e) for e in result.bad] == [f"{path}:2: row: malformed CSV: ',' expected after '\"'"]
    assert result.records == [BuildRecord(SHA2, FAIL, "csv", "failed")]


def test_csv_not_utf8_names_line_and_byte(tmp_path: Path) -> None:
    text = f"commit,status,branch\n{SHA1},passed,main\n{SHA2},passed,caf\xe9\n"
    path = write(tmp_path, "b.csv", text.encode("latin-1"))
    assert error_of(path, "csv", skip_bad=True) == (
        f"{path}:3: encoding: not UTF-8 (byte 0xe9 at column 52); re-save the file as UTF-8"
    )


def test_missing_file_is_an_import_error_at_line_0(tmp_path: Path) -> None:
    for fmt in ("csv", "github", "gitlab", "travis"):
        path = tmp_path / "absent.file"
        assert error_of(path, fmt) == f"{path}:0: file: cannot read: No such file or directory"


def test_skip_bad_lists_every_bad_row_and_returns_the_rest(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "b.csv",
        (
            "commit,status,duration_s\n"
            f"{SHA1},passed,1\n"
            "nothex!,passed,1\n"
            f"{SHA2},maybe,1\n"
            f"{SHA3},cancelled,oops\n"  # skipped before its duration is looked at
            f"{SHA3},failed,oops\n"
            f"{SHA3},failed\n"
            f"{SHA3},failed,3\n"
        ),
    )
    result = parse_file(path, "csv", skip_bad=True)
    assert [str(e) for e in result.bad] == [
        f"{path}:3: commit: not a commit sha: 'nothex!' (expected 7 to 64 hex digits)",
        f"{path}:4: status: " + unknown_status_message("maybe"),
        f"{path}:6: duration_s: not a number: 'oops'",
        f"{path}:7: row: 2 fields, the header has 3",
    ]
    assert [(e.line, e.field) for e in result.bad] == [(3, "commit"), (4, "status"), (6, "duration_s"), (7, "row")]
    assert result.records == [
        BuildRecord(SHA1, PASS, "csv", "passed", duration_s=1.0),
        BuildRecord(SHA3, FAIL, "csv", "failed", duration_s=3.0),
    ]
    assert result.skipped == Counter({"status cancelled": 1})
    assert result.rows_read == 7
    assert error_of(path, "csv") == str(result.bad[0]), "without skip_bad the first bad row raises"


def test_result_is_a_plain_named_tuple_and_formats_are_checked(tmp_path: Path) -> None:
    result = parse_file(write(tmp_path, "b.csv", "commit,status\n"), "csv")
    assert result == ImportResult([], Counter(), [], 0)
    assert not dataclasses.is_dataclass(result)
    with pytest.raises(ValueError, match="unknown import format 'xml'"):
        parse_file(tmp_path / "b.csv", "xml")


# ---- GitHub (gh run list --json headSha,headBranch,conclusion,createdAt,updatedAt,event,databaseId) ----


def gh_run(
    sha: str = SHA1, conclusion: str = "success", event: str = "push", run_id: int = 101, **extra: Any
) -> dict[str, Any]:
    run = {
        "headSha": sha,
        "headBranch": "main",
        "conclusion": conclusion,
        "createdAt": "2023-11-14T22:13:20Z",
        "updatedAt": "2023-11-14T22:18:20Z",
        "event": event,
        "databaseId": run_id,
    }
    run.update(extra)
    return run


def test_github_push_runs_become_records_and_the_rest_is_counted(tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        "runs.json",
        [
            gh_run(),
            gh_run(SHA2, "failure", run_id=102, headBranch="fix/x"),
            gh_run(SHA3, "timed_out", run_id=103, attempt=2, headBranch=""),
            gh_run(SHA3, "startup_failure", run_id=104, updatedAt="2023-11-14T22:13:20Z"),
            gh_run(conclusion="cancelled"),
            gh_run(conclusion="skipped"),
            gh_run(conclusion="neutral"),
            gh_run(conclusion="action_required"),
            gh_run(conclusion="stale"),
            gh_run(conclusion=""),  # queued or in progress
            gh_run(event="pull_request"),
            gh_run(event="pull_request"),
            gh_run(event="schedule"),
            gh_run(event="workflow_dispatch"),
        ],
    )
    result = parse_file(path, "github")
    assert result.records == [
        BuildRecord(SHA1, PASS, "github", "success", "main", T0, T0 + 300, 300.0, None, "101", 1),
        BuildRecord(SHA2, FAIL, "github", "failure", "fix/x", T0, T0 + 300, 300.0, None, "102", 1),
        BuildRecord(SHA3, FAIL, "github", "timed_out", None, T0, T0 + 300, 300.0, None, "103", 2),
        BuildRecord(SHA3, FAIL, "github", "startup_failure", "main", T0, T0, 0.0, None, "104", 1),
    ]
    assert result.skipped == Counter(
        {
            "status cancelled": 1,
            "status skipped": 1,
            "status neutral": 1,
            "status action_required": 1,
            "status stale": 1,
            "run not finished": 1,
            "pull_request event": 2,
            "schedule event": 1,
            "workflow_dispatch event": 1,
        }
    )
    assert result.rows_read == 14


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"headSha": 12345678}, "headSha: expected a string, got a number"),
        ({"headSha": None}, "headSha: missing (null)"),
        ({"headSha": "main"}, "headSha: not a commit sha: 'main' (expected 7 to 64 hex digits)"),
        ({"conclusion": "exploded"}, "conclusion: " + unknown_status_message("exploded")),
        ({"createdAt": "last tuesday"}, "createdAt: not a time: 'last tuesday' (expected e.g. 2024-05-01T12:00:00Z)"),
        ({"updatedAt": "2023-11-14T22:00:00Z"}, "updatedAt: earlier than the start time"),
        ({"databaseId": "101"}, "databaseId: expected a whole number, got a string"),
        ({"event": ["push"]}, "event: expected a string, got an array"),
        ({"headBranch": True}, "headBranch: expected a string, got true/false"),
    ],
)
def test_github_bad_item_names_item_and_field(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    path = write_json(tmp_path, "runs.json", [gh_run(), gh_run(**change)])
    assert error_of(path, "github") == f"{path}:item 2: {expected}"


def test_github_missing_fields(tmp_path: Path) -> None:
    for field in ("headSha", "conclusion", "event"):
        run = gh_run()
        del run[field]
        path = write_json(tmp_path, "runs.json", [run])
        assert error_of(path, "github") == f"{path}:item 1: {field}: missing"


def test_json_file_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "runs.json", '[\n {"event": "push"},\n {"event": "push" "x": 1}\n]')
    assert error_of(path, "github") == f"{path}:3: json: invalid JSON: Expecting ',' delimiter (column 19)"
    path = write(tmp_path, "runs.json", '\n\n{"workflow_runs": []}')
    assert error_of(path, "github", skip_bad=True) == (
        f"{path}:3: json: expected an array of objects (the output of gh run list --json "
        "headSha,headBranch,conclusion,createdAt,updatedAt,event,databaseId), got an object"
    )
    path = write(tmp_path, "pipes.json", '"text"')
    assert error_of(path, "gitlab") == (
        f"{path}:1: json: expected an array of objects (GitLab's GET /projects/:id/pipelines), got a string"
    )
    path = write(tmp_path, "runs.json", b'[\n{"headBranch": "caf\xe9"}]')
    assert error_of(path, "github") == f"{path}:2: encoding: not UTF-8 (byte 0xe9); re-save the file as UTF-8"
    path = write(tmp_path, "runs.json", "")
    assert error_of(path, "github") == f"{path}:1: json: invalid JSON: Expecting value (column 1)"


def test_json_skip_bad_collects_non_objects_and_bad_items(tmp_path: Path) -> None:
    path = write_json(tmp_path, "runs.json", ["text", gh_run(), [1], gh_run(sha="nope"), gh_run(SHA2, "failure")])
    result = parse_file(path, "github", skip_bad=True)
    assert [str(e) for e in result.bad] == [
        f"{path}:item 1: item: expected an object, got a string",
        f"{path}:item 3: item: expected an object, got an array",
        f"{path}:item 4: headSha: not a commit sha: 'nope' (expected 7 to 64 hex digits)",
    ]
    assert [e.line for e in result.bad] == ["item 1", "item 3", "item 4"]
    assert [r.commit for r in result.records] == [SHA1, SHA2]
    assert result.rows_read == 5


# ---- GitLab (GET /projects/:id/pipelines) ----


def pipeline(pid: int, state: str, sha: str = SHA1, source: str = "push", **extra: Any) -> dict[str, Any]:
    item = {
        "id": pid,
        "iid": pid - 1000,
        "project_id": 7,
        "sha": sha,
        "ref": "main",
        "status": state,
        "source": source,
        "created_at": "2023-11-14T22:13:20.123Z",
        "updated_at": "2023-11-14T22:23:20.456Z",
        "web_url": f"https://gitlab.example.com/g/p/-/pipelines/{pid}",
    }
    item.update(extra)
    return item


def test_gitlab_pipelines_become_records_and_the_rest_is_counted(tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        "pipelines.json",
        [
            pipeline(1001, "success"),
            pipeline(
                1002,
                "failed",
                SHA2,
                ref="dev",
                started_at="2023-11-14T22:14:20Z",
                finished_at="2023-11-14T22:20:20Z",
                duration=300,
            ),  # duration excludes time blocked in between
            pipeline(1003, "success", SHA3, source="web", started_at=None, finished_at=None, duration=None),
            pipeline(1004, "canceled"),
            pipeline(1005, "skipped"),
            pipeline(1006, "running"),
            pipeline(1007, "manual"),
            pipeline(1008, "created"),
            pipeline(1009, "waiting_for_resource"),
            pipeline(1010, "success", source="merge_request_event"),
            pipeline(1011, "failed", source="merge_request_event"),
        ],
    )
    result = parse_file(path, "gitlab")
    assert result.records == [
        BuildRecord(SHA1, PASS, "gitlab", "success", "main", T0, T0 + 600, 600.0, None, "1001"),
        BuildRecord(SHA2, FAIL, "gitlab", "failed", "dev", T0 + 60, T0 + 420, 300.0, None, "1002"),
        BuildRecord(SHA3, PASS, "gitlab", "success", "main", T0, T0 + 600, 600.0, None, "1003"),
    ]
    assert result.skipped == Counter(
        {
            "status canceled": 1,
            "status skipped": 1,
            "status running": 1,
            "status manual": 1,
            "status created": 1,
            "status waiting_for_resource": 1,
            "merge request pipeline": 2,
        }
    )
    assert result.rows_read == 11


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"sha": None}, "sha: missing (null)"),
        ({"status": 3}, "status: expected a string, got a number"),
        ({"status": "exploded"}, "status: " + unknown_status_message("exploded")),
        ({"duration": "300"}, "duration: expected a number of seconds, got a string"),
        ({"duration": -1}, "duration: expected a number of seconds >= 0, got -1"),
        ({"id": 1.5}, "id: expected a whole number, got a number"),
        ({"started_at": "soon"}, "started_at: not a time: 'soon' (expected e.g. 2024-05-01T12:00:00Z)"),
        ({"updated_at": "2023-11-14T22:00:00Z"}, "updated_at: earlier than the start time"),
    ],
)
def test_gitlab_bad_item_names_item_and_field(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    path = write_json(tmp_path, "pipelines.json", [pipeline(1, "success"), pipeline(2, "failed", **change)])
    assert error_of(path, "gitlab") == f"{path}:item 2: {expected}"


# ---- Travis (the crawl's builds.csv) ----


def travis_row(
    repo: str,
    build: int,
    sha: str,
    status: str,
    pull: str = "",
    event: str = "push",
    duration: str = "600",
    started: str = "2023-11-14 22:13:20 UTC",
    branch: str = "master",
    jobs: str = "1",
) -> str:
    return f"{repo},python,{build},{sha},{pull},{branch},{status},{duration},{started},{event},{jobs}\n"


def travis_file(tmp_path: Path, *rows: str) -> Path:
    return write(tmp_path, "builds.csv", TRAVIS_HEADER + "".join(rows))


def test_travis_push_builds_of_one_repository(tmp_path: Path) -> None:
    path = travis_file(
        tmp_path,
        travis_row("o/a", 1, SHA1, "passed"),
        travis_row("o/a", 2, SHA2, "failed", branch=""),
        travis_row("o/a", 3, SHA3, "errored", duration="-83578"),  # Travis quirk on restarted builds
        travis_row("o/a", 4, SHA3, "passed", duration="", started=""),
        travis_row("o/a", 5, SHA1, "canceled"),
        travis_row("o/a", 6, SHA1, "created"),
        travis_row("o/a", 7, SHA1, "passed", pull="12", event="pull_request"),
        travis_row("o/a", 8, "merge", "bogus", pull="13", event="pull_request"),  # skipped before being checked
        travis_row("o/a", 9, SHA1, "passed", event="cron"),
        travis_row("o/a", 10, SHA1, "passed", event="api"),
    )
    result = parse_file(path, "travis")
    assert result.records == [
        BuildRecord(SHA1, PASS, "travis", "passed", "master", T0, T0 + 600, 600.0, None, "1"),
        BuildRecord(SHA2, FAIL, "travis", "failed", None, T0, T0 + 600, 600.0, None, "2"),
        BuildRecord(SHA3, FAIL, "travis", "errored", "master", T0, None, None, None, "3"),
        BuildRecord(SHA3, PASS, "travis", "passed", "master", None, None, None, None, "4"),
    ]
    assert result.skipped == Counter(
        {"status canceled": 1, "status created": 1, "pull request build": 2, "cron build": 1, "api build": 1}
    )
    assert result.rows_read == 10


def test_travis_repository_filter_is_case_insensitive_and_counts_the_others(tmp_path: Path) -> None:
    path = travis_file(
        tmp_path,
        travis_row("o/a", 1, SHA1, "passed"),
        travis_row("Other/B", 2, SHA2, "passed"),
        travis_row("other/b", 3, SHA3, "failed"),
        travis_row("o/a", 4, "not-a-sha", "bogus"),  # another repository's rows are counted, not checked
    )
    result = parse_file(path, "travis", travis_repo="OTHER/b")
    assert result.records == [
        BuildRecord(SHA2, PASS, "travis", "passed", "master", T0, T0 + 600, 600.0, None, "2"),
        BuildRecord(SHA3, FAIL, "travis", "failed", "master", T0, T0 + 600, 600.0, None, "3"),
    ]
    assert result.skipped == Counter({"other repository": 2})
    assert result.bad == []
    result = parse_file(path, "travis", travis_repo="nobody/here")
    assert (result.records, result.skipped, result.rows_read) == ([], Counter({"other repository": 4}), 4)


def test_travis_several_repositories_need_a_name(tmp_path: Path) -> None:
    path = travis_file(
        tmp_path,
        travis_row("o/a", 1, SHA1, "passed"),
        travis_row("O/A", 2, SHA1, "passed"),
        travis_row("o/b", 3, SHA1, "passed"),
    )
    expected = (
        f"{path}:4: repo: the file holds builds of several repositories ('o/a', 'o/b', ...): "
        "name the one to import (travis_repo)"
    )
    assert error_of(path, "travis") == expected
    assert error_of(path, "travis", skip_bad=True) == expected


def test_travis_bad_rows_and_header(tmp_path: Path) -> None:
    path = travis_file(
        tmp_path,
        travis_row("o/a", 1, SHA1, "passed"),
        travis_row("o/a", 2, "", "failed"),
        travis_row("o/a", 3, SHA1, "passed", duration="long"),
        travis_row("o/a", 4, SHA1, "passed", started="2023-13-45 99:00:00 UTC"),
        travis_row("o/a", 5, SHA1, "weird"),
        "o/a,python,6\n",
    )
    result = parse_file(path, "travis", skip_bad=True)
    assert [str(e) for e in result.bad] == [
        f"{path}:3: commit: missing",
        f"{path}:4: duration_s: not a number: 'long'",
        f"{path}:5: started_at: not a time: '2023-13-45 99:00:00 UTC' (expected e.g. 2024-05-01T12:00:00Z)",
        f"{path}:6: status: " + unknown_status_message("weird"),
        f"{path}:7: row: 3 fields, the header has 11",
    ]
    assert [r.job_id for r in result.records] == ["1"]
    path = write(tmp_path, "builds.csv", "repo,build_id,commit,pull_req,branch,status,duration_s,started_at\n")
    assert error_of(path, "travis") == f"{path}:1: header: missing required column event_type"


def test_real_travis_file_for_one_repository() -> None:
    if not REAL_TRAVIS.is_file():
        pytest.skip(f"real Travis data not found at {REAL_TRAVIS} (expected shared/ beside the clone)")
    result = parse_file(REAL_TRAVIS, "travis", travis_repo="aio-libs/aiomysql")
    assert result.bad == []
    assert result.rows_read > 100_000, "the whole file is read, other repositories counted"
    assert result.skipped["other repository"] > 100_000
    assert len(result.records) > 100, f"only {len(result.records)} push builds found for aio-libs/aiomysql"
    assert {r.status for r in result.records} == {PASS, FAIL}
    not_sha = [r.commit for r in result.records if len(r.commit) != 40 or r.commit.strip("0123456789abcdef")]
    assert not_sha == [], f"commits that are not 40 hex digits: {not_sha[:5]}"
    assert {r.source for r in result.records} == {"travis"}
    assert sum(r.started_at is not None for r in result.records) > 0.9 * len(result.records)


def test_travis_duration_of_several_jobs_is_spread_over_five_at_a_time(tmp_path: Path) -> None:
    """Travis sums its jobs' run times; wall time is about that sum over the jobs run side by side."""
    f = travis_file(
        tmp_path,
        travis_row("o/r", 1, SHA1, "passed", duration="1000", jobs="8"),
        travis_row("o/r", 2, SHA2, "passed", duration="900", jobs="3"),
    )
    first, second = parse_file(f, "travis").records
    assert first.duration_s == 200.0 and first.finished_at == first.started_at + 200  # 1000 s over 5 at a time
    assert second.duration_s == 300.0  # 900 s over its 3 jobs


@pytest.mark.skipif(not hasattr(sys, "get_int_max_str_digits"), reason="this Python converts numbers of any length")
def test_a_json_number_too_long_for_python_is_a_file_error(tmp_path: Path) -> None:
    path = write(tmp_path, "pipelines.json", '[\n {"id": 1,\n  "duration": ' + "9" * 5000 + "}\n]")
    assert error_of(path, "gitlab") == (
        f"{path}:3: json: invalid JSON: Exceeds the limit (4300 digits) for integer string conversion"
    )


def test_skip_reasons_named_by_the_file_stay_a_short_summary(tmp_path: Path) -> None:
    rows = [travis_row("o/r", i, SHA1, "passed", event=f"event-{i}") for i in range(100)]
    result = parse_file(travis_file(tmp_path, *rows, travis_row("o/r", 100, SHA2, "passed")), "travis")
    assert len(result.records) == 1 and sum(result.skipped.values()) == 100
    assert len(result.skipped) == 31 and result.skipped["other reasons"] == 70


# ---- files that are no outcome files at all ----


def _parse_limited(path: Path, fmt: str) -> str:
    """`parse_file` in a process of its own whose address space is capped at 1.5 GB (reading a 4 GB file whole
    fails there with MemoryError) and which is given 60 s (a FIFO waits forever for a writer): what it raised."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1536 * 1024 * 1024, resource.RLIM_INFINITY))

    code = (
        "import sys; from ci_risk_hook.outcomes.importers import parse_file\n"
        "try:\n    parse_file(sys.argv[1], sys.argv[2])\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(path), fmt], capture_output=True, text=True, preexec_fn=cap, timeout=60
        )
    except subprocess.TimeoutExpired:
        return "still reading after 60 s"
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("fmt", ["csv", "github", "gitlab", "travis"])
def test_a_fifo_or_device_is_refused_without_being_read(tmp_path: Path, fmt: str) -> None:
    """A FIFO waited for a writer forever; a device (/dev/zero) was read until memory ran out."""
    fifo = tmp_path / "outcomes.fifo"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        expected = f"{path}:0: file: not a regular file (a FIFO or device): nothing read"
        assert _parse_limited(path, fmt) == f"ImportFormatError {expected}\n"


@pytest.mark.parametrize("fmt", ["csv", "travis", "github", "gitlab"])
def test_a_huge_file_without_rows_is_refused_in_bounded_memory(tmp_path: Path, fmt: str) -> None:
    """4 GB of NUL bytes (a sparse file: no disk used): one CSV "line", or JSON too large to read whole."""
    path = tmp_path / "zeros"
    with open(path, "wb") as fh:
        fh.truncate(4 * 1024**3)
    if fmt in ("csv", "travis"):
        expected = f"{path}:1: header: a line longer than 1,048,576 characters: not a CSV of outcomes"
    else:
        expected = f"{path}:0: file: larger than 512 MB: split it (json reads a file whole)"
    assert _parse_limited(path, fmt) == f"ImportFormatError {expected}\n"
