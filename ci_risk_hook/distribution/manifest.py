"""The manifest a publisher writes last and a puller reads first: what the model is, where, who made it, signed.

A reader follows only the manifest, so a half-written artifact is never
used. The manifest names its artifact by content (`models/<sha256>.json`),
so it cannot point outside the published directory or at another file; it
carries the sha256 of the artifact's bytes, and the Ed25519 signature covers
the canonical JSON of everything else, that sha256 included. `created_ms`
only grows from one publish to the next: a puller refuses an older manifest
than the one it already has (a replayed old model).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ci_risk_hook.errors import EXIT_BLOCKED, CiRiskError
from ci_risk_hook.model.scoring import MAX_MODEL_BYTES, canonical_json

FORMAT = "ci-risk-model-manifest"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 1024 * 1024  # a manifest is a few kB; a bigger one is refused unread
ARTIFACTS_DIR = "models"
# The last millisecond of 9999-12-31: a later time is a mistake (microseconds?) or a hostile pin that every
# later publish must exceed, and one time.gmtime cannot even format (the next publish would crash).
MAX_CREATED_MS = 253_402_300_799_999
_ARTIFACT_PATH = re.compile(r"models/([0-9a-f]{64})\.json")
_SHA = re.compile(r"[0-9a-f]{64}")


class DistributionError(CiRiskError):
    """A model cannot be published or pulled (unreachable, refused, tampered): the old model stays."""

    exit_code = EXIT_BLOCKED


def artifact_path(sha256: str) -> str:
    """Where, relative to the published directory, the artifact with these bytes lives."""
    return f"{ARTIFACTS_DIR}/{sha256}.json"


def schema_version(feature_names: tuple[str, ...] | list[str]) -> str:
    """A fingerprint of a feature list: equal lists, equal versions."""
    return hashlib.sha256("\n".join(feature_names).encode("utf-8")).hexdigest()[:16]


def signed_bytes(manifest: dict[str, Any]) -> bytes:
    """What the signature covers: the canonical JSON of the manifest without its signature."""
    return canonical_json({k: v for k, v in manifest.items() if k != "signature"}).encode("ascii")


def encode(manifest: dict[str, Any]) -> bytes:
    return (canonical_json(manifest) + "\n").encode("ascii")


def _fail(shown: str, problem: str) -> DistributionError:
    return DistributionError(f"{shown}: not a usable model manifest: {problem}")


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


def parse(raw: bytes, shown: str) -> dict[str, Any]:
    """A manifest's JSON, with every field a puller relies on checked for type and shape."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise _fail(shown, f"larger than {MAX_MANIFEST_BYTES // 1024} kB")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _fail(shown, f"invalid JSON ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if type(data) is not dict:
        raise _fail(shown, "expected a JSON object")
    if data.get("format") != FORMAT:
        raise _fail(shown, f"format is {data.get('format')!r}, expected {FORMAT!r}")
    if data.get("format_version") != FORMAT_VERSION or type(data.get("format_version")) is not int:
        raise _fail(shown, f"unsupported format_version {data.get('format_version')!r} (this ci-risk reads 1)")
    artifact = data.get("artifact")
    if type(artifact) is not dict:
        raise _fail(shown, "artifact: expected an object")
    sha = artifact.get("sha256")
    if type(sha) is not str or not _SHA.fullmatch(sha):
        raise _fail(shown, "artifact.sha256: expected 64 hex digits")
    if artifact.get("path") != artifact_path(sha):  # content-addressed: nothing else, nowhere else
        raise _fail(shown, f"artifact.path must be {artifact_path(sha)!r}, got {str(artifact.get('path'))[:80]!r}")
    size = artifact.get("bytes")
    if type(size) is not int or not 0 < size <= MAX_MODEL_BYTES:
        raise _fail(shown, f"artifact.bytes: expected a size up to {MAX_MODEL_BYTES // (1024 * 1024)} MB")
    created = data.get("created_ms")
    if type(created) is not int or not 0 < created <= MAX_CREATED_MS:
        raise _fail(shown, "created_ms: expected milliseconds since 1970, before the year 10000")
    schema = data.get("feature_schema")
    if (
        type(schema) is not dict
        or type(schema.get("features")) is not list
        or not all(type(name) is str for name in schema["features"])
        or type(schema.get("version")) is not str
    ):
        raise _fail(shown, "feature_schema: expected a version and a list of feature names")
    for key in ("provenance", "metrics"):
        if data.get(key) is not None and type(data.get(key)) is not dict:
            raise _fail(shown, f"{key}: expected an object")
    signature = data.get("signature")
    if signature is not None and (
        type(signature) is not dict or not all(type(signature.get(k)) is str for k in ("algorithm", "key", "value"))
    ):
        raise _fail(shown, "signature: expected algorithm, key and value")
    try:
        canonical_json(data)
    except (TypeError, ValueError, RecursionError):
        raise _fail(shown, "expected plain JSON with finite numbers") from None
    return data
