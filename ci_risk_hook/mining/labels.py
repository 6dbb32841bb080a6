"""Commit labels from git history alone: reverted commits and SZZ fix-inducing commits.

Recorded CI outcomes cover only the builds ci-risk has seen; history holds
older evidence that a commit was bad: someone reverted it, or a later fix
changed the lines it wrote.

Reverts: every non-merge commit whose message says `This reverts commit
<sha>` (git's own wording; abbreviated shas of 7+ hex digits are resolved)
labels the commit it names, and only that one. A revert of a revert therefore
labels the original revert; the commit the original revert undid keeps its
own label (it was reverted once, whatever happened next).

SZZ: B-SZZ (Sliwerski, Zimmermann, Zeller 2005) with the AG-SZZ noise filters
of Kim et al. 2006; `szz` states the exact rules, `is_fix` which commits are fixes.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from ci_risk_hook.errors import EXIT_USAGE, CiRiskError
from ci_risk_hook.features import categories
from ci_risk_hook.features.extract import REVERT_RE
from ci_risk_hook.git import repo as git

# A fix blaming more distinct commits than this is most likely a refactoring
# or a large rewrite, not a bug fix: its candidates are not labelled.
MAX_CANDIDATES = 10


class BugIssuesError(CiRiskError):
    """A tracker export that cannot be read; the message names the file and row."""

    exit_code = EXIT_USAGE


class CommitLabel(NamedTuple):
    commit: str
    source: str  # "szz" | "revert"
    evidence: tuple[str, ...]  # fix shas (szz) or reverting shas (revert), newest first
    lines: int  # lines blamed on the commit over all its fixes; 0 for reverts


# The counts a parallel SZZ run adds up across its workers (and SzzStats' slots).
_COUNTERS = (
    "fixes_skipped_candidates",
    "files_blamed",
    "files_skipped_missing",
    "files_skipped_binary",
    "lines_blamed",
    "lines_skipped_shallow",
    "lines_skipped_time",
    "lines_skipped_issue_date",
)


class SzzStats:
    """Counts of what one `szz` run did and skipped, so silent losses are visible."""

    __slots__ = ("fixes_seen", "fixes_skipped_root", *_COUNTERS, "shallow", "seconds", "missing")

    def __init__(self) -> None:
        self.fixes_seen = 0  # fix commits examined (non-merge, non-revert, with a parent)
        self.fixes_skipped_root = 0  # fix commits without a parent (root or shallow boundary)
        self.fixes_skipped_candidates = 0  # fixes blaming more commits than max_candidates: not labelled
        self.files_blamed = 0
        self.files_skipped_missing = 0  # an object was absent: that file of that fix was skipped
        self.files_skipped_binary = 0
        self.lines_blamed = 0  # lines attributed to a fix-inducing commit
        self.lines_skipped_shallow = 0  # blamed on a shallow boundary, whose true origin is unknown
        self.lines_skipped_time = 0  # blamed on a commit committed after the fix, or before `since`
        self.lines_skipped_issue_date = 0  # blamed on a commit committed after the fixed bug was reported
        self.shallow = False
        self.seconds = 0.0
        self.missing: list[tuple[str, str]] = []  # (fix sha, path) skipped for a missing object

    def skipped_missing(self, fix_sha: str, path: str) -> None:
        """One file of one fix skipped because git lacks an object (a partial or damaged clone)."""
        self.files_skipped_missing += 1
        self.missing.append((fix_sha, path))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__ if name != "missing")
        return f"SzzStats({fields}, missing={len(self.missing)})"


class SzzResult(NamedTuple):
    labels: list[CommitLabel]
    stats: SzzStats


# --- reverts -------------------------------------------------------------------------------------

_REVERTS_RE = re.compile(rb"\bthis reverts commit ([0-9a-f]{7,64})\b", re.I)
# `git log` of commit messages: NUL-separated, no merges, no signatures or colours, UTF-8.
_LOG = ("-c", "log.showSignature=false", "log", "-z", "--no-merges", "--no-color", git.LOG_ENCODING)


def find_reverts(cwd: str | None = None, rev_args: Sequence[str] = ("--all",)) -> list[CommitLabel]:
    """Commits reverted by a commit of `git log <rev_args>`, in order of their newest revert.

    Named commits that do not exist here (rewritten history, another
    repository) or whose abbreviation is ambiguous are left out.
    """
    top = git.repo_info(cwd).toplevel
    out = git.run(
        [*_LOG, "-i", "-F", "--grep=This reverts commit", "--format=%H%x1f%B", *rev_args, "--"],
        top,
    )
    reverts: list[tuple[str, list[str]]] = []
    names: dict[str, None] = {}
    for record in out.split(b"\0"):
        sha, sep, body = record.strip(b"\n").partition(b"\x1f")
        if not sep:
            continue
        targets = [m.decode("ascii").lower() for m in _REVERTS_RE.findall(body)]
        if targets:
            reverts.append((sha.decode("ascii"), targets))
            names.update(dict.fromkeys(targets))
    resolved = git.resolve_commits(list(names), top)
    evidence: dict[str, list[str]] = {}
    for reverting, targets in reverts:
        for name in targets:
            target = resolved.get(name)
            if target is None or target == reverting:
                continue
            shas = evidence.setdefault(target, [])
            if reverting not in shas:
                shas.append(reverting)
    return [CommitLabel(sha, "revert", tuple(shas), 0) for sha, shas in evidence.items()]


# --- SZZ -----------------------------------------------------------------------------------------


class _Fix(NamedTuple):
    sha: str
    parent: str
    time: int
    reported: int | None = None  # when the earliest bug it fixes was reported, if a tracker said


# Fix words, in the subject only: a body quotes branch names ("patch-1"),
# test notes ("tested the patch") and history. "patch" is not among them: in
# a subject it names a contribution more often than a repair.
FIX_SUBJECT_RE = re.compile(r"\b(fix(e[sd]|ing)?|bugs?|bugfix|hotfix|defect|regression|broken|crash(es|ed)?)\b", re.I)
# Issue keys: JIRA-style project keys (ZOOKEEPER-1234) and issue numbers (#123, GH-123), standing
# alone or at the end of a JIRA link (".../jira/browse/AMQ-5253", ActiveMQ's usual subject); a key
# inside another path (docs/ABC-1, org/app#4) is not the commit's own.
_KEY = r"(?:[A-Z][A-Z0-9_]+-[1-9][0-9]*|#[1-9][0-9]*)"
_KEY_RE = re.compile(rf"(?:(?<![\w&/#-])|(?<=/browse/)){_KEY}\b")
# A key a commit says it fixes anywhere in its message: "fixes #12", "Fixed: ABC-3", "closes #4".
_FIXES_KEY_RE = re.compile(rf"\b(fix(?:e[sd])?|close[sd]?|resolve[sd]?)\b:?\s+({_KEY})\b", re.I)
# Only these verbs make a key a fix without a tracker: "closes #4" may close a feature request.
_FIX_VERBS = ("fix", "fixes", "fixed")


def issue_keys(message: str) -> list[str]:
    """The issue keys a commit refers to as its own: those in its subject, and those its message says it fixes."""
    subject = message.split("\n", 1)[0]
    keys = [m.group(0) for m in _KEY_RE.finditer(subject)]
    keys += [m.group(2) for m in _FIXES_KEY_RE.finditer(message)]
    return list(dict.fromkeys(_normal_key(k) for k in keys))


def _normal_key(key: str) -> str:
    key = key.strip().upper()
    return key if not key.isdigit() else "#" + key


def is_fix(message: str, bugs: Mapping[str, int] | None = None) -> tuple[bool, int | None]:
    """Whether a (non-merge) commit fixes a bug, and when the earliest bug it fixes was reported, if known.

    Reverts are never fixes. With `bugs` (an issue tracker's bug reports:
    key -> time reported), a commit is a fix when it refers to one of them
    (`issue_keys`), as ApacheJIT links fixes; one that refers only to other
    issues (features, tasks) is not, whatever its words. Without a tracker,
    or when a commit refers to no issue: its subject speaks of a fix
    (FIX_SUBJECT_RE), or its message says it fixes an issue ("fixes #12").
    """
    subject = message.split("\n", 1)[0]
    if REVERT_RE.search(subject) or "this reverts commit" in message.lower():
        return False, None
    keys = issue_keys(message)
    if bugs is not None and keys:
        reported = [bugs[k] for k in keys if k in bugs]
        return (True, min(reported)) if reported else (False, None)
    if FIX_SUBJECT_RE.search(subject):
        return True, None
    return any(m.group(1).lower() in _FIX_VERBS for m in _FIXES_KEY_RE.finditer(message)), None


def load_bug_issues(path: str) -> dict[str, int]:
    """Bug reports from a tracker export: CSV rows `KEY,REPORTED` (REPORTED: epoch seconds or an ISO date).

    A header row and blank lines are skipped; keys are JIRA keys (ABC-12)
    or issue numbers (#12 or 12). A malformed row is a one-line error naming it.
    """
    import csv
    from datetime import datetime, timezone

    bugs: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for number, row in enumerate(csv.reader(fh), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise BugIssuesError(f"{path}:{number}: expected KEY,REPORTED")
            key, when = row[0].strip(), row[1].strip()
            try:
                if when.lstrip("-").isdigit():
                    stamp = int(when)
                else:
                    parsed = datetime.fromisoformat(when.replace("Z", "+00:00"))
                    if parsed.tzinfo is None:
                        parsed = parsed.replace(tzinfo=timezone.utc)
                    stamp = int(parsed.timestamp())
            except ValueError:
                if number == 1:
                    continue  # a header
                raise BugIssuesError(f"{path}:{number}: REPORTED: not a date: {when[:40]!r}") from None
            bugs[_normal_key(key)] = stamp
    return bugs


def _fix_commits(
    cwd: str,
    rev_args: Sequence[str],
    since: int | None,
    max_fixes: int | None,
    stats: SzzStats,
    bugs: Mapping[str, int] | None = None,
) -> list[_Fix]:
    """The newest `max_fixes` fix commits of the range, newest first, from one `git log` without diffs."""
    out = git.run(
        [*_LOG, "--format=%H%x1f%P%x1f%ct%x1f%B", *rev_args, "--"],
        cwd,
    )
    fixes: list[_Fix] = []
    for record in out.split(b"\0"):
        fields = record.strip(b"\n").split(b"\x1f", 3)
        if len(fields) != 4:
            continue
        sha, parents, ctime, message = fields
        fix, reported = is_fix(message.decode("utf-8", "replace"), bugs)
        if not fix:
            continue
        when = int(ctime or b"0")
        if since is not None and when < since:
            continue
        if max_fixes is not None and len(fixes) + stats.fixes_skipped_root >= max_fixes:
            break
        if not parents.strip():
            stats.fixes_skipped_root += 1
            continue
        fixes.append(_Fix(sha.decode("ascii"), parents.split()[0].decode("ascii"), when, reported))
    return fixes


# Modes of entries that are not regular files: symlinks and submodules.
_NOT_FILES = (b"120000", b"160000")


def _modified_files(cwd: str, shas: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """(old, new) paths of the regular files each commit modifies: in place (old == new) or while renaming them.

    From trees only. A pure rename (100 % similar) changes no line and is left out.
    """
    result: dict[str, list[tuple[str, str]]] = {sha: [] for sha in shas}
    if not shas:
        return result
    stdin = ("\n".join(shas) + "\n").encode("ascii")
    out = git.run(["diff-tree", "-z", "-r", *git.RENAME_ARGS, "--raw", "--stdin"], cwd, stdin=stdin)
    tokens = out.split(b"\0")
    current: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith(b":"):
            meta = token[1:].split()
            status = meta[4] if len(meta) == 5 else b""
            renamed = status[:1] in (b"R", b"C")
            names = tokens[i + 1 : i + (3 if renamed else 2)]
            i += 3 if renamed else 2
            if meta[0] in _NOT_FILES or meta[1] in _NOT_FILES:
                continue
            if status == b"M":
                current.append((git.decode_name(names[0]),) * 2)
            elif status[:1] == b"R" and status != b"R100" and len(names) == 2:
                current.append((git.decode_name(names[0]), git.decode_name(names[1])))
            continue
        token = token.strip(b"\n")
        if token:
            current = result.setdefault(token.decode("ascii"), [])
        i += 1
    return result


def _is_source(path: str) -> bool:
    return categories.categorize(path).startswith("src_")


# Comment syntax by file extension. `#` is not a comment in C-like files (the
# preprocessor), `--` and a leading `*` are code in C (`--i;`, `*p = 0;`).
_HASH = frozenset(
    (
        ".py",
        ".pyx",
        ".pxd",
        ".pxi",
        ".pyi",
        ".rb",
        ".rake",
        ".sh",
        ".bash",
        ".zsh",
        ".fish",
        ".ps1",
        ".pl",
        ".pm",
        ".r",
        ".jl",
        ".ex",
        ".exs",
        ".nim",
        ".php",
        ".coffee",
    )
)
_SLASH = frozenset(
    (
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".cxx",
        ".hpp",
        ".hh",
        ".hxx",
        ".cu",
        ".cuh",
        ".m",
        ".mm",
        ".inc",
        ".src",
        ".js",
        ".jsx",
        ".ts",
        ".tsx",
        ".mjs",
        ".cjs",
        ".vue",
        ".svelte",
        ".java",
        ".kt",
        ".kts",
        ".scala",
        ".groovy",
        ".go",
        ".rs",
        ".php",
        ".cs",
        ".fs",
        ".swift",
        ".dart",
        ".zig",
        ".d",
        ".v",
        ".sql",
    )
)
_DASH = frozenset((".sql", ".lua", ".hs"))


def _comment_style(path: str) -> tuple[bool, bool, bool]:
    dot = path.rfind(".")
    ext = path[dot:].lower() if dot > path.rfind("/") else ""
    return ext in _HASH, ext in _SLASH, ext in _DASH


def _is_noise(text: bytes, style: tuple[bool, bool, bool]) -> bool:
    """Blank lines and lines that are only a comment cannot introduce a bug."""
    s = text.strip()
    if not s:
        return True
    hash_, slash, dash = style
    if hash_ and s.startswith(b"#"):
        return True
    if slash:
        if s.startswith(b"//"):
            return True
        if s.startswith(b"/*"):
            end = s.find(b"*/", 2)
            return end < 0 or not s[end + 2 :].strip()
        if s.startswith(b"*") and (len(s) == 1 or s[1:2] in (b" ", b"\t", b"/", b"*")):
            return True
    return dash and s.startswith(b"--")


_ESCAPES = {
    ord("a"): 7,
    ord("b"): 8,
    ord("t"): 9,
    ord("n"): 10,
    ord("v"): 11,
    ord("f"): 12,
    ord("r"): 13,
    ord('"'): 34,
    ord("\\"): 92,
}


def _unquote(raw: bytes) -> bytes:
    """Undo git's C-style quoting of a path that starts with a double quote."""
    out = bytearray()
    i = 1
    while i < len(raw):
        c = raw[i]
        if c == 0x22:
            break
        if c == 0x5C and i + 1 < len(raw):
            nxt = raw[i + 1]
            if 0x30 <= nxt <= 0x37:
                out.append(int(raw[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


def _header_path(rest: bytes) -> str:
    """The path of `diff --git a/P b/P` for an in-place modification (both sides equal)."""
    if rest.startswith(b'"'):
        raw = _unquote(rest)
    else:
        raw = rest[: (len(rest) - 1) // 2]
    return git.decode_name(raw[2:])


_HUNK_RE = re.compile(rb"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _parse_diff(out: bytes) -> tuple[dict[str, list[tuple[int, bytes]]], set[str]]:
    """Lines each file loses (old line number, text) in a `-U0` diff, and the binary files."""
    removed: dict[str, list[tuple[int, bytes]]] = {}
    binary: set[str] = set()
    lines = out.split(b"\n")
    path: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith(b"diff --git "):
            path = _header_path(line[len(b"diff --git ") :])
        elif line.startswith(b"rename from ") and path is not None:
            # A file renamed by the fix: its lines are blamed under the parent's name.
            name = line[len(b"rename from ") :]
            path = git.decode_name(_unquote(name) if name.startswith(b'"') else name)
        elif line.startswith(b"Binary files ") and path is not None:
            binary.add(path)
        elif line.startswith(b"@@ ") and path is not None:
            m = _HUNK_RE.match(line)
            if m is None:
                raise git.GitError(f"unexpected hunk header in git diff: {line[:80]!r}")
            old_no = int(m.group(1))
            old_left = int(m.group(2) or b"1")
            new_left = int(m.group(4) or b"1")
            # Count the hunk's lines rather than trusting prefixes: a removed
            # line "-- a/x" would otherwise look like a file header.
            target = removed.setdefault(path, [])
            while (old_left > 0 or new_left > 0) and i < len(lines):
                body = lines[i]
                i += 1
                kind = body[:1]
                if kind == b"-" and old_left > 0:
                    target.append((old_no, body[1:]))
                    old_no += 1
                    old_left -= 1
                elif kind == b"+" and new_left > 0:
                    new_left -= 1
                elif kind != b"\\":
                    raise git.GitError(f"unexpected line in git diff hunk: {body[:80]!r}")
    return removed, binary


# Bytes of pathspecs per `git diff`: far below the kernel's limit on arguments, so a fix
# touching thousands of long paths is diffed in several runs instead of failing to start.
_PATHSPEC_BYTES = 64 * 1024


def _diff(cwd: str, fix: _Fix, paths: Sequence[str]) -> bytes:
    # -w: whitespace-only changes are not deleted lines (AG-SZZ's format filter).
    args: list[str | bytes] = [
        "-c",
        "core.quotepath=false",
        "diff",
        "-w",
        "-U0",
        # Renames paired as in _modified_files: the pathspecs name both sides of each.
        *git.RENAME_ARGS,
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--diff-algorithm=myers",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        fix.parent,
        fix.sha,
        "--",
    ]
    return b"".join(git.run([*args, *chunk], cwd) for chunk in _pathspec_chunks(paths))


def _pathspec_chunks(paths: Sequence[str]) -> Iterable[list[bytes]]:
    """Literal pathspecs of the exact bytes of each path, in runs of at most _PATHSPEC_BYTES."""
    chunk: list[bytes] = []
    size = 0
    for path in paths:
        spec = b":(top,literal)" + git.encode_name(path)
        if chunk and size + len(spec) > _PATHSPEC_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(spec)
        size += len(spec) + 1
    if chunk:
        yield chunk


def _ranges(numbers: Iterable[int]) -> list[str]:
    ranges: list[str] = []
    start = end = -1
    for n in sorted(set(numbers)):
        if n == end + 1:
            end = n
            continue
        if start > 0:
            ranges.append(f"{start},{end}")
        start = end = n
    if start > 0:
        ranges.append(f"{start},{end}")
    return ranges


def _parse_blame(out: bytes) -> dict[str, list[int]]:
    """sha -> [lines, committer time] from `git blame --porcelain`."""
    result: dict[str, list[int]] = {}
    current: list[int] = [0, 0]
    expect_header = True
    for line in out.split(b"\n"):
        if expect_header:
            if not line:
                continue
            sha = line.split(b" ", 1)[0].decode("ascii")
            entry = result.get(sha)
            if entry is None:
                entry = result[sha] = [0, 0]
            entry[0] += 1
            current = entry
            expect_header = False
        elif line.startswith(b"\t"):
            expect_header = True
        elif line.startswith(b"committer-time "):
            current[1] = int(line[len(b"committer-time ") :])
    return result


# git.run recognises most messages about absent objects; blame words them its own way.
# "no such path" is blame's word for a file the parent has (the fix modifies it) whose blob is absent.
_MORE_MISSING_MARKERS = ("cannot read", "no such path", "missing object")


def _is_missing(exc: git.GitError) -> bool:
    return isinstance(exc, git.MissingObjectError) or any(m in str(exc).lower() for m in _MORE_MISSING_MARKERS)


def _blame(cwd: str, fix: _Fix, path: str, line_numbers: Iterable[int]) -> dict[str, list[int]]:
    args: list[str | bytes] = ["blame", "-w", "--porcelain", "--no-ignore-revs-file"]
    for r in _ranges(line_numbers):
        args += ["-L", r]
    return _parse_blame(git.run([*args, fix.parent, "--", git.encode_name(path)], cwd))


def _removed_lines(
    cwd: str, fix: _Fix, files: list[tuple[str, str]], stats: SzzStats
) -> dict[str, list[tuple[int, bytes]]]:
    """Lines removed per file, under its name in the fix's parent; one diff for all files of the fix,
    file by file (a renamed file's two names together) only when an object is missing."""
    try:
        removed, binary = _parse_diff(_diff(cwd, fix, _names(files)))
    except git.GitError as exc:
        if not _is_missing(exc):
            raise
        removed, binary = {}, set()
        for pair in files:
            path = pair[0]
            try:
                one, one_binary = _parse_diff(_diff(cwd, fix, _names([pair])))
            except git.GitError as inner:
                if not _is_missing(inner):
                    raise
                stats.skipped_missing(fix.sha, path)
                continue
            removed.update(one)
            binary |= one_binary
    stats.files_skipped_binary += len(binary)
    return {path: found for path, found in removed.items() if path not in binary}


def _names(files: Sequence[tuple[str, str]]) -> list[str]:
    return list(dict.fromkeys(name for pair in files for name in pair))


def _szz_fix(
    cwd: str,
    fix: _Fix,
    paths: list[tuple[str, str]],
    shallow: frozenset[str],
    since: int | None,
    max_candidates: int | None = MAX_CANDIDATES,
) -> tuple[dict[str, int], SzzStats]:
    """Lines blamed per fix-inducing commit for one fix; runs in a worker thread, so it shares nothing."""
    stats = SzzStats()
    blamed_lines: dict[str, int] = {}
    sources = [(old, new) for old, new in paths if _is_source(old) and _is_source(new)]
    if not sources:
        return blamed_lines, stats
    for path, removed in _removed_lines(cwd, fix, sources, stats).items():
        style = _comment_style(path)
        numbers = [n for n, text in removed if not _is_noise(text, style)]
        if not numbers:
            continue
        try:
            blamed = _blame(cwd, fix, path, numbers)
        except git.GitError as exc:
            if not _is_missing(exc):
                raise
            stats.skipped_missing(fix.sha, path)
            continue
        stats.files_blamed += 1
        for sha, (count, when) in blamed.items():
            if sha in shallow:
                stats.lines_skipped_shallow += count
            elif sha == fix.sha or when > fix.time or (since is not None and when < since):
                stats.lines_skipped_time += count
            elif fix.reported is not None and when > fix.reported:
                stats.lines_skipped_issue_date += count
            else:
                blamed_lines[sha] = blamed_lines.get(sha, 0) + count
                stats.lines_blamed += count
    if max_candidates is not None and len(blamed_lines) > max_candidates:
        stats.fixes_skipped_candidates += 1
        stats.lines_blamed -= sum(blamed_lines.values())
        return {}, stats
    return blamed_lines, stats


def szz(
    cwd: str | None = None,
    rev_args: Sequence[str] = ("HEAD",),
    *,
    max_fixes: int | None = None,
    since: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    jobs: int | None = None,
    bugs: Mapping[str, int] | None = None,
    max_candidates: int | None = MAX_CANDIDATES,
) -> SzzResult:
    """Fix-inducing commits by B-SZZ with AG-SZZ's noise filters, in order of their newest fix.

    Fixes: non-merge commits of `git log <rev_args>` that `is_fix` accepts
    (with `bugs`, a tracker's bug reports, when given), newest first, at
    most `max_fixes`. For each source file a fix modifies (in place, or
    while renaming it), the non-blank, non-comment lines it deletes or changes
    (ignoring whitespace) are blamed (`blame -w`) in the fix's parent, under
    the file's name there. `since` (epoch seconds) drops fixes and blamed commits committed
    before it. With a tracker's report dates, a line last changed after the
    bug was reported is not blamed (it cannot have caused that report); without
    one, only the fix's own time bounds the candidates. A fix blaming more than
    `max_candidates` distinct commits labels none (counted in the stats).
    In a shallow clone blame stops at the boundary: lines it puts
    on a boundary commit are counted in the stats, not labelled. Files with a
    missing object are skipped and counted in the stats. Blame dominates the
    time, so `jobs` fixes (default: CPUs, at most 8) are worked on at once;
    the result does not depend on it.
    """
    started = time.monotonic()
    st = SzzStats()
    info = git.repo_info(cwd)
    st.shallow = info.is_shallow
    top = info.toplevel
    fixes = _fix_commits(top, rev_args, since, max_fixes, st, bugs)
    files = _modified_files(top, [f.sha for f in fixes])
    if jobs is None:
        jobs = min(8, os.cpu_count() or 1)

    def work(fix: _Fix) -> tuple[dict[str, int], SzzStats]:
        return _szz_fix(top, fix, files.get(fix.sha, []), info.shallow_commits, since, max_candidates)

    found: dict[str, tuple[list[str], list[int]]] = {}

    def merge(done: int, fix: _Fix, blamed: dict[str, int], one: SzzStats) -> None:
        st.fixes_seen += 1
        for name in _COUNTERS:
            setattr(st, name, getattr(st, name) + getattr(one, name))
        st.missing.extend(one.missing)
        for sha, count in blamed.items():
            evidence, total = found.setdefault(sha, ([], [0]))
            evidence.append(fix.sha)
            total[0] += count
        if progress is not None:
            progress(done, len(fixes))

    if jobs <= 1 or len(fixes) <= 1:
        for done, fix in enumerate(fixes, 1):
            merge(done, fix, *work(fix))
    else:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=jobs)
        try:
            # map() yields in submission order: evidence stays newest fix first.
            for done, (fix, (blamed, one)) in enumerate(zip(fixes, pool.map(work, fixes)), 1):
                merge(done, fix, blamed, one)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    st.seconds = time.monotonic() - started
    return SzzResult([CommitLabel(sha, "szz", tuple(ev), n[0]) for sha, (ev, n) in found.items()], st)


class Labelled(NamedTuple):
    reverts: int
    reverts_seconds: float
    szz: SzzResult | None  # None when SZZ was not asked for
    szz_seconds: float


def label_history(
    store: Any,
    repo_id: int,
    *,
    szz_too: bool = True,
    max_fixes: int | None = None,
    since: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    bugs: Mapping[str, int] | None = None,
) -> Labelled:
    """`ci-risk backfill`'s labels from git: reverted commits always, fix-inducing commits (SZZ) when asked."""
    started = time.monotonic()
    reverts = find_reverts()
    store.set_labels(repo_id, "revert", [(label.commit, label.evidence, label.lines) for label in reverts])
    reverts_seconds = time.monotonic() - started
    if not szz_too:
        return Labelled(len(reverts), reverts_seconds, None, 0.0)
    started = time.monotonic()
    found = szz(max_fixes=max_fixes, since=since, progress=progress, bugs=bugs)
    store.set_labels(repo_id, "szz", [(label.commit, label.evidence, label.lines) for label in found.labels])
    return Labelled(len(reverts), reverts_seconds, found, time.monotonic() - started)
