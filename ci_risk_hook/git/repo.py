"""Every call to git: repository facts, push ranges, and one streaming log parser.

Only git objects are read, never the work tree: pre-commit stashes unstaged
changes while hooks run, so the work tree is not what is being pushed.

Names from git are bytes: a file name, an author's e-mail or a branch may
hold any byte but NUL, in no particular encoding. ci-risk carries each one
as a *name key* (`decode_name`): UTF-8 text in which every byte that is not part of valid UTF-8, the backslash
itself and NUL (should one come from elsewhere) are written `\\xNN` (two
lowercase hex digits). The key is

- lossless: `encode_name` gives back the exact bytes, so git is asked about
  the very path it printed (blame, diff, pathspecs);
- one-to-one: every backslash in a key starts an escape, so two different
  names never share a key, and the same name has the same key in the push,
  the history index, the outcomes store and training;
- plain text: valid UTF-8 without surrogates or NUL, so SQLite, PostgreSQL
  (whose text holds neither), JSON, HTML and any terminal accept it as is.

A name that is valid UTF-8 without a backslash (nearly all of them) is its
own key. Commit subjects are shown, not compared: they are decoded with
undecodable bytes written `\\xNN` and backslashes kept, which cannot fail.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
from typing import IO, Iterable, Iterator, NamedTuple, Sequence

from ci_risk_hook import paths
from ci_risk_hook.errors import EXIT_BLOCKED, CiRiskError

ZERO_SHA = "0" * 40
# Rename detection: exact renames always; the similarity search (quadratic in
# the files added and deleted) only when a commit adds and deletes at most this
# many, so a huge reorganisation cannot stall the hook. One value for every
# caller, so the hook, the history index and backfill see the same renames.
RENAME_LIMIT = 200
RENAME_ARGS = ("-M", f"-l{RENAME_LIMIT}")
# Commits read at a time once an object is missing (`iter_commits`): a few git processes per chunk.
_CHUNK = 1000
_NO_BLOB = frozenset({"0" * 40, "0" * 64})

# One record per commit: RS, then fields split by US, then NUL; numstat
# entries ("added<TAB>deleted<TAB>path") follow, each NUL-terminated. A
# rename's entry has an empty path, and its old and new names follow as two
# more NUL-terminated fields (so any byte but NUL in a name is safe).
# %aE: the author's e-mail through the repository's .mailmap (and git's
# mailmap.file / mailmap.blob settings), so one person with several addresses
# is one author; without a mapping it is the address as committed. Either way
# it is then lower-cased (`_parse_header`): addresses differing only in case
# are one author.
_LOG_FORMAT = "tformat:%x1e%H%x1f%P%x1f%aE%x1f%ct%x1f%s"
# Messages of commits made with another i18n.commitEncoding are re-encoded to
# UTF-8 whatever the user's i18n.logOutputEncoding says.
LOG_ENCODING = "--encoding=UTF-8"
_MISSING_OBJECT_MARKERS = (
    "unable to read",
    "missing blob",
    "bad object",
    "not a valid object",
    "could not read",
    "missing tree",
    "from promisor remote",  # "could not fetch <sha> from promisor remote": a partial clone's missing object
)


class GitError(CiRiskError):
    """A git command failed; the message is git's own first line of complaint."""

    exit_code = EXIT_BLOCKED


class MissingObjectError(GitError):
    """An object the command needed is absent (shallow, partial or damaged clone)."""


class FileChange(NamedTuple):
    path: str
    added: int | None  # None for binary files or unknown line counts
    deleted: int | None
    old_path: str | None = None  # the name before, when this change renames the file

    @property
    def is_binary(self) -> bool:
        return self.added is None


class Commit:
    """One commit as read from `git log`: plain class, as the hook creates many and imports no dataclasses."""

    __slots__ = ("sha", "parents", "author_email", "time", "subject", "files", "lines_unknown")

    def __init__(self, sha: str, parents: tuple[str, ...], author_email: str, time: int, subject: str) -> None:
        self.sha = sha
        self.parents = parents
        self.author_email = author_email
        self.time = time  # committer time, seconds since the epoch
        self.subject = subject
        self.files: list[FileChange] = []
        # True when line counts could not be read (a missing blob): files are
        # known from the trees, lines are not.
        self.lines_unknown = False

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1

    def history_files(self) -> list[FileChange]:
        """The changes this commit adds to a file's history: none for a merge, whose branch's commits carry them."""
        return [] if self.is_merge else self.files


