"""The pending predictions' drop count under concurrency: real processes pushing and moving at once.

Each drop is said exactly once: two moves at the same moment (two pushes, or a push and `ci-risk monitor`)
neither both report a count nor lose one, and a push that counts while a move takes the counts loses nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ci_risk_hook.outcomes import spool
from ci_risk_hook.outcomes.store import Prediction

GOOD = Prediction("a" * 40, None, "main", 0.5, "warn", "warn", "", 0.3, 0.9, "hook", "", None, 1_700_000_000)
DROPS = 3000
ROWS = 1500
NOTE = re.compile(r"(at least )?(\d+) predictions? of this clone could not be kept")

# A push that cannot spool (a directory stands where its pending file goes: every append drops and counts).
PUSHER = """
import os, sys, time
from ci_risk_hook.outcomes import spool
from ci_risk_hook.outcomes import spool
from ci_risk_hook.outcomes.store import Prediction
common, start, done, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
row = Prediction("a" * 40, None, "main", 0.5, "warn", "warn", "", 0.3, 0.9, "hook", "", None, 1_700_000_000)
while not os.path.exists(start):
    time.sleep(0.001)
for _ in range(n):
    spool.append(common, [row])
open(done, "w").close()
"""

# A move (the next push's store worker, or monitor): prints the drop count each of its notes reports.
MOVER = """
import os, re, sys, time
from ci_risk_hook.outcomes import spool
common, start, done = sys.argv[1], sys.argv[2], sys.argv[3]
note = re.compile(r"(at least )?(\\d+) predictions? of this clone could not be kept")
while not os.path.exists(start):
    time.sleep(0.001)
total = 0
while True:
    finished = os.path.exists(done)
    for line in spool.move(None, None, "", common).notes:
        found = note.search(line)
        total += int(found.group(2)) if found else 0
    if finished:
        break
print(total)
"""


def test_drops_counted_while_two_movers_take_them_are_each_reported_once(tmp_path: Path) -> None:
    common = tmp_path / "gitdir"
    (common / "ci-risk" / "predictions-pending.jsonl").mkdir(parents=True)
    start, done = tmp_path / "start", tmp_path / "done"
    args = [str(common), str(start), str(done)]
    movers = [subprocess.Popen([sys.executable, "-c", MOVER, *args], stdout=subprocess.PIPE, text=True) for _ in "ab"]
    pusher = subprocess.Popen([sys.executable, "-c", PUSHER, *args, str(DROPS)])
    start.touch()
    assert pusher.wait(timeout=300) == 0
    reported = [int(m.communicate(timeout=300)[0]) for m in movers]
    assert all(m.returncode == 0 for m in movers)
    last = [NOTE.search(line) for line in spool.move(None, None, "", str(common)).notes]
    reported.append(sum(int(found.group(2)) for found in last if found))
    assert sum(reported) == DROPS, reported
    assert all(found is None or not found.group(1) for found in last)


# A push that spools one prediction each time (distinct times: distinct rows).
ROW_PUSHER = """
import os, sys, time
from ci_risk_hook.outcomes import spool
from ci_risk_hook.outcomes import spool
from ci_risk_hook.outcomes.store import Prediction
common, start, done, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
while not os.path.exists(start):
    time.sleep(0.001)
for i in range(n):
    spool.append(common, [Prediction("a" * 40, None, "main", 0.5, "warn", "warn", "", 0.3, 0.9, "hook", "", None, i)])
open(done, "w").close()
"""

# A move into a real SQLite store, over and over until the pusher is done.
ROW_MOVER = """
import os, sys, time
from ci_risk_hook.outcomes import spool
from ci_risk_hook.outcomes.store import open_store
common, start, done, url = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
store = open_store(url)
repo_id = store.repository_id("r" * 40)
while not os.path.exists(start):
    time.sleep(0.001)
while True:
    finished = os.path.exists(done)
    spool.move(store, repo_id, "r" * 40, common)
    if finished:
        break
store.close()
"""


def test_rows_spooled_while_a_move_takes_the_file_all_reach_the_store_once(tmp_path: Path) -> None:
    from ci_risk_hook.outcomes.store import open_store

    common, url = tmp_path / "gitdir", str(tmp_path / "store.sqlite")
    store = open_store(url)
    repo_id = store.repository_id("r" * 40)
    start, done = tmp_path / "start", tmp_path / "done"
    args = [str(common), str(start), str(done)]
    movers = [subprocess.Popen([sys.executable, "-c", ROW_MOVER, *args, url]) for _ in "ab"]
    pusher = subprocess.Popen([sys.executable, "-c", ROW_PUSHER, *args, str(ROWS)])
    start.touch()
    try:
        assert pusher.wait(timeout=300) == 0
        assert all(m.wait(timeout=300) == 0 for m in movers)
        spool.move(store, repo_id, "r" * 40, str(common))
        assert sorted(p.predicted_at for p in store.predictions(repo_id)) == list(range(ROWS))
    finally:
        store.close()


def test_a_move_removing_a_leftover_it_took_never_removes_a_later_claim_of_the_same_process(tmp_path: Path) -> None:
    """A move lists another's claimed file as a leftover; by the time it removes it, the same process (same pid)
    may have claimed newer rows: they must be under another name."""
    common = str(tmp_path / "gitdir")
    spool.append(common, [GOOD])
    first = spool.claim(common)  # a move takes the pending file
    other = spool.claim(common)  # another move at the same moment takes it too, as a leftover
    assert other == first and spool.read(other) == [GOOD]
    for name in first:  # the first move has stored its rows and removes its file
        os.remove(name)
    later = GOOD._replace(predicted_at=GOOD.predicted_at + 1)
    spool.append(common, [later])
    second = spool.claim(common)  # this process's next move
    for name in other:  # the other move finishes: it removes what it took, by name
        if os.path.exists(name):
            os.remove(name)
    assert spool.read(second) == [later]
