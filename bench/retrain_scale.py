"""Benchmark: the scheduled retrain (`ci-risk retrain --all-repos`) on millions of builds in PostgreSQL.

Creates a database of its own on the real server (default `cirisk_bench`, dropped
at the end unless --keep), migrates it with ci-risk, and loads synthetic builds
with their features by COPY: --builds builds over --repos repositories of
uneven size (log-normal weights), interleaved in time as a shared CI history
is, each with a features row (a dozen features, an author from the
repository's pool, one to three files). Failures depend on some features, so
there is something to learn. Then runs `ci-risk retrain --all-repos` as a child
process and prints its wall time and peak resident memory (ru_maxrss of the
child), against the target of 2 GiB and 15 minutes.

With --in-memory N it first measures today's path (`dataset.ci_table` of whole
repositories, in a child) on the first repositories holding N builds, so the
figures sit side by side.

Usage: python bench/retrain_scale.py [--builds 10000000] [--repos 1000] [--max-rows 200000]
       [--server postgresql://postgres@127.0.0.1:5432/postgres] [--in-memory 100000] [--keep]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from harness import CI_RISK  # noqa: E402

CHUNK = 200_000
T0 = 1_600_000_000
FEATURES = (
    "n_commits",
    "nf",
    "la",
    "ld",
    "entropy",
    "files_ci",
    "files_test",
    "author_exp",
    "msg_fix",
    "file_age_days",
)
INDEXES = (  # the schema's indexes, dropped for the load and rebuilt after it (as a restore would)
    "builds_repo_time",
    "builds_repo_finished",
    "builds_repo_branch_finished",
    "builds_repo_commit",
    "builds_repo_branch_order",
)


def database_url(server: str, name: str) -> str:
    head, _, _ = server.rpartition("/")
    return f"{head}/{name}"


def create_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")


def drop_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def load(url: str, builds: int, repos: int, seed: int) -> float:
    """Schema by ci-risk, rows by COPY; returns seconds."""
    import psycopg

    from ci_risk_hook.outcomes.store import open_store

    open_store(url).close()  # migrations, as any writer would run them
    started = time.monotonic()
    rng = np.random.default_rng(seed)
    weights = rng.lognormal(0.0, 1.0, repos)
    weights /= weights.sum()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # no per-row foreign-key checks during the load
        for index in INDEXES:
            conn.execute(f"DROP INDEX {index}")
        conn.execute("ALTER TABLE builds DROP CONSTRAINT builds_repo_id_commit_sha_source_job_id_attempt_key")
        with conn.cursor().copy("COPY repositories (id, root_commit, name, created_at) FROM STDIN") as copy:
            for r in range(1, repos + 1):
                copy.write_row((r, f"{r:040x}", f"org/repo{r}", T0))
        for lo in range(0, builds, CHUNK):
            n = min(CHUNK, builds - lo)
            build_rows, feature_rows = chunk(rng, lo, n, repos, weights)
            with conn.cursor().copy(
                "COPY builds (id, repo_id, commit_sha, branch, status, raw_status, started_at, finished_at, "
                "duration_s, source, recorded_at) FROM STDIN"
            ) as copy:
                copy.write(build_rows)
            with conn.cursor().copy(
                "COPY build_features (build_id, schema_version, author, files, features, computed_at) FROM STDIN"
            ) as copy:
                copy.write(feature_rows)
            print(f"  loaded {lo + n:,} builds ({time.monotonic() - started:.0f} s)", flush=True)
        conn.execute("SELECT setval('builds_id_seq', (SELECT MAX(id) FROM builds))")
        conn.execute("SELECT setval('repositories_id_seq', (SELECT MAX(id) FROM repositories))")
        conn.execute(
            "ALTER TABLE builds ADD CONSTRAINT builds_repo_id_commit_sha_source_job_id_attempt_key "
            "UNIQUE (repo_id, commit_sha, source, job_id, attempt)"
        )
        conn.execute("CREATE INDEX builds_repo_time ON builds(repo_id, started_at)")
        conn.execute("CREATE INDEX builds_repo_finished ON builds(repo_id, finished_at)")
        conn.execute("CREATE INDEX builds_repo_branch_finished ON builds(repo_id, branch, finished_at)")
        conn.execute("CREATE INDEX builds_repo_commit ON builds(repo_id, commit_sha)")
        conn.execute(
            "CREATE INDEX builds_repo_branch_order ON builds(repo_id, branch, (COALESCE(started_at, recorded_at)), id)"
        )
        conn.execute("VACUUM ANALYZE builds")
        conn.execute("VACUUM ANALYZE build_features")
    return time.monotonic() - started


def chunk(rng: np.random.Generator, lo: int, n: int, repos: int, weights: np.ndarray) -> tuple[bytes, bytes]:
    """COPY text of `n` builds (ids lo+1...) and their features: one build every 10 s across the organisation."""
    ids = np.arange(lo + 1, lo + n + 1)
    repo = rng.choice(repos, n, p=weights) + 1
    started = T0 + ids * 10
    duration = rng.integers(120, 1800, n)
    finished = started + duration
    branch = np.where(rng.random(n) < 0.7, -1, rng.integers(0, 30, n))
    la = rng.lognormal(3.0, 1.5, n).astype(int)
    ld = rng.lognormal(2.0, 1.5, n).astype(int)
    nf = rng.integers(1, 20, n)
    files_ci = rng.random(n) < 0.08
    files_test = rng.random(n) < 0.4
    author = rng.integers(0, 50, n)
    author_exp = rng.integers(0, 2000, n)
    msg_fix = rng.random(n) < 0.15
    entropy = rng.random(n)
    age = rng.integers(0, 3000, n)
    p = 0.04 + 0.35 * files_ci + 0.12 * (la > 300) + 0.1 * (author_exp < 20)
    failed = rng.random(n) < p
    file_a, file_b = rng.integers(0, 100, n), rng.integers(0, 100, n)
    builds_text = []
    features_text = []
    columns = (ids, repo, started, finished, duration, branch, failed, author, nf, la, ld, entropy.round(3))
    extra = (files_ci.astype(int), files_test.astype(int), author_exp, msg_fix.astype(int), age, file_a, file_b)
    for i, r, s, f, d, b, fail, a, nf_, la_, ld_, ent, ci, test, exp, fix, age_, fa, fb in zip(
        *(c.tolist() for c in columns + extra)
    ):
        status = "fail" if fail else "pass"
        name = "main" if b < 0 else f"feature-{b}"
        builds_text.append(f"{i}\t{r}\t{i:040x}\t{name}\t{status}\t{status}\t{s}\t{f}\t{d}\tbench\t{f}\n")
        values = (
            f'{{"n_commits": 1, "nf": {nf_}, "la": {la_}, "ld": {ld_}, "entropy": {ent}, "files_ci": {ci}, '
            f'"files_test": {test}, "author_exp": {exp}, "msg_fix": {fix}, "file_age_days": {age_}}}'
        )
        files = f'["src/m{fa}.py", "tests/t{fb}.py"]'
        features_text.append(f"{i}\t2\tdev{a}@repo{r}.example\t{files}\t{values}\t{f}\n")
    return "".join(builds_text).encode(), "".join(features_text).encode()


# Linux carries a process's peak RSS across fork and exec: a child of this process, which has just generated
# millions of rows, would report at least this process's size. A small Python in between starts the measured
# command from its own small size and reports that command's peak alone.
MEASURE = (
    "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
    "sys.stderr.write('peak-kib %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)"
)


def run_child(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and output of one command, measured from a small intermediate process."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", MEASURE, *argv], capture_output=True, text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    lines = proc.stderr.strip().splitlines()
    peak = int(lines[-1].split()[1]) / 1024
    return seconds, peak, proc.stdout + "\n".join(lines[:-1])


IN_MEMORY_CHILD = """
import sys, resource
from ci_risk_hook.model.dataset import ci_table, concat
from ci_risk_hook.outcomes.store import open_store
store = open_store(sys.argv[1])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
want, tables, n = int(sys.argv[2]), [], 0
sizes = store.execute("SELECT repo_id FROM builds GROUP BY repo_id ORDER BY COUNT(*) DESC").fetchall()
for (repo_id,) in sizes:  # the largest repositories: ci_table holds one whole repository at a time
    if n >= want:
        break
    tables.append(ci_table(store, repo_id))
    n += len(tables[-1])
