"""`python -m ci_risk_hook.distribution.refresh --lock-fd N`: the hook's background pull of the team model.

Started detached by `team._start_refresh` with the source and trusted keys
in its environment and the refresh lock on descriptor N; writes one line to
the cache's refresh log and the outcome to the state file the next push
reads. An alarm ends it if the source never answers.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Sequence

REFRESH_TIMEOUT = 120  # seconds; a source that accepts and never answers must not leave a process behind


def _timed_out(signum: int, frame: object) -> None:
    raise TimeoutError(f"no answer within {REFRESH_TIMEOUT} s")


def main(argv: Sequence[str] | None = None) -> int:
    from ci_risk_hook.distribution import cache, team
    from ci_risk_hook.distribution.keys import KeyError_, parse_public_keys
    from ci_risk_hook.distribution.manifest import DistributionError

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "--lock-fd" or not os.environ.get(team.SOURCE_ENV):
        print(
            "usage: CI_RISK_MODEL_SOURCE=URL python -m ci_risk_hook.distribution.refresh --lock-fd N", file=sys.stderr
        )
        return 2
    if hasattr(os, "nice"):
        os.nice(10)
    if hasattr(signal, "alarm"):
        signal.signal(signal.SIGALRM, _timed_out)
        signal.alarm(REFRESH_TIMEOUT)
    source = os.environ[team.SOURCE_ENV]
    key = cache.source_key(source)
    stamp = f"{time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}:"
    try:
        keys_text = os.environ.get(team.KEYS_ENV, "")
        trusted = parse_public_keys(keys_text) if keys_text.strip() else ()
        pulled = cache.pull(source, trusted)
    except (DistributionError, KeyError_) as exc:
        cache.write_state(key, checked=time.time(), error=str(exc))
        print(f"{stamp} refused or failed: {exc}", flush=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - logged and remembered: the next push says so in one line
        from ci_risk_hook.distribution.remote import describe

        cache.write_state(key, checked=time.time(), error=describe(exc, source))
        print(f"{stamp} failed: {describe(exc, source)}", flush=True)
        return 1
    finally:
        os.close(int(args[1]))
    print(
        f"{stamp} {pulled.status} {pulled.manifest['artifact']['sha256'][:12]} ({pulled.manifest.get('created')})",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
