"""The local cache of a pulled team model: install atomically, refuse what must not replace it, remember state.

One directory per source (named by a digest of the source without its
secrets) under the user cache directory: `model.json` (what the hook loads),
`manifest.json` (what it came with), `state.json` (when the source was last
checked and what went wrong). A refused model, whatever the reason, leaves
the installed one untouched.

The standard library only, except `pull`, which loads fsspec lazily.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, NamedTuple, Sequence

from ci_risk_hook import paths
from ci_risk_hook.atomic import write_atomic as _write_atomic
from ci_risk_hook.distribution import manifest
from ci_risk_hook.distribution.manifest import DistributionError
from ci_risk_hook.distribution.remote import redact

_MAX_STATE_BYTES = 64 * 1024


class Pulled(NamedTuple):
    status: str  # "installed" | "current"
    manifest: dict[str, Any]
    path: str  # the installed model file
    signed_by: str | None  # key id, when a trusted key verified it


def source_key(source: str) -> str:
    """The cache directory's name for a source: the same source, the same cache, secrets left out."""
    if "://" not in source:  # a directory: the same one from any working directory
        source = os.path.abspath(os.path.expanduser(source))
    return hashlib.sha256(redact(source).encode("utf-8")).hexdigest()[:16]


def read_state(key: str) -> dict[str, Any]:
    """{attempted, checked, error, verified_key}: times are Unix seconds; {} when missing or unreadable.

    `verified_key`: the trusted public key whose signature the last successful
    pull verified (None when no key was configured then).
    """
    try:
        with open(paths.team_state(key), "rb") as fh:
            data = json.loads(fh.read(_MAX_STATE_BYTES).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_state(key: str, **changes: Any) -> None:
    """Best effort: a cache that cannot be written costs a refresh check, never the push."""
    state = read_state(key)
    state.update(changes)
    try:
        _write_atomic(paths.team_state(key), json.dumps(state, sort_keys=True).encode("utf-8"))
    except OSError:
        pass


def installed_manifest(key: str) -> dict[str, Any] | None:
    try:
        with open(paths.team_manifest(key), "rb") as fh:
            raw = fh.read(manifest.MAX_MANIFEST_BYTES + 1)
        return manifest.parse(raw, paths.team_manifest(key))
    except (OSError, DistributionError):
        return None


def pull(source: str, trusted_keys: Sequence[str] = (), *, force: bool = False) -> Pulled:
    """Fetch, verify and install the model published at `source`; record the outcome in the state file.

    Refused (DistributionError, the installed model kept): nothing published,
    a sha256 or signature that does not check, a model reading features this
    ci-risk does not compute, or a manifest older than the installed one (a
    replayed old model) unless `force`.
    """
    key = source_key(source)
    try:
        result = _pull(source, key, tuple(trusted_keys), force)
    except DistributionError as exc:
        write_state(key, checked=time.time(), error=str(exc))
        raise
    signer = result.manifest["signature"]["key"] if result.signed_by else None
    write_state(key, checked=time.time(), error=None, verified_key=signer)
    return result


def _pull(source: str, key: str, trusted_keys: tuple[str, ...], force: bool) -> Pulled:
    from ci_risk_hook.distribution.published import check_signature, fetch, parse_artifact
    from ci_risk_hook.distribution.remote import Location
    from ci_risk_hook.features.extract import FEATURE_NAMES

    location = Location(source)
    fetched = fetch(location, trusted_keys)
    if fetched is None:
        raise DistributionError(f"nothing published at {location.shown} (no manifest.json)")
    new = fetched.manifest
    shown = f"{location.shown}/manifest.json"
    signed_by = check_signature(new, trusted_keys, shown) if trusted_keys else None
    parse_artifact(fetched.raw, f"{location.shown}/{new['artifact']['path']}", FEATURE_NAMES)
    model_path = paths.team_model(key)
    old = installed_manifest(key)
    if old is not None and trusted_keys and read_state(key).get("verified_key") not in trusted_keys:
        # Installed under other keys (a pull trusting a key a pull request committed, say): no baseline for
        # "older", or whoever signed it could pin a far-future time that every genuine model is refused against.
        old = None
    if old is not None and os.path.isfile(model_path) and not force:
        if new["created_ms"] < old["created_ms"]:
            raise DistributionError(
                f"{shown} is older ({new.get('created')}) than the installed team model ({old.get('created')}): "
                "a replayed or rolled-back model; refused (`ci-risk model pull --force` accepts it)"
            )
        if new["created_ms"] == old["created_ms"]:
            if new["artifact"]["sha256"] != old["artifact"]["sha256"]:
                raise DistributionError(f"{shown}: a different model with the installed one's creation time; refused")
            if _file_sha256(model_path) == new["artifact"]["sha256"]:
                return Pulled("current", new, model_path, signed_by)
            # else the model file is not the manifest's (two pulls interleaved their writes): installed again
    signer = new["signature"]["key"] if signed_by else None
    if read_state(key).get("verified_key") != signer:
        # Until this install is complete, the cache claims no verification: one stopped half-way (or racing
        # another pull) must never leave a model the hook takes as verified by the previous pull's key.
        write_state(key, verified_key=None)
    try:
        _write_atomic(model_path, fetched.raw)
        _write_atomic(paths.team_manifest(key), manifest.encode(new))
    except OSError as exc:
        where = paths.team_model_dir(key)
        raise DistributionError(f"cannot write the team model cache {where}: {exc.strerror or exc}") from None
    return Pulled("installed", new, model_path, signed_by)


def _file_sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read(manifest.MAX_MODEL_BYTES + 1)).hexdigest()
    except OSError:
        return None
