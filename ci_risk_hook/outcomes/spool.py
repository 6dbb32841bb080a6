"""The hook's predictions on their way to the store: a push appends them here, the next push moves them in.

Committing a row to the store inside the push costs the disk's time: an
SQLite commit in a fresh write-ahead log syncs its header (4-20 ms measured
on the benchmark machine), closing the connection checkpoints and syncs
again, and a PostgreSQL commit waits for the server's flush. Appending a
line to a file in the git dir costs a fraction of a millisecond; the next
push's store worker (which already has the store open, while the push's
commits are read) or `ci-risk monitor` moves the lines into the store.

A file being moved is renamed first (`.<pid>.moving`), and a row already in
the store is not added twice (a unique index), so a push that exits in the
middle of a move loses nothing and duplicates nothing.

A prediction the push cannot spool (the file at its cap, or something else
in its place) is counted in a second file, one line per push, and whoever
moves the rows in says how many were dropped: losing rows is never silent.
Standard library only.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import stat
from typing import TYPE_CHECKING, Iterator, NamedTuple, Sequence

from ci_risk_hook import config, paths

if TYPE_CHECKING:
    from ci_risk_hook.outcomes.store import Prediction, Store

MAX_BYTES = 1024 * 1024  # about 3,000 predictions: past this (no store reachable for months) new ones are dropped
_DROPPED_MAX_BYTES = 64 * 1024  # the drop counter's own cap: past it the count is a lower bound
_MOVING = ".moving"
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
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
    """What a move did: rows read into the store, and one line per thing its reader should know."""

    rows: int
    notes: list[str]


def append(common_dir: str, rows: Sequence[Prediction]) -> None:
    """Best effort: a full disk, a read-only git dir or a spool at its cap costs the push nothing.

    Rows that could not be spooled are counted (`_count_dropped`), so the next move can say so.
    """
    if not rows:
        return
    path = paths.prediction_spool(common_dir)
    try:
        text = "".join(json.dumps(list(r), allow_nan=False) + "\n" for r in rows)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with os.fdopen(_open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "ab") as fh:
            size = fh.tell()
            if size + len(text) > MAX_BYTES:
                _count_dropped(common_dir, len(rows))
                return
            fh.write(("\n" if size else "").encode() + text.encode("utf-8"))  # a torn last line stays alone
    except (OSError, ValueError):
        _count_dropped(common_dir, len(rows))


def _count_dropped(common_dir: str, count: int) -> None:
    """One line `<count>` appended (atomic for so short a write: two pushes at once both count)."""
    try:
        counter = _open(paths.dropped_predictions(common_dir), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        with os.fdopen(counter, "ab") as fh:
            if fh.tell() < _DROPPED_MAX_BYTES:
                fh.write(f"{count}\n".encode())
    except OSError:
        pass


def _dropped(files: Sequence[str]) -> tuple[int, bool]:
    """The predictions counted in the claimed counter files, and whether a file was at its cap (a lower bound)."""
    total, capped = 0, False
    for data in _contents(files, _DROPPED_MAX_BYTES + 64):
        capped = capped or len(data) >= _DROPPED_MAX_BYTES
        total += sum(int(line) for line in data.split() if line.isdigit() and len(line) < 10)
    return total, capped


def _contents(files: Sequence[str], limit: int) -> Iterator[bytes]:
    """At most `limit` bytes of each claimed file that can still be read (another mover may have taken one)."""
    for name in files:
        try:
            with os.fdopen(_open(name, os.O_RDONLY), "rb") as fh:
                yield fh.read(limit)
        except OSError:
            continue


def claim(common_dir: str, path: str | None = None, notes: list[str] | None = None) -> list[str]:
    """Take the pending file (renamed to this process's name) and any left by a move that did not finish.

    `path`: another file moved alike (the drop counter); by default the pending predictions. Only regular
    files are taken: anything else in the pending file's place is left alone and named in `notes`, and a
    leftover `.moving` that is no regular file (an older ci-risk renamed whatever it found) is removed,
    or, a directory holding files, named in `notes`.
    """
    path = paths.prediction_spool(common_dir) if path is None else path
    notes = [] if notes is None else notes
    mine = f"{path}.{os.getpid()}{_MOVING}"
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

    The drop count is claimed and cleared with the rows: said once, by the move that took them in.
    """
    notes: list[str] = []
    files = claim(common_dir, notes=notes)
    counters = claim(common_dir, paths.dropped_predictions(common_dir), notes)
    if not files and not counters:
        return Moved(0, notes)
    rows = read(files)
    if rows:
        store.add_predictions(store.repository_id(root) if repo_id is None else repo_id, rows)
    dropped, capped = _dropped(counters)
    for name in files + counters:
        try:
            os.remove(name)
        except OSError:
            pass
    if dropped:
        notes.append(
            f"{'at least ' if capped else ''}{dropped} prediction{'s' if dropped != 1 else ''} of this clone "
            f"could not be kept for the store (the pending file was over its {MAX_BYTES // (1024 * 1024)} MB cap "
            "or could not be written) and were not recorded"
        )
    return Moved(len(rows), notes)
