"""The team model on the push path: use the cached pull, refresh it in the background, never wait on the network.

When a model source is configured the hook loads the model last pulled from
it (from the cache), and at most once per `model_refresh` interval hands a
refresh to a detached `python -m ci_risk_hook.distribution.refresh` holding
an flock (as the history index's background builder does), so a push never
waits for the source and two pushes never refresh at once. What went wrong
last time (offline, refused, missing extra) is one line of the push's output.
`refresh_now` is the foreground pull with a time limit, for CI steps.

The standard library only; fsspec and cryptography load in the refresher.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from typing import NamedTuple, Sequence

from ci_risk_hook import paths
from ci_risk_hook.distribution import cache
from ci_risk_hook.distribution.remote import missing_extra, redact

SOURCE_ENV = "CI_RISK_MODEL_SOURCE"
KEYS_ENV = "CI_RISK_TRUSTED_KEYS"
_LOG_KEEP_BYTES = 64 * 1024


class Cached(NamedTuple):
    path: str  # the cached model file
    label: str  # how output names it: "team (SOURCE)"


def cached_model(
    source: str, trusted_keys: Sequence[str], interval: float, notes: list[str], *, refresh: bool
) -> Cached | None:
    """The cached team model of `source`, or None (with a note saying which model the push falls back to).

    With `refresh`, starts a background refresh when the last check is older than `interval` seconds.
    """
    key = cache.source_key(source)
    shown = redact(source)
    state = cache.read_state(key)
    model_path = paths.team_model(key)
    have = os.path.isfile(model_path)
    unverified = bool(have and trusted_keys and state.get("verified_key") not in trusted_keys)
    if unverified:  # pulled before these keys were trusted: not used until a pull verifies it
        have = False
    hint = missing_extra(source)
    error = state.get("error") if isinstance(state.get("error"), str) else None
    started = None
    # an unverified cache is checked again at once, unless that check has failed already (then: the interval)
    if hint is None and refresh and ((unverified and not error) or _due(state, interval)):
        started = _start_refresh(source, trusted_keys, key)
    if have:
        if hint:
            notes.append(f"team model: cannot refresh from {shown} ({hint}); using the cached one")
        elif error:
            notes.append(f"team model: last refresh failed ({error}); using the cached one")
        elif started:
            notes.append(f"team model: {started}")
        return Cached(model_path, f"team ({shown})")
    if hint:
        why = f"cannot pull from {shown} ({hint})"
    elif unverified:
        why = "the cached model was not verified with the trusted keys" + (f"; {started}" if started else "")
    elif error:
        why = f"none cached yet (last pull failed: {error})"
    elif started:
        why = f"none cached yet from {shown}; {started}"
    elif refresh:  # not due, so a refresh was started within the interval
        why = f"none cached yet from {shown} (a pull started recently; `ci-risk model pull` fetches it now)"
    else:  # a CI step, whose own pull has said what became of it
        why = f"none cached yet from {shown}"
    notes.append(f"team model: {why}; using the next model")
    return None


def _due(state: dict[str, object], interval: float) -> bool:
    last = max((v for v in (state.get("attempted"), state.get("checked")) if isinstance(v, (int, float))), default=0.0)
    now = time.time()
    return not (0.0 <= now - float(last) < interval)  # a clock set back counts as due


def _start_refresh(source: str, trusted_keys: Sequence[str], key: str) -> str | None:
    """Take the refresh lock now and start the detached refresher when this process exits.

    Started at exit, after the push's report is printed, so its start-up does
    not compete with the push for the CPU. What to tell the user, or None
    when a refresh is already running.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: `ci-risk model pull` by hand
        return None
    try:
        os.makedirs(paths.team_model_dir(key), exist_ok=True)
        fd = os.open(paths.team_lock(key), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: a refresh is running (or the file system has no flock)
        os.close(fd)
        return None
    cache.write_state(key, attempted=time.time())
    import atexit

    atexit.register(_spawn_refresher, source, tuple(trusted_keys), key, fd)
    return f"checking {redact(source)} for a newer model in the background (log: {paths.team_log(key)})"


def _spawn_refresher(source: str, trusted_keys: tuple[str, ...], key: str, fd: int) -> None:
    """Hand the held lock to `python -m ci_risk_hook.distribution.refresh`; best effort (the next push retries)."""
    from ci_risk_hook.launch import module_argv

    log = paths.team_log(key)
    env = dict(os.environ)
    env[SOURCE_ENV] = source  # in the environment, not on a command line `ps` shows: it may hold a secret
    env[KEYS_ENV] = ",".join(trusted_keys)
    try:
        if os.path.exists(log) and os.path.getsize(log) > _LOG_KEEP_BYTES:
            os.remove(log)
        with open(log, "ab") as out:
            subprocess.Popen(
                module_argv("ci_risk_hook.distribution.refresh", ["--lock-fd", str(fd)]),  # not `-m`: see launch
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(fd,),
                start_new_session=True,
                env=env,
            )
    except OSError:
        cache.write_state(key, attempted=0)  # nothing started: due again on the next push
    finally:
        os.close(fd)  # the refresher's copy keeps the lock until it exits


CI_PULL_TIMEOUT = 10.0  # seconds a CI step waits for the model source before scoring with what it has


def refresh_for_ci(settings: object, timeout: float = CI_PULL_TIMEOUT) -> str | None:
    """`check --ci`: pull the team model in the foreground (bounded) when a source is configured; the line to show.

    `settings`: config.Settings. None when no model source is configured.
    Call before `evaluate`, which then uses what was pulled (or the cache).
    """
    source = getattr(settings, "model_source", None)
    if not source:
        return None
    hint = missing_extra(source)
    if hint:
        return f"team model: cannot pull from {redact(source)} ({hint}); using the cached or next model"
    return refresh_now(source, getattr(settings, "trusted_keys", ()), timeout)


def refresh_now(source: str, trusted_keys: Sequence[str], timeout: float) -> str:
    """Pull in the foreground for at most `timeout` seconds (a CI step); one line saying what happened.

    Never raises for the source's trouble: a step must not fail because the
    model store is down. The cached model (if any) stays in use.
    """
    from ci_risk_hook.distribution.manifest import DistributionError

    shown = redact(source)
    result: list[object] = []

    def work() -> None:
        try:
            result.append(cache.pull(source, trusted_keys))
        except DistributionError as exc:
            result.append(exc)
        except Exception as exc:  # noqa: BLE001 - in a thread: reported as a line, never raised
            result.append(exc)

    worker = threading.Thread(target=work, name="ci-risk-pull", daemon=True)
    worker.start()
    worker.join(timeout)
    if not result:
        return f"team model: {shown} did not answer within {timeout:g} s; using the cached or next model"
    outcome = result[0]
    if isinstance(outcome, cache.Pulled):
        created = outcome.manifest.get("created", "?")
        if outcome.status == "current":
            return f"team model: up to date with {shown} (published {created})"
        return f"team model: pulled from {shown} (published {created})"
    from ci_risk_hook.distribution.remote import describe

    text = str(outcome) if isinstance(outcome, DistributionError) else describe(outcome, source)  # type: ignore[arg-type]
    return f"team model: pull failed ({text}); using the cached or next model"