def _git_env(network: bool = False) -> dict[str, str]:
    """The environment of ci-risk's git processes: local objects only, unless `network` (a deliberate fetch).

    In a partial clone (`git clone --filter=...`), reading a missing blob or
    tree makes git fetch it from the promisor remote, one fetch per commit's
    diff: a history walk downloaded every missing blob in dozens of fetches,
    and an unreachable remote held a push for as long as each fetch took to
    time out. GIT_NO_LAZY_FETCH forbids that, but only from git 2.44 (and
    the security releases 2.39.4, 2.40.2, 2.41.1, 2.42.2, 2.43.4); an empty
    GIT_ALLOW_PROTOCOL (git >= 2.12) allows no transport at all, so on any
    git such a fetch fails at once and the object counts as missing
    (`MissingObjectError`), as in a snapshot without large blobs.
    """
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_NO_LAZY_FETCH"] = "1"
    if not network:
        env["GIT_ALLOW_PROTOCOL"] = ""
    env.pop("GIT_PAGER", None)
    return env


def _first_error_line(stderr: bytes) -> str:
    for line in stderr.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line:
            return line
    return "git failed without a message"


def _raise_for(stderr: bytes, args: Sequence[str | bytes]) -> None:
    """GitError with git's first line; MissingObjectError when any line says an object is absent.

    Any line, not the first: in a partial clone git first warns that lazy
    fetching is disabled, or that no transport is allowed (`_git_env`), and
    only then says which object it could not read.
    """
    for line in stderr.decode("utf-8", "replace").splitlines():
        lowered = line.lower()
        if any(marker in lowered for marker in _MISSING_OBJECT_MARKERS):
            raise MissingObjectError(line.strip())
    raise GitError(f"git {os.fsdecode(args[0]) if args else ''}: {_first_error_line(stderr)}")


def run(args: Sequence[str | bytes], cwd: str | os.PathLike[str] | None = None, *, stdin: bytes | None = None) -> bytes:
    """Run git and return stdout; a failure becomes GitError with git's message."""
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_git_env(),
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH") from exc
    if proc.returncode != 0:
        _raise_for(proc.stderr, args)
    return proc.stdout


def decode_name(raw: bytes) -> str:
    """The name key of a name git printed (see the module docstring)."""
    if b"\\" in raw or b"\0" in raw:
        raw = raw.replace(b"\\", b"\\x5c").replace(b"\0", b"\\x00")
    return raw.decode("utf-8", "backslashreplace")


_HEX = frozenset("0123456789abcdefABCDEF")


def encode_name(key: str) -> bytes:
    """The bytes of the name behind a name key, to hand back to git."""
    head, *escaped = key.split("\\")
    out = bytearray(head.encode("utf-8", "surrogateescape"))
    for part in escaped:
        hex_digits = part[1:3]
        if part[:1] == "x" and len(hex_digits) == 2 and all(c in _HEX for c in hex_digits):
            out.append(int(hex_digits, 16))
            part = part[3:]
        else:  # not an escape of ours: the backslash stands for itself
            out += b"\\"
        out += part.encode("utf-8", "surrogateescape")
    return bytes(out)


def decode_text(raw: bytes) -> str:
    """Text that is shown, never compared (commit subjects): cannot fail, keeps backslashes."""
    return raw.decode("utf-8", "backslashreplace")


class RepoInfo(NamedTuple):
    toplevel: str
    common_dir: str
    git_dir: str
    is_shallow: bool
    shallow_commits: frozenset[str]


