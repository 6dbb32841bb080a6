"""Reading and writing a published directory through fsspec: any local path, file://, s3://, or other URL.

fsspec (and s3fs for S3) is the `team` / `s3` extra, imported only here.
Reads are capped while streaming, so a hostile or broken source cannot make
ci-risk read more than a manifest's or a model's limit, whatever sizes it
claims. Messages name a source with its password and query string removed
(a presigned URL's query is a credential), and any error text is scrubbed of
them too.
"""

from __future__ import annotations

import importlib.util
import os
import re
import stat
from typing import Any

from ci_risk_hook.atomic import write_atomic
from ci_risk_hook.distribution.manifest import DistributionError
from ci_risk_hook.errors import EXIT_USAGE

_CHUNK = 1024 * 1024
# protocol -> (import name, extra) beyond fsspec itself; other protocols name fsspec's own hint
_PROTOCOL_EXTRAS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3")}
# `::` between the links of an fsspec chain (followed by a protocol), not inside an IPv6 address ([::1])
_CHAIN = re.compile(r"::(?=[A-Za-z][A-Za-z0-9+.-]*(?:://|::|$))")
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?:(?P<userinfo>[^/?#]*)@)?(?P<rest>[^?#]*)(?P<tail>.*)$")


class MissingExtra(DistributionError):
    """fsspec, cryptography or a protocol's package is not installed: fixed by installing an extra (exit 2)."""

    exit_code = EXIT_USAGE


def redact(url: str) -> str:
    """A source for messages: no userinfo password, no query string or fragment (they may hold tokens).

    fsspec chains URLs with `::` (`simplecache::https://user:pw@host/dir`): each link is redacted.
    """
    links = _CHAIN.split(url)
    if len(links) > 1:
        return "::".join(redact(link) for link in links)
    match = _URL.match(url)
    if not match:
        return url
    userinfo = match["userinfo"]
    user = f"{userinfo.split(':', 1)[0]}:***@" if userinfo and ":" in userinfo else (f"{userinfo}@" if userinfo else "")
    return f"{match['scheme']}{user}{match['rest']}{'?***' if match['tail'] else ''}"


def scrub(text: str, url: str) -> str:
    """`text` (an error from a library) without the secrets of `url`, in their raw and decoded forms."""
    from urllib.parse import unquote

    secrets: list[str] = []
    for match in (_URL.match(link) for link in _CHAIN.split(url)):
        if not match:
            continue
        userinfo = match["userinfo"] or ""
        if ":" in userinfo:
            secrets.append(userinfo.split(":", 1)[1])
        tail = match["tail"].lstrip("?#")
        if tail:
            secrets.append(tail)
            secrets += [part.split("=", 1)[1] for part in re.split(r"[&#]", tail) if "=" in part]
    secrets += [unquote(s) for s in secrets]
    for secret in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def describe(exc: BaseException, url: str) -> str:
    """One line for a library's exception, scrubbed."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return scrub(f"{type(exc).__name__}: {text}"[:300], url)


def protocol_of(url: str) -> str:
    """The protocol of the file system a URL reaches: in an fsspec chain (`a::b::s3://...`), the last link's."""
    match = _URL.match(_CHAIN.split(url)[-1])
    return match["scheme"][:-3].lower() if match else "file"


def missing_extra(url: str) -> str | None:
    """What to install to reach `url`, or None when this installation can (checked without importing)."""
    if importlib.util.find_spec("fsspec") is None:
        return "fsspec is missing: pip install 'ci-risk[team]'"
    protocol = protocol_of(url)
    needed = _PROTOCOL_EXTRAS.get(protocol)
    if needed and importlib.util.find_spec(needed[0]) is None:
        return f"{needed[0]} is missing for {protocol}:// sources: pip install 'ci-risk[{needed[1]}]'"
    return None


class Location:
    """A published directory: a file system and the directory's path on it."""

    def __init__(self, url: str) -> None:
        hint = missing_extra(url)
        if hint:
            raise MissingExtra(f"model sources need the team extra: {hint}")
        import fsspec

        self.url = url
        self.shown = redact(url)
        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except ImportError as exc:
            raise MissingExtra(f"{self.shown}: {describe(exc, url)}") from None
        except Exception as exc:  # noqa: BLE001 - whatever a protocol's constructor raises, one scrubbed line
            raise DistributionError(f"{self.shown}: {describe(exc, url)}") from None
        self.root = root.rstrip("/") or root
        self.local = "file" in _protocols(self.fs)

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def read(self, relative: str, cap: int, what: str) -> bytes | None:
        """The bytes of one file, None if it does not exist; more than `cap` bytes is refused, read no further."""
        path = self.path(relative)
        chunks: list[bytes] = []
        total = 0
        try:
            with _open_local(path) if self.local else self.fs.open(path, "rb") as fh:
                while total <= cap:
                    chunk = fh.read(min(_CHUNK, cap + 1 - total))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    total += len(chunk)
        except FileNotFoundError:
            return None
        except _NotRegular:
            raise DistributionError(f"{what} at {self.shown} is not a regular file; refused") from None
        except Exception as exc:  # noqa: BLE001 - network, credentials, permissions: one scrubbed line
            raise DistributionError(f"cannot read {what} from {self.shown}: {describe(exc, self.url)}") from None
        if total > cap:
            raise DistributionError(f"{what} at {self.shown} is larger than {_size(cap)}; refused")
        return b"".join(chunks)

    def write(self, relative: str, data: bytes, what: str) -> None:
        """Write one file so that a reader sees the old content or the new, never a part.

        Locally: a temporary file renamed over the target. Object stores (S3
        and the like) make an object visible only once its upload completes.
        """
        path = self.path(relative)
        try:
            if self.local:
                write_atomic(path, data)
            else:
                self.fs.pipe_file(path, data)
        except Exception as exc:  # noqa: BLE001
            raise DistributionError(f"cannot write {what} to {self.shown}: {describe(exc, self.url)}") from None


class _NotRegular(Exception):
    """A local published file that is a FIFO, a device or a directory."""


def _open_local(path: str) -> Any:
    """A published file on a local file system, refused unless it is a regular file.

    Opened without waiting: a FIFO in a hostile directory would otherwise block the pull until a writer came.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotRegular(path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MB" if n >= 1024 * 1024 else f"{n // 1024} kB"
