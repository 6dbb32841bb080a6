"""Keyed hashes of author identities, for a shared store that must not hold names or e-mails.

A store written with `--hash-authors` holds `HMAC-SHA256(key, author)` (128 bits,
hex) instead of each author's e-mail, and the fingerprint of its key in
`store_meta`; the key itself comes only from the environment
(`CI_RISK_HASH_AUTHORS_KEY`), never from a file a repository commits. Every
feature compares authors for equality only, so the hashed store yields the
same numbers as the plain one. The standard library only: the hook uses it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Callable, Mapping, Optional

KEY_ENV = "CI_RISK_HASH_AUTHORS_KEY"
MIN_KEY_CHARS = 16
PLAIN = "plain"  # the store_meta value of a store holding authors as they are
_HASH_CHARS = 32  # 128 bits of the digest: collisions stay out of reach for any team's authors
_FINGERPRINT_MESSAGE = b"ci-risk author key fingerprint"

AuthorId = Callable[[Optional[str]], Optional[str]]


def key_from_env(env: Mapping[str, str] | None = None) -> bytes | None:
    """The key material, or None when unset; too short a key is refused (ValueError)."""
    text = (os.environ if env is None else env).get(KEY_ENV, "")
    if not text:
        return None
    if text != text.strip():  # a secret pasted with its newline would hash unlike the same key typed elsewhere
        raise ValueError(f"{KEY_ENV} starts or ends with white space (a pasted newline?): remove it")
    if len(text) < MIN_KEY_CHARS:
        raise ValueError(f"{KEY_ENV} is too short: use at least {MIN_KEY_CHARS} random characters")
    return text.encode("utf-8", "surrogateescape")


def fingerprint(key: bytes) -> str:
    """What the store records of its key: tells a wrong key from the right one, reveals nothing of it."""
    return "hmac-sha256:" + hmac.new(key, _FINGERPRINT_MESSAGE, hashlib.sha256).hexdigest()[:16]


def hasher(key: bytes | None) -> AuthorId:
    """author -> its id in the store: the keyed hash, or the author itself without a key."""
    if key is None:
        return lambda author: author
    cache: dict[str, str] = {}

    def author_id(author: str | None) -> str | None:
        if not author:
            return author
        known = cache.get(author)
        if known is None:
            digest = hmac.new(key, author.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()
            known = cache[author] = "h:" + digest[:_HASH_CHARS]
            if len(cache) > 100_000:
                cache.clear()
        return known

    return author_id
