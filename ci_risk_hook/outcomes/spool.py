"""The hook's predictions on their way to the store: a push appends them here, the next push moves them in.

Committing a row to the store inside the push costs the disk's time: an
SQLite commit in a fresh write-ahead log syncs its header (4-20 ms measured
on the benchmark machine), closing the connection checkpoints and syncs
again, and a PostgreSQL commit waits for the server's flush. Appending a
line to a file in the git dir costs a fraction of a millisecond; the next
push's store worker (which already has the store open, while the push's
commits are read) or `ci-risk monitor` moves the lines into the store.

A file being moved is renamed first (`.<pid>-<ns>-<random>.moving`), and a row already in
the store is not added twice (a unique index), so a push that exits in the
middle of a move loses nothing and duplicates nothing.

A prediction the push cannot spool (the file at its cap, or something else
in its place) is counted, one empty file per push whose name holds the count,
and whoever moves the rows in says how many were dropped: losing rows is never
silent. Such a file is made whole at once (O_EXCL) and counted only by the
mover whose removal of it succeeds, so two pushes or moves at once neither
lose a count nor say one twice. Standard library only.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import stat
import time
from typing import TYPE_CHECKING, Iterator, NamedTuple, Sequence

from ci_risk_hook import config, paths

if TYPE_CHECKING:
    from ci_risk_hook.outcomes.store import Prediction, Store

MAX_BYTES = 1024 * 1024  # about 3,000 predictions: past this (no store reachable for months) new ones are dropped
_DROPPED_MAX_FILES = 1000  # the drop counts' own cap (one file a push): past it the count is a lower bound
_MOVING = ".moving"
_WRITES = 3  # a push writes its rows again when a move took the file meanwhile, at most this often in all
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_DROP_NAME = re.compile(r"\.([1-9][0-9]{0,8})\.[0-9]+-[0-9]+-[0-9a-f]{8}")  # .<count>.<pid>-<ns>-<random>
_LATEST = 2**53  # a time (seconds) past this is no time: a foreign or forged line
# Not following a symlink (the pending file pointing at another file) and not waiting on a FIFO's other end.
_FLAGS = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def _open(path: str, flags: int) -> int:
    """A descriptor of `path` only if it is a regular file: a FIFO, device or directory in its place is refused."""
    fd = os.open(path, flags | _FLAGS, 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return fd


class Moved(NamedTuple):
    """What a move did: rows read into the store, one line per thing its reader should know, drops it took."""

    rows: int
    notes: list[str]
    dropped: int = 0


def append(common_dir: str, rows: Sequence[Prediction]) -> None:
    """Best effort: a full disk, a read-only git dir or a spool at its cap costs the push nothing.

    Rows that could not be spooled are counted (`_count_dropped`), so the next move can say so. A file
    a move took while this push wrote to it may have been read before these rows: they are written
    again to the new file (a row that reaches the store twice is one row, by its unique index).
    """
    if not rows:
        return
    path = paths.prediction_spool(common_dir)
    try:
        text = "".join(json.dumps(list(r), allow_nan=False) + "\n" for r in rows)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        for _ in range(_WRITES):
            with os.fdopen(_open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "ab") as fh:
                size = fh.tell()
                if size + len(text) > MAX_BYTES:
                    _count_dropped(common_dir, len(rows))
                    return
                fh.write(("\n" if size else "").encode() + text.encode("utf-8"))  # a torn last line stays alone
                fh.flush()
                if _still_at(fh.fileno(), path):
                    return
    except (OSError, ValueError):
        _count_dropped(common_dir, len(rows))


def _still_at(fd: int, path: str) -> bool:
    """Whether the open file is still the one at `path` (a move renames it away to take it)."""
    try:
        here, there = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _count_dropped(common_dir: str, count: int) -> None:
    """An empty file named `<predictions-dropped>.<count>.<pid>-<ns>-<random>`: created whole, or not at all."""
    prefix = paths.dropped_predictions(common_dir)
    try:
        if len(_drop_files(prefix)) >= _DROPPED_MAX_FILES:
            return
        name = f"{prefix}.{count}.{os.getpid()}-{time.time_ns()}-{os.urandom(4).hex()}"
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FLAGS, 0o644))
    except OSError:
        pass


def _drop_files(prefix: str) -> list[tuple[str, int]]:
    """The drop counts waiting (file, count): regular files named as `_count_dropped` names them."""
    found = []
    for name in glob.glob(glob.escape(prefix) + ".*"):
        match = _DROP_NAME.fullmatch(name[len(prefix) :])
        try:
            if match and stat.S_ISREG(os.lstat(name).st_mode):
                found.append((name, int(match.group(1))))
        except OSError:
            continue
    return found


def _take_dropped(common_dir: str) -> tuple[int, bool]:
    """The predictions counted since the last move, and whether the counts were at their cap (a lower bound).

    A count is this move's only if this move's removal of its file succeeds: of two moves at once, exactly one.
    """
    waiting = _drop_files(paths.dropped_predictions(common_dir))
    taken = 0
    for name, count in waiting:
        try:
            os.remove(name)
        except OSError:
            continue
        taken += count
    return taken, len(waiting) >= _DROPPED_MAX_FILES


def _contents(files: Sequence[str], limit: int) -> Iterator[bytes]:
    """At most `limit` bytes of each claimed file that can still be read (another mover may have taken one)."""
    for name in files:
        try:
            with os.fdopen(_open(name, os.O_RDONLY), "rb") as fh:
                yield fh.read(limit)
        except OSError:
            continue


def claim(common_dir: str, notes: list[str] | None = None) -> list[str]:
    """Take the pending file (renamed to this process's name) and any left by a move that did not finish.

    Only regular files are taken: anything else in the pending file's place is left alone and named in
    `notes`, and a leftover `.moving` that is no regular file (an older ci-risk renamed whatever it found)
    is removed, or, a directory holding files, named in `notes`.
    """
    path = paths.prediction_spool(common_dir)
    notes = [] if notes is None else notes
    # A name of this move's own: a mover that took another's leftover removes it by name, never a later file.
    mine = f"{path}.{os.getpid()}-{time.time_ns()}-{os.urandom(4).hex()}{_MOVING}"
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.replace(path, mine)
        else:
            notes.append(f"{path} is not a regular file: left alone, and predictions are not kept until it is removed")
    except OSError:
        pass
    return [name for name in sorted(glob.glob(glob.escape(path) + ".*" + _MOVING)) if _regular_or_cleared(name, notes)]


def _regular_or_cleared(name: str, notes: list[str]) -> bool:
    """True for a regular file to read; anything else is removed (it carries our name), else named in `notes`."""
    try:
        mode = os.lstat(name).st_mode
        if stat.S_ISREG(mode):
            return True
        if stat.S_ISDIR(mode):
            os.rmdir(name)
        else:
            os.remove(name)  # a symlink itself, not what it points at; a FIFO without opening it
    except FileNotFoundError:
        pass
    except OSError:
        notes.append(f"{name} is not a regular file and could not be removed: left alone, remove it")
    return False


def read(files: Sequence[str]) -> list[Prediction]:
    """The valid rows of the claimed files (a torn or foreign line is skipped)."""
    from ci_risk_hook.outcomes.store import Prediction

    rows = []
    for data in _contents(files, MAX_BYTES + 1):
        for line in data.splitlines():
            try:
                fields = json.loads(line.decode("utf-8"))
                row = Prediction(*fields)
            except (UnicodeDecodeError, ValueError, TypeError, RecursionError):
                continue
            if _valid(row):
                rows.append(row)
    return rows


def _valid(row: Prediction) -> bool:
    """Only what the gate writes: shas, known words, probabilities in [0, 1], a plausible time."""
    texts = (row.ci_run, row.model_sha256)
    chances = (row.score, row.warn_at, row.block_at)
    return (
        all(isinstance(t, str) for t in texts)
        and all(isinstance(n, (int, float)) and not isinstance(n, bool) and math.isfinite(n) for n in chances)
        and all(0.0 <= n <= 1.0 for n in chances)
        and isinstance(row.predicted_at, int)
        and not isinstance(row.predicted_at, bool)
        and 0 <= row.predicted_at < _LATEST
        and all(x is None or isinstance(x, str) for x in (row.branch, row.author))
        and isinstance(row.commit, str)
        and _SHA.fullmatch(row.commit) is not None
        and (row.base is None or (isinstance(row.base, str) and _SHA.fullmatch(row.base) is not None))
        and (row.model_sha256 == "" or _SHA.fullmatch(row.model_sha256) is not None)
        and row.decision in ("pass", "warn", "block")
        and row.mode in config.MODES
        and row.place in ("hook", "manual", "ci")
    )


def move(store: Store, repo_id: int | None, root: str, common_dir: str) -> Moved:
    """Move the pending predictions of this clone into the store; how many rows were read, and what was lost.

    The drop counts are taken after the rows are in (a store error leaves both for the next move): said once.
    """
    notes: list[str] = []
    files = claim(common_dir, notes=notes)
    rows = read(files)
    if rows:
        store.add_predictions(store.repository_id(root) if repo_id is None else repo_id, rows)
    for name in files:
        try:
            os.remove(name)
        except OSError:
            pass
    dropped, capped = _take_dropped(common_dir)
    if dropped:
        notes.append(
            f"{'at least ' if capped else ''}{dropped} prediction{'s' if dropped != 1 else ''} of this clone "
            f"could not be kept for the store (the pending file was over its {MAX_BYTES // (1024 * 1024)} MB cap "
            "or could not be written) and were not recorded"
        )
    return Moved(len(rows), notes, dropped)
