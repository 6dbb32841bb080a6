"""Read CI outcomes exported from GitHub Actions, GitLab, Travis CI or a plain CSV as BuildRecords.

Only parses: nothing is written. Rows that are not outcomes of a push (pull-request
builds, cancelled or unfinished runs, other repositories) are counted by reason in
`skipped`, never silently dropped. A skipped row is only checked as far as needed
to decide to skip it.

Why pushes only: pull-request builds (GitHub `pull_request` runs, GitLab
`merge_request_event` pipelines, Travis PR builds) ran on temporary merge commits
that are not in the project's history, and the model scores pushes.

`ImportStream` yields records as it reads, so a file of millions of rows is never
held in memory (CSV is read row by row, a line at most MAX_LINE_CHARS long; a JSON
export is one document, parsed whole, at most MAX_JSON_BYTES). Only a regular file
is read: a FIFO would wait for a writer, a device (/dev/zero) would never end.
"""

from __future__ import annotations

import math
import os
import stat
from collections import Counter
from typing import Any, Callable, Iterator, NamedTuple, Union

from ci_risk_hook.errors import EXIT_USAGE, CiRiskError
from ci_risk_hook.outcomes.records import (
    BuildRecord,
    OutOfRange,
    check_duration,
    normalize_status,
    parse_attempt,
    parse_time,
)

FORMATS = ("csv", "github", "gitlab", "travis")

# Generic CSV: the first two are required.
CSV_COLUMNS = ("commit", "status", "branch", "started_at", "finished_at", "duration_s", "base", "job_id", "attempt")
TRAVIS_COLUMNS = (
    "repo",
    "build_id",
    "commit",
    "pull_req",
    "branch",
    "status",
    "duration_s",
    "started_at",
    "event_type",
)
GITHUB_FIELDS = "headSha,headBranch,conclusion,createdAt,updatedAt,event,databaseId"

_HEX = "0123456789abcdefABCDEF"
MAX_SKIP_REASONS = 30  # distinct reasons counted by name in `skipped`; the rest are "other reasons"
MAX_LINE_CHARS = 1024 * 1024  # a CSV line longer than this is no outcome row (a binary file, NUL bytes)
MAX_JSON_BYTES = 512 * 1024 * 1024  # a JSON export is parsed whole: about a million runs

Outcome = Union[BuildRecord, str]  # a record, or the reason the row was skipped
RowParser = Callable[[list[str], int], Outcome]


class ImportFormatError(CiRiskError):
    """A file or row that cannot be read; str() is one line: `path:line: field: message`.

    `line` is the 1-based physical line for CSV (header = 1) and for invalid JSON,
    `"item N"` for the N-th element of a JSON array, 0 for the file as a whole.
    """

    exit_code = EXIT_USAGE

    def __init__(self, path: str, line: int | str, field: str, message: str) -> None:
        super().__init__(path, line, field, message)
        self.path = path
        self.line = line
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return " ".join(f"{self.path}:{self.line}: {self.field}: {self.message}".splitlines())


class ImportResult(NamedTuple):
    records: list[BuildRecord]
    skipped: Counter[str]  # reason -> rows
    bad: list[ImportFormatError]  # only with skip_bad=True
    rows_read: int  # data rows (CSV, blank lines excluded) or array elements (JSON)