def repo_info(cwd: str | os.PathLike[str] | None = None) -> RepoInfo:
    """One git process for the facts every command needs."""
    try:
        out = run(
            [
                "rev-parse",
                "--path-format=absolute",
                "--git-common-dir",
                "--git-dir",
                "--is-shallow-repository",
                "--show-toplevel",
            ],
            cwd,
        )
    except GitError as exc:
        if "not a git repository" in str(exc).lower():
            raise GitError("not inside a git repository") from exc
        # A bare repository has no toplevel; ask again without it.
        out = run(
            ["rev-parse", "--path-format=absolute", "--git-common-dir", "--git-dir", "--is-shallow-repository"], cwd
        )
    lines = os.fsdecode(out).splitlines()  # file system paths: as the OS will want them back
    common_dir, git_dir = lines[0], lines[1]
    is_shallow = lines[2].strip() == "true"
    toplevel = lines[3] if len(lines) > 3 else common_dir
    shallow: frozenset[str] = frozenset()
    if is_shallow:
        try:
            with open(os.path.join(common_dir, "shallow"), encoding="ascii") as fh:
                shallow = frozenset(line.strip() for line in fh if line.strip())
        except OSError:
            shallow = frozenset()
    return RepoInfo(
        toplevel=toplevel, common_dir=common_dir, git_dir=git_dir, is_shallow=is_shallow, shallow_commits=shallow
    )


def mailmap_fingerprint(toplevel: str) -> str:
    """Which .mailmap authors are read through: the SHA-1 of the work tree's `.mailmap`, "" without one.

    A file read, no git process (the push path asks). The mailmap.file and
    mailmap.blob settings are not part of it: after changing them, rebuild
    the history index (`ci-risk index --rebuild`).
    """
    try:
        with open(os.path.join(toplevel, ".mailmap"), "rb") as fh:
            return hashlib.sha1(fh.read()).hexdigest()
    except OSError:
        return ""


def repo_name(info: RepoInfo) -> str:
    """The work tree's directory name as a name key: a label that any store can hold."""
    return decode_name(os.fsencode(os.path.basename(info.toplevel.rstrip("/"))))


def current_branch(info: RepoInfo) -> str | None:
    """The checked-out branch's name key, read from HEAD without starting git (None when detached)."""
    try:
        with open(os.path.join(info.git_dir, "HEAD"), "rb") as fh:
            head = fh.read().strip()
    except OSError:
        return None
    if not head.startswith(b"ref:"):
        return None
    return decode_name(head[4:].strip().removeprefix(b"refs/heads/"))


def short_branch(ref: str | None) -> str | None:
    """The name key of a ref name from the environment, the hook's stdin or an option, without refs/heads/.

    Such text holds undecodable bytes as surrogates (Python's surrogateescape).
    """
    if not ref:
        return None
    return decode_name(ref.encode("utf-8", "surrogateescape")).removeprefix("refs/heads/")


def _parse_header(token: bytes) -> Commit:
    fields = token.split(b"\x1f", 4)
    if len(fields) != 5:
        raise GitError("unexpected git log output (header)")
    sha, parents, email, ctime, subject = fields
    return Commit(
        sha=sha.decode("ascii"),
        parents=tuple(p.decode("ascii") for p in parents.split()),
        author_email=decode_name(email.strip()).lower(),
        time=int(ctime or b"0"),
        subject=decode_text(subject),
    )


def _numstat_change(counts: tuple[bytes, bytes], path: bytes, old_path: bytes | None = None) -> FileChange:
    added, deleted = counts
    old = None if old_path is None else decode_name(old_path)
    if added == b"-":
        return FileChange(decode_name(path), None, None, old)
    return FileChange(decode_name(path), int(added), int(deleted), old)


class _NumstatParser:
    """Tokens of `git log -z --numstat` (NUL-separated) to commits, one token at a time."""

    def __init__(self) -> None:
        self.current: Commit | None = None
        self.rename_counts: tuple[bytes, bytes] | None = None  # a rename's counts, waiting for its two names
        self.names: list[bytes] = []

    @property
    def expects_name(self) -> bool:
        """True while a rename waits for its names (a last token without its NUL is one of them)."""
        return self.rename_counts is not None

    def feed(self, token: bytes) -> Commit | None:
        """Take one token; the previous commit once a new one starts, else None."""
        if self.rename_counts is not None:
            # A name, taken as is: it may start with a newline.
            self.names.append(token)
            if len(self.names) == 2:
                old, new = self.names
                if self.current is not None:
                    self.current.files.append(_numstat_change(self.rename_counts, new, old))
                self.rename_counts, self.names = None, []
            return None
        token = token.lstrip(b"\n")
        if not token:
            return None
        if token[:1] == b"\x1e":
            done, self.current = self.current, _parse_header(token[1:])
            return done
        if self.current is not None:
            added, deleted, path = token.split(b"\t", 2)
            if path:
                self.current.files.append(_numstat_change((added, deleted), path))
            else:
                self.rename_counts = (added, deleted)
        return None


