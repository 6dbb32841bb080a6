"""Benchmark: peak memory and time of `ci-risk import` on a large CSV of outcomes.

Usage: python bench/import_memory.py [--rows 2700000] [--commits 300] [--repo PATH] [--timeout S]

Without --repo it builds a real git repository of --commits commits in a
temporary directory (with `git fast-import`: a few files, changed by a few
authors); with --repo it uses the newest --commits first-parent commits of
that clone (read only: the history index and the store go to a temporary
directory). The CSV has --rows outcomes that cycle through those commits on
four branches, one job id per row (so every row is a build of its own),
about one failure in five, a minute apart. `ci-risk import` runs in a child
process; the figures are its wall time, CPU time and peak resident memory
(the kernel's high-water mark; sampled every half second for the timeline
and for the parse-and-store and feature phases apart, told by the progress
lines the run prints). --timeout stops a run that is still going
and reports what it reached.

To measure another checkout of ci-risk (e.g. main, for a before/after
figure), put its directory first on PYTHONPATH: the script reports which
`ci_risk_hook` it ran.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import isolated_env

BRANCHES = ("main", "dev", "release", "feature-x")


def make_repo(path: Path, commits: int) -> None:
    """A real repository: `commits` commits on main, each changing one or two files of a small project."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    rng = random.Random(1)
    authors = [
        ("Maintainer", "maint@example.com"),
        ("Contributor", "contrib@example.com"),
        ("Newcomer", "new@example.com"),
    ]
    files = [f"src/module_{i}.py" for i in range(20)] + ["tests/test_a.py", "README.md", "setup.py"]
    content = {name: "".join(f"line {j}\n" for j in range(30)) for name in files}
    stream: list[bytes] = []
    when = 1_600_000_000
    for n in range(commits):
        when += 3600
        name, email = authors[rng.randrange(len(authors))]
        changed = rng.sample(files, 2) if n else files
        parts = []
        for file_name in changed:
            content[file_name] += f"change {n}\n"
            data = content[file_name].encode()
            parts.append(b"M 100644 inline %s\ndata %d\n%s\n" % (file_name.encode(), len(data), data))
        message = f"change {n}".encode()
        stream.append(b"commit refs/heads/main\n")
        stream.append(
            b"author %s <%s> %d +0000\ncommitter %s <%s> %d +0000\n"
            % (name.encode(), email.encode(), when, name.encode(), email.encode(), when)
        )
        stream.append(b"data %d\n%s\n" % (len(message), message))
        stream.extend(parts)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=b"".join(stream), check=True)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=path, check=True)


def write_csv(path: Path, shas: list[str], rows: int) -> None:
    rng = random.Random(2)
    start = 1_600_000_000 + 3600 * len(shas)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("commit,status,branch,started_at,duration_s,job_id\n")
        for i in range(rows):
            status = "failed" if rng.random() < 0.2 else "passed"
            fh.write(
                f"{shas[i % len(shas)]},{status},{BRANCHES[i % len(BRANCHES)]},{start + 60 * i},"
                f"{rng.randint(30, 900)},{i}\n"
            )


class Sampler(threading.Thread):
    """Reads the child's resident memory twice a second: the timeline and the peak per phase."""

    def __init__(self, pid: int, stderr_path: Path) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.stderr_path = stderr_path
        self.samples: list[tuple[float, int, str]] = []  # (seconds, kB, phase)
        self.stop = False

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop:
            try:
                with open(f"/proc/{self.pid}/status", encoding="ascii") as fh:
                    rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                return
            self.samples.append((time.monotonic() - started, rss, self.phase()))
            time.sleep(0.5)

    def phase(self) -> str:
        try:
            text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "?"
        return "features" if "features" in text else "parse+store" if text.strip() else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_700_000)
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--repo", type=Path, default=None, help="a clone to use instead of a generated repository")
    parser.add_argument("--timeout", type=float, default=None, help="stop the import after this many seconds")
    args = parser.parse_args()
    env_probe = subprocess.run(
        [sys.executable, "-c", "import ci_risk_hook, os; print(os.path.dirname(ci_risk_hook.__file__))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    source = env_probe.stdout.strip()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=source, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=source, capture_output=True, text=True)
    version = head.stdout.strip() + (" with local changes" if dirty.stdout.strip() else "")
    print(f"ci_risk_hook under test: {source} ({version or 'not a git checkout'})")
    with tempfile.TemporaryDirectory(prefix="ci-risk-import-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.repo is None:
            repo = tmp / "repo"
            make_repo(repo, args.commits)
        else:
            repo = args.repo.resolve()
        shas = subprocess.run(
            ["git", "rev-list", "--first-parent", f"--max-count={args.commits}", "--reverse", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        csv_path = tmp / "outcomes.csv"
        started = time.perf_counter()
        write_csv(csv_path, shas, args.rows)
        print(
            f"CSV: {args.rows:,} rows over {len(shas)} commits of {repo} "
            f"({csv_path.stat().st_size / 1e6:,.0f} MB, written in {time.perf_counter() - started:.1f} s)"
        )
        env = isolated_env(tmp)
        stderr_path = tmp / "stderr.txt"
        with open(stderr_path, "wb") as err:
            started = time.perf_counter()
            command = [
                sys.executable,
                "-c",
                "import sys; from ci_risk_hook.cli.main import main; sys.exit(main(sys.argv[1:]))",
                "import",
                str(csv_path),
                "--format",
                "csv",
            ]
            child = subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=err)
            sampler = Sampler(child.pid, stderr_path)
            sampler.start()
            try:
                out, _ = child.communicate(timeout=args.timeout)
                finished = True
            except subprocess.TimeoutExpired:
                child.kill()
                out, _ = child.communicate()
                finished = False
            seconds = time.perf_counter() - started
            sampler.stop = True
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the generating git runs count too, a second or so
        peak_kb, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
        stderr_text = stderr_path.read_text(encoding="utf-8", errors="replace")
        print(
            f"ci-risk import: "
            f"{'exit ' + str(child.returncode) if finished else f'stopped after {args.timeout:.0f} s'}, "
            f"{seconds:,.1f} s wall, {cpu:,.1f} s CPU (on a busy machine wall time stretches, CPU time less), "
            f"peak RSS {peak_kb / 1024:,.0f} MB"
        )
        for phase in ("parse+store", "features"):
            values = [(t, kb) for t, kb, p in sampler.samples if p == phase]
            if values:
                print(
                    f"  {phase:<12} {values[-1][0] - values[0][0]:>8,.1f} s  peak sampled RSS "
                    f"{max(kb for _, kb in values) / 1024:,.0f} MB"
                )
        timeline = sampler.samples[:: max(1, len(sampler.samples) // 12)]
        print("  timeline (s: MB): " + ", ".join(f"{t:.0f}: {kb / 1024:,.0f}" for t, kb, _ in timeline))
        print("  stdout: " + " | ".join(out.decode(errors="replace").strip().splitlines()))
        progress_lines = [line for line in stderr_text.splitlines() if line.strip()]
        print(f"  stderr: {len(progress_lines)} lines" + (f", last: {progress_lines[-1]}" if progress_lines else ""))
        store = Path(env["CI_RISK_DB"])
        if store.exists():
            print(f"  store: {store.stat().st_size / 1e6:,.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