class _Bad(Exception):
    """A malformed value; the caller adds path and line."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message


class ImportStream:
    """The records of one export, yielded as they are read; the counts grow as it goes.

    Iterating raises ImportFormatError at the first bad row, or, with skip_bad,
    hands each bad row to `on_bad` (default: keeps it in `bad`) and goes on.
    File-level problems (unreadable, not UTF-8, invalid JSON, bad CSV header, a Travis
    file with several repositories and no `travis_repo`) raise even with skip_bad.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fmt: str,
        *,
        skip_bad: bool = False,
        travis_repo: str | None = None,
        on_bad: Callable[[ImportFormatError], None] | None = None,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown import format {fmt!r} (expected one of: {', '.join(FORMATS)})")
        self.path = path
        self.name = os.fsdecode(path)
        self.fmt = fmt
        self.skip_bad = skip_bad
        self.travis_repo = travis_repo
        self.skipped: Counter[str] = Counter()
        self.bad: list[ImportFormatError] = []
        self.on_bad = on_bad if on_bad is not None else self.bad.append
        self.bad_rows = 0
        self.rows = 0

    def __iter__(self) -> Iterator[BuildRecord]:
        name = self.name
        if self.fmt == "csv":
            outcomes = _read_csv(self.path, self, _generic_header)
        elif self.fmt == "travis":
            want = self.travis_repo.strip().lower() if self.travis_repo is not None else None
            outcomes = _read_csv(self.path, self, lambda header: _travis_header(header, want, name))
        elif self.fmt == "github":
            outcomes = _read_json(self.path, self, _github_item, f"the output of gh run list --json {GITHUB_FIELDS}")
        else:
            outcomes = _read_json(self.path, self, _gitlab_item, "GitLab's GET /projects/:id/pipelines")
        for outcome in outcomes:
            if isinstance(outcome, str):
                if outcome not in self.skipped and len(self.skipped) >= MAX_SKIP_REASONS:
                    outcome = "other reasons"  # event names come from the file: a bounded summary all the same
                self.skipped[outcome] += 1
            else:
                yield outcome

    def fail(self, line: int | str, bad: _Bad) -> None:
        error = ImportFormatError(self.name, line, bad.field, bad.message)
        if not self.skip_bad:
            raise error
        self.bad_rows += 1
        self.on_bad(error)


def parse_file(
    path: str | os.PathLike[str], fmt: str, *, skip_bad: bool = False, travis_repo: str | None = None
) -> ImportResult:
    """Parse one export whole. Raises ImportFormatError for the first bad row, or collects them all with skip_bad."""
    stream = ImportStream(path, fmt, skip_bad=skip_bad, travis_repo=travis_repo)
    records = list(stream)
    return ImportResult(records, stream.skipped, stream.bad, stream.rows)


# ---- values shared by every format ----


def _commit(field: str, value: str) -> str:
    sha = value.strip()
    if not sha:
        raise _Bad(field, "missing")
    if len(sha) < 7 or len(sha) > 64 or sha.strip(_HEX):
        raise _Bad(field, f"not a commit sha: {_show(sha)} (expected 7 to 64 hex digits)")
    return sha.lower()


def _status(field: str, value: str) -> str | None:
    if not value.strip():
        raise _Bad(field, "missing")
    try:
        return normalize_status(value)
    except ValueError as error:
        raise _Bad(field, str(error)) from None


def _time(field: str, value: str) -> int | None:
    if not value.strip():
        return None
    try:
        return parse_time(value)
    except OutOfRange as error:
        raise _Bad(field, str(error)) from None
    except (ValueError, OverflowError):
        raise _Bad(field, f"not a time: {_show(value)} (expected e.g. 2024-05-01T12:00:00Z)") from None


def _number(field: str, value: str) -> float | None:
    text = value.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise _Bad(field, f"not a number: {_show(value)}")
    return number


def _duration(field: str, value: float | int | None) -> float | None:
    """A duration within what a build can take (see outcomes.MAX_DURATION_S); None stays unknown."""
    if value is None:
        return None
    try:
        return check_duration(value)
    except OutOfRange as error:
        raise _Bad(field, str(error)) from None


def _times(
    started: int | None, finished: int | None, duration: float | None, finished_field: str
) -> tuple[int | None, float | None]:
    """Fill finished_at or duration from the other two."""
    if started is not None and finished is not None:
        if finished < started:
            raise _Bad(finished_field, "earlier than the start time")
        if duration is None:
            duration = float(finished - started)
    elif started is not None and duration is not None:
        finished = started + int(round(duration))
    return finished, duration