class _RawParser:
    """Tokens of `git log -z --raw --no-abbrev` to commits with their files, line counts unknown (trees only).

    An entry is `:MODES SHAS STATUS`, then its name, or for a rename or copy (R/C) its old and new names.
    `blobs` gets, per commit, the blobs a diff of it with line counts would read.
    """

    def __init__(self) -> None:
        self.current: Commit | None = None
        self.names_due = 0  # names still to read for the current entry
        self.names: list[bytes] = []
        self.blobs: dict[str, set[str]] = {}

    @property
    def expects_name(self) -> bool:
        return self.names_due > 0

    def feed(self, token: bytes) -> Commit | None:
        if self.names_due:
            self.names.append(token)  # a name, taken as is: it may start with a newline
            self.names_due -= 1
            if not self.names_due and self.current is not None:
                old = decode_name(self.names[0]) if len(self.names) == 2 else None
                self.current.files.append(FileChange(decode_name(self.names[-1]), None, None, old))
            return None
        token = token.lstrip(b"\n")
        if not token:
            return None
        if token[:1] == b"\x1e":
            done, self.current = self.current, _parse_header(token[1:])
            self.current.lines_unknown = True
            return done
        if token[:1] == b":":
            old_mode, new_mode, old, new, status = token[1:].decode("ascii").split()
            self.names = []
            self.names_due = 2 if status[:1] in ("R", "C") else 1
            if self.current is not None:
                read = self.blobs.setdefault(self.current.sha, set())
                for mode, blob in ((old_mode, old), (new_mode, new)):
                    if mode != "160000" and blob not in _NO_BLOB:  # a submodule's commit is no object here
                        read.add(blob)
        return None


def _parse_stream(stream: IO[bytes], raw: _RawParser | None = None) -> Iterator[Commit]:
    """Parse `git log -z --numstat --format=_LOG_FORMAT` incrementally (`--raw`, by this parser, when `raw`)."""
    parser: _NumstatParser | _RawParser = _NumstatParser() if raw is None else raw
    pending = b""
    # read1: whatever git has written so far, so each commit is handed on as
    # soon as it is complete (a caller's deadline is checked between commits).
    read = getattr(stream, "read1", stream.read)
    while True:
        chunk = read(1 << 16)
        if not chunk:
            break
        pending += chunk
        tokens = pending.split(b"\0")
        pending = tokens.pop()
        for token in tokens:
            done = parser.feed(token)
            if done is not None:
                yield done
    if pending.lstrip(b"\n")[:1] not in (b"", b"\x1e") or parser.expects_name:
        parser.feed(pending)
    if parser.current is not None:
        yield parser.current


def log_args(numstat: bool, merge_diffs: bool = True) -> list[str]:
    """`git log` reading contents for line counts (`numstat`), or trees alone: then only exact renames.

    Exact renames are found by comparing blob ids; one with edits needs both contents, which a
    partial clone may lack.
    """
    return [
        "-c",
        "core.quotepath=false",
        "log",
        "-z",
        *(RENAME_ARGS if numstat else ("-M100%", "--no-abbrev")),
        # A merge's files and lines: its diff against its first parent, what
        # it brings into the branch (git >= 2.31); without this, none at all.
        "--diff-merges=first-parent" if merge_diffs else "--diff-merges=off",
        "--no-color",
        "--no-ext-diff",
        LOG_ENCODING,
        "--numstat" if numstat else "--raw",
        f"--format={_LOG_FORMAT}",
    ]


