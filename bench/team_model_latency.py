"""Benchmark: `ci-risk check` with a team model configured, against the same check without one.

The issue's bar: with a team model configured and its source unreachable,
the hook stays within 20 ms of the offline median. Four configurations,
runs interleaved so machine load hits them alike, on a small real repository
(one pending commit, warm history index), each scoring with the bundled
model's forest (published and pulled as the team model where one is used):

  offline        no model_source: the bundled model
  team, cached   model_source set, pulled, not due for a refresh
  silent, due    the source accepts connections and never answers; due on
                 every run: the first run starts a refresher that hangs
                 (holding the lock), later runs find the lock taken
  refused, due   the source refuses connections; due on every run: every run
                 starts a detached refresher (which fails at once; the next
                 configuration's run waits 0.5 s for it to finish)

Usage: python bench/team_model_latency.py [--runs 30]
Needs the team extra (fsspec, cryptography) in the running environment.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import CI_RISK


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_repo(path: Path) -> None:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    for i in range(5):
        (path / "app.py").write_text("".join(f"line {j}\n" for j in range(30 + i)))
        git(path, "add", "-A")
        git(path, "-c", "user.name=B", "-c", "user.email=b@example.com", "commit", "-q", "-m", f"c{i}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Silent:
    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


def pull_over_http(published: Path, port: int, env: dict[str, str]) -> str:
    handler = functools.partial(_Quiet, directory=str(published.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    source = f"http://127.0.0.1:{port}/{published.name}"
    subprocess.run([CI_RISK, "model", "pull", source], env=env, check=True, capture_output=True)
    server.shutdown()
    server.server_close()
    return source


def timed(cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([CI_RISK, "check", "--from", "HEAD~1"], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or not proc.stdout.startswith("ci-risk: risk "):
        raise SystemExit(f"check did not score: {proc.stdout[:200]!r} {proc.stderr[:200]!r}")
    return elapsed


def in_process(env: dict[str, str], cached_source: str, silent_source: str) -> None:
    """What the team model adds to a push, measured apart from the process start that dominates the noise."""
    probe = (
        "import time, statistics\n"
        "import ci_risk_hook.gate.evaluate, ci_risk_hook.gate.output, ci_risk_hook.gate.run\n"  # the push's own
        "t = time.perf_counter()\n"
        "from ci_risk_hook.distribution import team\n"
        "imported = (time.perf_counter() - t) * 1000\n"
        "def per_call(source, interval):\n"
        "    runs = []\n"
        "    for _ in range(200):\n"
        "        t = time.perf_counter()\n"
        "        team.cached_model(source, (), interval, [], refresh=True)\n"
        "        runs.append((time.perf_counter() - t) * 1000)\n"
        "    return statistics.median(runs)\n"
        f"cached = per_call({cached_source!r}, 86400.0)\n"
        f"due = per_call({silent_source!r}, 1e-9)\n"
        "print(f'{imported:.2f} {cached:.3f} {due:.3f}')\n"
    )
    import fcntl

    from ci_risk_hook import paths
    from ci_risk_hook.distribution import cache

    os.environ["CI_RISK_CACHE"] = env["CI_RISK_CACHE"]
    lock = os.open(paths.team_lock(cache.source_key(silent_source)), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(lock, fcntl.LOCK_EX)  # a refresher is running: the due calls must not start 1,800 of them
    times = [
        subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(9)
    ]
    imports = statistics.median(float(t[0]) for t in times)
    cached = statistics.median(float(t[1]) for t in times)
    silent = statistics.median(float(t[2]) for t in times)
    print("in-process, medians of 9 interpreters:")
    print(f"  importing the team-model modules      {imports:6.2f} ms (after what every push imports)")
    print(f"  finding the cached model, not due     {cached:6.3f} ms per push")
    print(f"  same, due, refresher holding the lock {silent:6.3f} ms per push")
    os.close(lock)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    from ci_risk_hook.distribution.published import publish
    from ci_risk_hook.gate.evaluate import bundled_model_path

    bundled = bundled_model_path()
    assert bundled is not None, "no bundled model"
    tmp = Path(tempfile.mkdtemp(prefix="ci-risk-bench-"))
    try:
        base = {
            **os.environ,
            "CI_RISK_HOME": str(tmp / "home"),
            "CI_RISK_CACHE": str(tmp / "cache"),
            "CI_RISK_CONFIG": str(tmp / "config.ini"),
            "CI_RISK_INDEX_BUDGET": "300",
        }
        repo = tmp / "repo"
        make_repo(repo)
        subprocess.run([CI_RISK, "index"], cwd=repo, env=base, check=True, capture_output=True)
        published = tmp / "published"
        publish(Path(bundled).read_bytes(), str(published))
        subprocess.run([CI_RISK, "model", "pull", str(published)], env=base, check=True, capture_output=True)
        silent_port, refused_port = free_port(), free_port()
        silent_source = pull_over_http(published, silent_port, base)
        refused_source = pull_over_http(published, refused_port, base)
        silent = Silent(silent_port)  # same URL as the cache's, now never answering
        configs = {
            "offline": base,
            "team, cached": {**base, "CI_RISK_MODEL_SOURCE": str(published), "CI_RISK_MODEL_REFRESH": "1d"},
            "silent, due": {**base, "CI_RISK_MODEL_SOURCE": silent_source, "CI_RISK_MODEL_REFRESH": "0.001"},
            "refused, due": {**base, "CI_RISK_MODEL_SOURCE": refused_source, "CI_RISK_MODEL_REFRESH": "0.001"},
        }
        for env in configs.values():
            timed(repo, env)  # warm-up
        times: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(args.runs):
            for name, env in configs.items():
                times[name].append(timed(repo, env) * 1000)
                if name == "refused, due":
                    time.sleep(0.5)  # its detached refresher must not run during the next configuration's check
        offline = statistics.median(times["offline"])
        print(f"ci-risk check, {args.runs} interleaved runs each, load average {os.getloadavg()[0]:.1f}:")
        for name, values in times.items():
            median = statistics.median(values)
            print(
                f"  {name:<14} median {median:6.1f} ms  (min {min(values):6.1f}, max {max(values):6.1f})"
                f"  vs offline {median - offline:+5.1f} ms"
            )
        print(f"  silent server: {len(silent.held)} connection(s) held open by hung refreshers")
        in_process(base, str(published), silent_source)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