def _show(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _skip_status(raw: str) -> str:
    return f"status {raw.strip().lower()}"


# ---- CSV formats ----


def _read_csv(
    path: str | os.PathLike[str], collector: ImportStream, header_parser: Callable[[list[str]], RowParser]
) -> Iterator[Outcome]:
    import csv

    name = collector.name
    handle = open(_regular_file(path, name), encoding="utf-8-sig", newline="")
    try:
        with handle:
            reader = csv.reader(_lines(handle, name), strict=True)
            header: list[str] | None = None
            try:
                for header in reader:
                    if header:
                        break
            except csv.Error as error:
                raise ImportFormatError(name, reader.line_num, "header", f"malformed CSV: {error}") from None
            if not header:
                raise ImportFormatError(name, 1, "header", "empty file: expected a header row naming the columns")
            try:
                parse_row = header_parser([column.strip().lower() for column in header])
            except _Bad as bad:
                raise ImportFormatError(name, reader.line_num, bad.field, bad.message) from None
            yield from _read_rows(reader, len(header), parse_row, collector)
    except UnicodeDecodeError:
        line, detail = _first_non_utf8(path)
        raise ImportFormatError(name, line, "encoding", f"not UTF-8 ({detail}); re-save the file as UTF-8") from None
    except OSError as error:
        raise _unreadable(name, error) from None


def _lines(handle: Any, name: str) -> Iterator[str]:
    """The file's lines for the CSV reader, none longer than MAX_LINE_CHARS (else the whole of it is one line)."""
    number = 0
    while True:
        line = handle.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_CHARS:
            field = "header" if number == 1 else "row"
            raise ImportFormatError(
                name, number, field, f"a line longer than {MAX_LINE_CHARS:,} characters: not a CSV of outcomes"
            )
        yield line


def _read_rows(reader: Any, width: int, parse_row: RowParser, collector: ImportStream) -> Iterator[Outcome]:
    import csv

    previous = reader.line_num
    while True:
        try:
            for row in reader:
                line = previous + 1  # a quoted field may span lines: report where the row starts
                previous = reader.line_num
                if not row:
                    continue
                collector.rows += 1
                if len(row) != width:
                    collector.fail(line, _Bad("row", f"{len(row)} fields, the header has {width}"))
                    continue
                try:
                    outcome = parse_row(row, line)
                except _Bad as bad:
                    collector.fail(line, bad)
                    continue
                yield outcome
            return
        except csv.Error as error:
            collector.rows += 1
            collector.fail(previous + 1, _Bad("row", f"malformed CSV: {error}"))
            if reader.line_num == previous:
                return
            previous = reader.line_num


def _columns(header: list[str], known: tuple[str, ...], required: tuple[str, ...], strict: bool) -> dict[str, int]:
    index: dict[str, int] = {}
    for position, column in enumerate(header):
        if column in index:
            raise _Bad("header", f"column {column!r} appears twice")
        if strict and column not in known:
            raise _Bad("header", f"unknown column {column!r} (expected: {', '.join(known)})")
        index[column] = position
    missing = [column for column in required if column not in index]
    if missing:
        raise _Bad("header", f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    return index


def _generic_header(header: list[str]) -> RowParser:
    index = _columns(header, CSV_COLUMNS, ("commit", "status"), strict=True)
    i_commit, i_status = index["commit"], index["status"]
    optional = [index.get(column) for column in CSV_COLUMNS[2:]]

    def parse(row: list[str], line: int) -> Outcome:
        raw = row[i_status].strip()
        status = _status("status", raw)
        if status is None:
            return _skip_status(raw)
        commit = _commit("commit", row[i_commit])
        branch, started_s, finished_s, duration_s, base_s, job_id, attempt_s = (
            "" if i is None else row[i] for i in optional
        )
        started = _time("started_at", started_s)
        duration = _number("duration_s", duration_s)
        if duration is not None and duration < 0:
            raise _Bad("duration_s", f"negative: {_show(duration_s)}")
        duration = _duration("duration_s", duration)
        finished, duration = _times(started, _time("finished_at", finished_s), duration, "finished_at")
        base = _commit("base", base_s) if base_s.strip() else None
        attempt = 1
        if attempt_s.strip():
            try:
                attempt = parse_attempt(attempt_s)
            except ValueError as error:
                raise _Bad("attempt", str(error)) from None
        return BuildRecord(
            commit,
            status,
            "csv",
            raw,
            branch.strip() or None,
            started,
            finished,
            duration,
            base,
            job_id.strip(),
            attempt,
        )

    return parse


TRAVIS_CONCURRENCY = 5  # jobs Travis ran at once for an open-source repository


def _optional_column(header: list[str], name: str) -> int | None:
    names = [h.strip().lower() for h in header]
    return names.index(name) if name in names else None


def _travis_header(header: list[str], want: str | None, name: str) -> RowParser:
    """Rows of other repositories are counted, not checked; a second repository without `want` is an error."""
    index = _columns(header, TRAVIS_COLUMNS, TRAVIS_COLUMNS, strict=False)
    i_repo, i_build, i_commit, i_pull, i_branch, i_status, i_duration, i_started, i_event = (
        index[column] for column in TRAVIS_COLUMNS
    )
    i_jobs = _optional_column(header, "n_jobs")
    last_repo, keep, first = "", False, ""

    def parse(row: list[str], line: int) -> Outcome:
        nonlocal last_repo, keep, first
        repo = row[i_repo]
        if repo != last_repo:  # a repository's builds are usually together: decide once per run of rows
            key = repo.strip().lower()
            if want is not None:
                keep = key == want
            elif not first:
                first, keep = repo.strip(), True
            elif key != first.lower():
                raise ImportFormatError(
                    name,
                    line,
                    "repo",
                    f"the file holds builds of several repositories ({first!r}, {repo.strip()!r}, ...): "
                    "name the one to import (travis_repo)",
                )
            last_repo = repo
        if not keep:
            return "other repository"
        event = row[i_event].strip().lower()
        if row[i_pull].strip() or event == "pull_request":
            return "pull request build"
        if event != "push":
            return f"{event} build" if event else "build without event type"
        raw = row[i_status].strip()
        status = _status("status", raw)
        if status is None:
            return _skip_status(raw)
        commit = _commit("commit", row[i_commit])
        started = _time("started_at", row[i_started])
        duration = _number("duration_s", row[i_duration])
        if duration is not None and duration < 0:
            duration = None  # Travis reports negative durations for some restarted builds: unknown, not wrong
        duration = _duration("duration_s", duration)
        if duration is not None and i_jobs is not None:
            # Travis's duration is the sum of its jobs' run times; they ran side by side, at most
            # TRAVIS_CONCURRENCY at once, so wall time is about the sum over that. Taking the sum as
            # wall time would make most previous builds look unfinished when the next push started.
            jobs = row[i_jobs].strip()
            if jobs.isdigit() and int(jobs) > 1:
                duration = duration / min(int(jobs), TRAVIS_CONCURRENCY)
        finished, duration = _times(started, None, duration, "duration_s")
        return BuildRecord(
            commit,
            status,
            "travis",
            raw,
            row[i_branch].strip() or None,
            started,
            finished,
            duration,
            None,
            row[i_build].strip(),
        )

    return parse


# ---- JSON formats ----


def _read_json(
    path: str | os.PathLike[str],
    collector: ImportStream,
    parse_item: Callable[[dict[str, Any]], Outcome],
    expected: str,
) -> Iterator[Outcome]:
    import json

    name = collector.name
    try:
        with open(_regular_file(path, name), "rb") as handle:
            data = handle.read(MAX_JSON_BYTES + 1)
    except OSError as error:
        raise _unreadable(name, error) from None
    if len(data) > MAX_JSON_BYTES:
        raise ImportFormatError(
            name, 0, "file", f"larger than {MAX_JSON_BYTES // 1024**2} MB: split it (json reads a file whole)"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ImportFormatError(
            name, line, "encoding", f"not UTF-8 (byte 0x{data[error.start]:02x}); re-save the file as UTF-8"
        ) from None
    try:
        items = json.loads(text)
    except json.JSONDecodeError as error:
        raise ImportFormatError(
            name, error.lineno, "json", f"invalid JSON: {error.msg} (column {error.colno})"
        ) from None
    except RecursionError:
        raise ImportFormatError(name, 1, "json", "invalid JSON: nested too deeply") from None
    except ValueError as error:  # a number of more than 4,300 digits: Python refuses to convert it
        line = text.count("\n", 0, _first_long_number(text)) + 1
        raise ImportFormatError(name, line, "json", f"invalid JSON: {str(error).split(':')[0]}") from None
    if not isinstance(items, list):
        line = text.count("\n", 0, len(text) - len(text.lstrip())) + 1
        raise ImportFormatError(name, line, "json", f"expected an array of objects ({expected}), got {_kind(items)}")
    for number, item in enumerate(items, 1):
        collector.rows += 1
        where = f"item {number}"
        if not isinstance(item, dict):
            collector.fail(where, _Bad("item", f"expected an object, got {_kind(item)}"))
            continue
        try:
            outcome = parse_item(item)
        except _Bad as bad:
            collector.fail(where, bad)
            continue
        yield outcome


_JSON_KINDS: dict[type, str] = {str: "a string", list: "an array", dict: "an object"}


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "a number"
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _text(item: dict[str, Any], key: str, required: bool = False) -> str:
    """A string field; "" when absent or null (unless required)."""
    if key not in item or item[key] is None:
        if required:
            raise _Bad(key, "missing" if key not in item else "missing (null)")
        return ""
    value = item[key]
    if not isinstance(value, str):
        raise _Bad(key, f"expected a string, got {_kind(value)}")
    return value


def _integer(item: dict[str, Any], key: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(key, f"expected a whole number, got {_kind(value)}")
    return value


def _seconds(item: dict[str, Any], key: str) -> float | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(key, f"expected a number of seconds, got {_kind(value)}")
    if value != value or value < 0:  # NaN or negative
        shown = str(value) if len(str(value)) <= 40 else str(value)[:37] + "..."
        raise _Bad(key, f"expected a number of seconds >= 0, got {shown}")
    return _duration(key, value)  # an int, not float(): float() of a 400-digit integer raises OverflowError


def _github_item(item: dict[str, Any]) -> Outcome:
    event = _text(item, "event", required=True).strip()
    if event != "push":
        return f"{event or 'unknown'} event"
    if "conclusion" not in item:
        raise _Bad("conclusion", "missing")
    raw = _text(item, "conclusion").strip()
    if not raw:  # gh prints "" while the run is queued or in progress
        return "run not finished"
    status = _status("conclusion", raw)
    if status is None:
        return _skip_status(raw)
    commit = _commit("headSha", _text(item, "headSha", required=True))
    started = _time("createdAt", _text(item, "createdAt"))
    finished, duration = _times(started, _time("updatedAt", _text(item, "updatedAt")), None, "updatedAt")
    run_id = _integer(item, "databaseId")
    attempt = _integer(item, "attempt")  # not in the documented command, but gh can export it
    if attempt is not None:
        try:
            attempt = parse_attempt(str(attempt))
        except ValueError as error:
            raise _Bad("attempt", str(error)) from None
    return BuildRecord(
        commit,
        status,
        "github",
        raw,
        _text(item, "headBranch").strip() or None,
        started,
        finished,
        duration,
        None,
        "" if run_id is None else str(run_id),
        attempt or 1,
    )


def _gitlab_item(item: dict[str, Any]) -> Outcome:
    if _text(item, "source").strip() == "merge_request_event":
        return "merge request pipeline"
    raw = _text(item, "status", required=True).strip()
    status = _status("status", raw)
    if status is None:
        return _skip_status(raw)
    commit = _commit("sha", _text(item, "sha", required=True))
    started_key = "started_at" if _text(item, "started_at").strip() else "created_at"
    finished_key = "finished_at" if _text(item, "finished_at").strip() else "updated_at"
    started = _time(started_key, _text(item, started_key))
    finished = _time(finished_key, _text(item, finished_key))
    duration = _seconds(item, "duration")
    finished, duration = _times(started, finished, duration, finished_key)
    pipeline_id = _integer(item, "id")
    return BuildRecord(
        commit,
        status,
        "gitlab",
        raw,
        _text(item, "ref").strip() or None,
        started,
        finished,
        duration,
        None,
        "" if pipeline_id is None else str(pipeline_id),
    )


# ---- file-level problems ----


def _first_long_number(text: str) -> int:
    """Where the first run of more than 4,300 digits starts (the line json.loads does not say)."""
    import re

    found = re.search(r"[0-9]{4301}", text)
    return found.start() if found else 0


def _regular_file(path: str | os.PathLike[str], name: str) -> int:
    """A descriptor of `path`, only if it is a regular file (opened without waiting for a FIFO's writer)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as error:
        raise _unreadable(name, error) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ImportFormatError(name, 0, "file", "not a regular file (a FIFO or device): nothing read")
    return fd


def _unreadable(name: str, error: OSError) -> ImportFormatError:
    return ImportFormatError(name, 0, "file", f"cannot read: {error.strerror or error}")


def _first_non_utf8(path: str | os.PathLike[str]) -> tuple[int, str]:
    """Where decoding failed: the text reader only says which 8 KB chunk."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(iter(lambda: handle.readline(MAX_LINE_CHARS + 1), b""), 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                return number, f"byte 0x{raw[error.start]:02x} at column {error.start + 1}"
    return 0, "invalid byte sequence"
