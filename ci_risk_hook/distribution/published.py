"""Publishing a model to a directory or URL, and reading back what is published there, verified.

Layout of a published directory:

    models/<sha256>.json   the artifact, named by the sha256 of its bytes (written first)
    manifest.json          which artifact is current, and everything about it (written last)

A reader looks only at manifest.json, so it sees the previous model or the
new one, never a half-written one; old artifacts stay where they are (a
puller that read the old manifest a moment ago still finds its artifact).
`publish` and `read_published` are the library calls of the scheduled retrain.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
import time
from typing import Any, Mapping, NamedTuple, Sequence

from ci_risk_hook.distribution import keys, manifest
from ci_risk_hook.distribution.manifest import DistributionError
from ci_risk_hook.distribution.remote import Location
from ci_risk_hook.model.scoring import MAX_MODEL_BYTES, ModelError, PortableModel, canonical_json

MANIFEST_NAME = "manifest.json"
_MODEL_PROVENANCE = ("trained_at", "rows", "failures", "data_from", "data_to", "labels", "repositories", "chosen")


class Published(NamedTuple):
    artifact: dict[str, Any]  # the model artifact, checked as the hook would load it
    manifest: dict[str, Any]


class Fetched(NamedTuple):
    artifact: dict[str, Any]
    manifest: dict[str, Any]
    raw: bytes  # the artifact's bytes, as published (their sha256 is manifest["artifact"]["sha256"])


def artifact_bytes(artifact: Mapping[str, Any]) -> bytes:
    """An artifact as `write_artifact` writes it (canonical JSON and a newline), for `publish`."""
    return (canonical_json(dict(artifact)) + "\n").encode("ascii")


def parse_artifact(raw: bytes, shown: str, known_features: Sequence[str] | None = None) -> dict[str, Any]:
    """The artifact's JSON after the checks `load_model` makes (checksum, shape, ranges, known features)."""
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        model = PortableModel.from_dict(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DistributionError(f"{shown}: not a model artifact ({str(exc).splitlines()[0][:200]})") from None
    except ModelError as exc:
        raise DistributionError(f"{shown}: {exc}") from None
    if known_features is not None:
        unknown = sorted(set(model.feature_names) - set(known_features))
        if unknown:
            shown_names = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise DistributionError(
                f"{shown}: incompatible feature schema: the model reads features this ci-risk does not compute: "
                f"{shown_names}"
            )
    return dict(data)


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


def publish(
    artifact_bytes: bytes,
    dest: str,
    *,
    signing_key: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the artifact, then the manifest, to `dest`; return the manifest.

    `signing_key`: a private key file from `ci-risk model keygen`. `metrics`:
    the backtest figures to publish (default: the artifact's own
    provenance.backtest). `provenance`: merged over who/where/which ci-risk.
    The manifest's `created_ms` is later than the one it replaces, even if
    this machine's clock is behind the last publisher's.
    """
    from ci_risk_hook.features.extract import FEATURE_NAMES

    artifact = parse_artifact(artifact_bytes, "model to publish", FEATURE_NAMES)
    private = keys.load_private(signing_key) if signing_key else None  # a bad key fails before anything is written
    location = Location(dest)
    previous = _previous_created(location)
    sha = hashlib.sha256(artifact_bytes).hexdigest()
    data: dict[str, Any] = {
        "format": manifest.FORMAT,
        "format_version": manifest.FORMAT_VERSION,
        "artifact": {"path": manifest.artifact_path(sha), "sha256": sha, "bytes": len(artifact_bytes)},
        "model_sha256": artifact["sha256"],
        "feature_schema": {
            "version": manifest.schema_version(FEATURE_NAMES),
            "features": list(artifact["feature_names"]),
        },
        "created_ms": max(int(time.time() * 1000), previous + 1),
        "provenance": _provenance(artifact, provenance),
        "metrics": dict(metrics) if metrics is not None else artifact.get("provenance", {}).get("backtest"),
    }
    data["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(data["created_ms"] / 1000))
    if private is not None:
        public, signature = keys.sign(private, manifest.signed_bytes(data))
        data["signature"] = {
            "algorithm": keys.ALGORITHM,
            "key": public,
            "key_id": keys.key_id(public),
            "value": signature,
        }
    encoded = manifest.encode(data)
    manifest.parse(encoded, "manifest to publish")  # what a puller will check, checked before it is written
    location.write(data["artifact"]["path"], artifact_bytes, "the model")
    location.write(MANIFEST_NAME, encoded, "the manifest")
    return data


def _previous_created(location: Location) -> int:
    raw = location.read(MANIFEST_NAME, manifest.MAX_MANIFEST_BYTES, "the current manifest")
    if raw is None:
        return 0
    try:
        return int(manifest.parse(raw, location.shown)["created_ms"])
    except DistributionError:
        return 0  # a broken manifest is replaced; it gave no time to stay ahead of


def _provenance(artifact: Mapping[str, Any], given: Mapping[str, Any] | None) -> dict[str, Any]:
    from ci_risk_hook import __version__

    try:
        who = f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):  # no user name in a container
        who = socket.gethostname()
    model = artifact.get("provenance", {})
    result: dict[str, Any] = {
        "publisher": who,
        "ci_risk_version": __version__,
        "model": {k: model[k] for k in _MODEL_PROVENANCE if k in model},
    }
    if "data" in model:
        result["store"] = model["data"]
    result.update(dict(given or {}))
    return result


def fetch(location: Location, trusted_keys: Sequence[str] = ()) -> Fetched | None:
    """The published manifest and artifact, verified; None when nothing is published there.

    With trusted keys the manifest must be signed by one of them; the
    artifact's bytes must have the manifest's sha256 and size; the artifact
    must be one the hook can load. Any failure raises DistributionError.
    """
    raw_manifest = location.read(MANIFEST_NAME, manifest.MAX_MANIFEST_BYTES, "the manifest")
    if raw_manifest is None:
        return None
    shown = f"{location.shown}/{MANIFEST_NAME}"
    data = manifest.parse(raw_manifest, shown)
    if trusted_keys:
        check_signature(data, trusted_keys, shown)
    entry = data["artifact"]
    raw = location.read(entry["path"], min(entry["bytes"], MAX_MODEL_BYTES), "the model")
    if raw is None:
        raise DistributionError(f"{shown} names {entry['path']}, which is not there")
    actual = hashlib.sha256(raw).hexdigest()
    if actual != entry["sha256"] or len(raw) != entry["bytes"]:
        raise DistributionError(
            f"{location.shown}/{entry['path']}: sha256 {actual[:12]}... does not match the manifest's "
            f"{entry['sha256'][:12]}...: the model was altered or damaged; refused"
        )
    artifact = parse_artifact(raw, f"{location.shown}/{entry['path']}")
    if artifact["sha256"] != data.get("model_sha256"):
        raise DistributionError(f"{shown}: model_sha256 does not match the artifact's own checksum; refused")
    return Fetched(artifact, data, raw)


def check_signature(data: Mapping[str, Any], trusted_keys: Sequence[str], shown: str) -> str:
    """The key id that signed the manifest; refused when unsigned, signed by another key, or forged."""
    signature = data.get("signature")
    if signature is None:
        raise DistributionError(f"{shown}: the model is not signed, and trusted keys are configured; refused")
    if signature.get("algorithm") != keys.ALGORITHM:
        raise DistributionError(f"{shown}: signature algorithm {signature.get('algorithm')!r} is not ed25519; refused")
    if signature["key"] not in trusted_keys:
        raise DistributionError(f"{shown}: signed by a key that is not trusted ({_safe_id(signature['key'])}); refused")
    if not keys.verify(signature["key"], signature["value"], manifest.signed_bytes(dict(data))):
        raise DistributionError(f"{shown}: the signature does not match the manifest (altered or forged); refused")
    return keys.key_id(signature["key"])


def _safe_id(public_text: str) -> str:
    try:
        return f"key id {keys.key_id(public_text)}"
    except keys.KeyError_:
        return "a malformed key"


def read_published(src: str, *, trusted_keys: Sequence[str] = ()) -> Published | None:
    """What is published at `src` as (artifact, manifest), verified; None when nothing is.

    For the scheduled retrain, to backtest against the current team model
    before replacing it (`PortableModel.from_dict(artifact)` scores with it).
    """
    fetched = fetch(Location(src), trusted_keys)
    return None if fetched is None else Published(fetched.artifact, fetched.manifest)