table = concat(tables)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{len(table)} {base / 1024:.0f} {peak / 1024:.0f}")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=10_000_000)
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--max-rows", type=int, default=None, help="retrain's --max-rows (default: its own)")
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="cirisk_bench")
    parser.add_argument("--in-memory", type=int, default=0, help="also measure ci_table on this many builds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the database (and skip loading if it exists)")
    parser.add_argument("--reuse", action="store_true", help="use the database a --keep run left")
    args = parser.parse_args()
    url = database_url(args.server, args.database)
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores shared with other work)")
    if not args.reuse:
        create_database(args.server, args.database)
    try:
        if not args.reuse:
            seconds = load(url, args.builds, args.repos, args.seed)
            print(f"loaded {args.builds:,} builds over {args.repos:,} repositories by COPY in {seconds:.0f} s")
        if args.in_memory:
            seconds, peak, out = run_child([sys.executable, "-c", IN_MEMORY_CHILD, url, str(args.in_memory)])
            rows, base, top = (int(v) for v in out.split()[:3])
            print(
                f"today's in-memory table (dataset.ci_table) of the largest repositories: {rows:,} builds, "
                f"peak RSS {top:,} MiB ({base:,} MiB before reading: ~{(top - base) * 100_000 / rows:,.0f} MiB "
                f"per 100,000 builds), {seconds:.0f} s"
            )
        with tempfile.TemporaryDirectory() as tmp:
            argv = [CI_RISK, "retrain", "--all-repos", "--db", url]
            argv += ["--out", os.path.join(tmp, "model.json")]
            if args.max_rows:
                argv += ["--max-rows", str(args.max_rows)]
            seconds, peak, out = run_child(argv)
        print("\n".join(out.strip().splitlines()[-3:]))
        print(
            f"retrain --all-repos on {args.builds:,} builds / {args.repos:,} repositories: {seconds:.0f} s "
            f"(target <= 900 s) -> {'MET' if seconds <= 900 else 'NOT MET'}; peak RSS {peak:,.0f} MiB "
            f"(target <= 2,048 MiB) -> {'MET' if peak <= 2048 else 'NOT MET'}"
        )
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        if not args.keep:
            drop_database(args.server, args.database)
    return 0


if __name__ == "__main__":
    sys.exit(main())