def _stream_log(
    cwd: str | os.PathLike[str] | None,
    extra: Sequence[str],
    stdin: bytes | None = None,
    merge_diffs: bool = True,
    raw: _RawParser | None = None,
) -> Iterator[Commit]:
    """`git log` with line counts; with a `raw` parser, from trees alone (`_RawParser`)."""
    proc = subprocess.Popen(
        ["git", *log_args(numstat=raw is None, merge_diffs=merge_diffs), *extra],
        cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_git_env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    if stdin is not None:
        assert proc.stdin is not None
        # Large inputs are written from a thread-free loop: git reads stdin
        # fully before it writes, so this cannot deadlock.
        proc.stdin.write(stdin)
        proc.stdin.close()
    # The newest parsed commit is held back until the next one starts or git
    # exits cleanly: when git dies on a missing blob, the commit it was
    # printing is incomplete and must not be returned.
    completed = False
    last: Commit | None = None
    try:
        for commit in _parse_stream(proc.stdout, raw):
            if last is not None:
                yield last
            last = commit
        completed = True
    finally:
        if not completed:
            proc.kill()
        stderr = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        code = proc.wait()
    if code != 0:
        _raise_for(stderr, ["log"])
    if last is not None:
        yield last


def _raw_files(cwd: str | os.PathLike[str] | None, sha: str, parents: Sequence[str] = ()) -> list[FileChange]:
    """File list of one commit from trees alone; a merge's against its first parent.

    Finding a rename with edits reads the contents of the files it pairs: when
    one is missing, the list is made again with exact renames only (as a
    tree-only walk finds them), the others a deletion and an addition.
    """
    args = ["-c", "core.quotepath=false", "diff-tree", "-z", "-r", "--root", "--no-commit-id", "--raw"]
    try:
        out = run([*args, *RENAME_ARGS, *parents[:1], sha], cwd)
    except MissingObjectError:
        out = run([*args, "-M100%", *parents[:1], sha], cwd)
    files: list[FileChange] = []
    tokens = out.split(b"\0")
    i = 0
    while i < len(tokens) - 1:
        meta = tokens[i]
        if meta.startswith(b":"):
            if meta.split()[-1][:1] in (b"R", b"C"):  # a rename or copy: old name, then new name
                files.append(FileChange(decode_name(tokens[i + 2]), None, None, decode_name(tokens[i + 1])))
                i += 3
                continue
            files.append(FileChange(decode_name(tokens[i + 1]), None, None))
            i += 2
        else:
            i += 1
    return files


def _header(cwd: str | os.PathLike[str] | None, sha: str) -> list[Commit]:
    """One commit without its files: no diff is computed (even `--no-patch` with `--numstat` reads blobs)."""
    out = run(["log", "-z", "--no-walk", LOG_ENCODING, f"--format={_LOG_FORMAT}", sha, "--"], cwd)
    return list(_parse_stream(io.BytesIO(out)))[:1]


def iter_commits(
    rev_args: Sequence[str],
    cwd: str | os.PathLike[str] | None = None,
    *,
    max_count: int | None = None,
    extra: Sequence[str] = (),
    merge_diffs: bool = True,
) -> Iterator[Commit]:
    """Commits of `git log <rev_args>` with their numstat, newest first.

    A merge's files are its diff against its first parent; `merge_diffs=False`
    leaves them empty for a caller that never uses them (the history index:
    `Commit.history_files`), as computing them nearly doubles the time of a
    walk over numpy's whole history.

    Optimistic: one `git log` process. When an object is missing (a shallow,
    partial or damaged clone), the remaining commits are read a chunk at a
    time (`_read_chunk`): a commit whose blobs are all here with its line
    counts, any other with its file list from the trees and
    `lines_unknown=True`, instead of failing the whole range.
    """
    limit = [f"--max-count={max_count}"] if max_count is not None else []
    seen: set[str] = set()
    try:
        for commit in _stream_log(cwd, [*limit, *extra, *rev_args, "--"], merge_diffs=merge_diffs):
            seen.add(commit.sha)
            yield commit
        return
    except MissingObjectError:
        pass
    listed = run(["rev-list", *limit, *extra, *rev_args, "--"], cwd).decode("ascii").split()
    remaining = [sha for sha in listed if sha not in seen]
    for start in range(0, len(remaining), _CHUNK):
        yield from _read_chunk(cwd, remaining[start : start + _CHUNK], merge_diffs)


def _read_chunk(cwd: str | os.PathLike[str] | None, shas: list[str], merge_diffs: bool) -> Iterator[Commit]:
    """These commits, in this order, each with line counts when its blobs are here; three git processes.

    A tree-only `git log` gives each commit's files and the blobs a diff of it reads; `git rev-list
    --objects --missing=print` says which are missing (it never fetches, on any git, and reads no
    blob); one `git log --numstat` reads the commits that miss none. In a blobless partial clone a
    walk was one `git log` attempt per commit, each reading all the commits left: quadratic, 5
    commits/s on a 1,000-commit history. When git fails all the same (trees missing), the chunk is
    read one commit at a time, which names the commit whose files cannot be read.
    """
    raw = _RawParser()
    try:
        trees = list(
            _stream_log(cwd, ["--no-walk=unsorted", "--stdin"], stdin=_lines(shas), merge_diffs=merge_diffs, raw=raw)
        )
    except MissingObjectError:
        for sha in shas:
            yield from _read_one(cwd, sha, merge_diffs)
        return
    sides = dict.fromkeys(sha for commit in trees for sha in (commit.sha, *commit.parents[:1]))
    try:
        listed = run(
            ["rev-list", "--objects", "--no-object-names", "--missing=print", "--no-walk=unsorted", "--stdin"],
            cwd,
            stdin=_lines(list(sides)),
        )
    except GitError:  # a parent itself is missing (a damaged clone)
        for sha in shas:
            yield from _read_one(cwd, sha, merge_diffs)
        return
    absent = {line[1:] for line in listed.decode("ascii").split() if line.startswith("?")}
    readable = [commit.sha for commit in trees if not raw.blobs.get(commit.sha, set()) & absent]
    counted: dict[str, Commit] = {}
    if readable:
        try:
            for commit in _stream_log(
                cwd, ["--no-walk=unsorted", "--stdin"], stdin=_lines(readable), merge_diffs=merge_diffs
            ):
                counted[commit.sha] = commit
        except MissingObjectError:
            for sha in shas:
                yield from _read_one(cwd, sha, merge_diffs)
            return
    for commit in trees:
        yield counted.get(commit.sha, commit)


def _read_one(cwd: str | os.PathLike[str] | None, sha: str, merge_diffs: bool) -> list[Commit]:
    """One commit with its line counts, else with its file list from the trees and `lines_unknown=True`."""
    try:
        return list(_stream_log(cwd, ["--no-walk", sha], merge_diffs=merge_diffs))
    except MissingObjectError:
        pass
    single = _header(cwd, sha)
    for commit in single:
        try:
            commit.files = _raw_files(cwd, sha, commit.parents if commit.is_merge and merge_diffs else ())
        except MissingObjectError as exc:
            raise MissingObjectError(
                f"commit {sha}: its trees are not in this clone, so its files cannot be read ({exc})"
            ) from exc
        commit.lines_unknown = True
    return single


def _lines(shas: Sequence[str]) -> bytes:
    return "\n".join(shas).encode() + b"\n"


def resolve_commits(revs: Iterable[str], cwd: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Full shas of the revisions (shas, abbreviations, ref names) that name a commit here, in one git process."""
    wanted = [r for r in dict.fromkeys(revs) if r and "\n" not in r]
    if not wanted:
        return {}
    out = run(
        ["cat-file", "--batch-check=%(objectname) %(objecttype)"],
        cwd,
        stdin="".join(f"{r}^{{commit}}\n" for r in wanted).encode("utf-8", "surrogateescape"),
    )
    resolved: dict[str, str] = {}
    for rev, line in zip(wanted, out.decode("utf-8", "replace").splitlines()):
        parts = line.split()
        if len(parts) == 2 and parts[1] == "commit":
            resolved[rev] = parts[0]
    return resolved


def existing_commits(shas: Iterable[str], cwd: str | os.PathLike[str] | None = None) -> set[str]:
    """Which of these commits exist locally, in one git process."""
    return set(resolve_commits((s for s in shas if s and s != ZERO_SHA), cwd))


def root_commit(info: RepoInfo, cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The oldest root commit: a repository's identity that survives moves and re-clones.

    None in a shallow clone (its boundary commits look like roots) or before
    the first commit. Cached in the git dir: walking to the root of a large
    history costs a noticeable fraction of a second.
    """
    override = os.environ.get(paths.REPO_ENV)
    if override:
        return override.strip()
    if info.is_shallow:
        return None
    cache = paths.root_commit_cache(info.common_dir)
    try:
        with open(cache, encoding="ascii") as fh:
            cached = fh.read().strip()
        if len(cached) == 40:
            return cached
    except OSError:
        pass
    try:
        out = run(["rev-list", "--max-parents=0", "HEAD"], cwd).decode("ascii").split()
    except GitError:
        return None
    if not out:
        return None
    root = out[-1]
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        with open(cache, "w", encoding="ascii") as fh:
            fh.write(root + "\n")
    except OSError:
        pass
    return root
