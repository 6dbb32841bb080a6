"""Ed25519 keys for signed models: the one-line public key teams commit, key ids, keygen, sign, verify.

The text form of a public key is `ci-risk-ed25519:<base64 of the 32 raw bytes>`:
one line, safe in an INI file and an environment variable. Parsing it needs
only the standard library (the settings are read on every push); signing and
verifying use `cryptography` (the `team` extra), loaded only when a model is
published or pulled. No cryptography is written here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re

from ci_risk_hook.errors import EXIT_USAGE, CiRiskError

PREFIX = "ci-risk-ed25519:"
ALGORITHM = "ed25519"
_RAW_KEY_BYTES = 32
_SIGNATURE_BYTES = 64
_MAX_KEY_FILE_BYTES = 16 * 1024


class KeyError_(CiRiskError):  # noqa: N801 - KeyError is the builtin's name
    """A key is malformed or cannot be read: a usage error (the fix is in the settings or the file)."""

    exit_code = EXIT_USAGE


def parse_public_keys(text: str) -> tuple[str, ...]:
    """Public keys separated by commas or white space, each checked and normalised; duplicates dropped."""
    keys: list[str] = []
    for item in re.split(r"[,\s]+", text.strip()):
        if item:
            raw = public_key_bytes(item)
            keys.append(public_key_text(raw))
    if not keys:
        raise KeyError_("expected one or more public keys, got nothing")
    return tuple(dict.fromkeys(keys))


def public_key_bytes(text: str) -> bytes:
    if not text.startswith(PREFIX):
        raise KeyError_(f"a public key starts with {PREFIX!r} (from `ci-risk model keygen`), got {text[:24]!r}")
    try:
        raw = base64.b64decode(text[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise KeyError_(f"public key {text[:40]!r} is not valid base64") from None
    if len(raw) != _RAW_KEY_BYTES:
        raise KeyError_(f"public key {text[:40]!r} is not an Ed25519 key ({len(raw)} bytes, expected 32)")
    return raw


def public_key_text(raw: bytes) -> str:
    return PREFIX + base64.b64encode(raw).decode("ascii")


def key_id(public_text: str) -> str:
    """A short, stable name for a public key: the first 16 hex digits of sha256 of its raw bytes."""
    return hashlib.sha256(public_key_bytes(public_text)).hexdigest()[:16]


# -- with cryptography --------------------------------------------------------------


def generate(private_file: str) -> str:
    """Write a new private key (PEM, PKCS#8, mode 0600, never overwriting) and return its public key text."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        fd = os.open(private_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyError_(f"{private_file} exists; not overwritten (a lost signing key cannot be recovered)") from None
    except OSError as exc:
        raise KeyError_(f"cannot write {private_file}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return _public_text(key)


def _public_text(private_key: object) -> str:
    from cryptography.hazmat.primitives import serialization

    public = private_key.public_key()  # type: ignore[attr-defined]
    return public_key_text(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def load_private(private_file: str) -> object:
    """The Ed25519 private key in a PEM file (as `keygen` writes it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        with open(private_file, "rb") as fh:
            data = fh.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyError_(f"cannot read signing key {private_file}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise KeyError_(f"{private_file} is not an unencrypted PEM private key: {first}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyError_(f"{private_file} is not an Ed25519 key (make one with `ci-risk model keygen`)")
    return key


def sign(private_key: object, message: bytes) -> tuple[str, str]:
    """(public key text, base64 signature) of `message`."""
    signature = private_key.sign(message)  # type: ignore[attr-defined]
    return _public_text(private_key), base64.b64encode(signature).decode("ascii")


def verify(public_text: str, signature_b64: str, message: bytes) -> bool:
    """True when `signature_b64` is a valid Ed25519 signature of `message` by this key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(signature) != _SIGNATURE_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key_bytes(public_text)).verify(signature, message)
    except InvalidSignature:
        return False
    return True
