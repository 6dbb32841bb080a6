"""Helpers for the model-distribution tests: distinct valid models, hand-written published directories,
S3 client settings for a local server, and a TCP server that never answers.

A "hostile publisher" writes a directory by hand, the way a compromised
bucket could look.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from ci_risk_hook.distribution import manifest
from ci_risk_hook.gate import evaluate as gate
from ci_risk_hook.model.scoring import artifact_sha256, canonical_json


def bundled_artifact() -> dict[str, Any]:
    path = gate.bundled_model_path()
    if path is None:
        pytest.skip("this checkout has no bundled model (model/model.json)")
    with open(path, encoding="utf-8") as fh:
        return dict(json.load(fh))


def artifact_variant(warn: float, **changes: Any) -> bytes:
    """The bundled model with another warn threshold (and any other changes), resealed: a distinct valid model."""
    artifact = bundled_artifact()
    artifact["thresholds"] = {**artifact["thresholds"], "warn": warn}
    artifact.update(changes)
    artifact.pop("sha256")
    artifact["sha256"] = artifact_sha256(artifact)
    return (canonical_json(artifact) + "\n").encode("ascii")


def write_by_hand(dest: Path, raw: bytes, **overrides: Any) -> dict[str, Any]:
    """A published directory written without `publish` (another ci-risk version, or a hostile bucket)."""
    sha = hashlib.sha256(raw).hexdigest()
    artifact = json.loads(raw)
    data: dict[str, Any] = {
        "format": manifest.FORMAT,
        "format_version": manifest.FORMAT_VERSION,
        "artifact": {"path": manifest.artifact_path(sha), "sha256": sha, "bytes": len(raw)},
        "model_sha256": artifact["sha256"],
        "feature_schema": {"version": "future", "features": artifact["feature_names"]},
        "created_ms": 4_000_000_000_000,
        "created": "2096-10-02T07:06:40Z",
        "provenance": {},
        "metrics": None,
    }
    data.update(overrides)
    (dest / "models").mkdir(parents=True, exist_ok=True)
    (dest / "models" / f"{sha}.json").write_bytes(raw)
    (dest / "manifest.json").write_bytes(manifest.encode(data))
    return data


def aws_env(endpoint: str) -> dict[str, str]:
    """What any S3 client (here s3fs through botocore) needs to talk to the test server and nothing else."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }


class SilentServer:
    """Accepts TCP connections on loopback, holds them open, never sends a byte; counts what it accepted."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.held.append(conn)

    def close(self) -> int:
        self._stop.set()
        self._thread.join()
        for conn in self.held:
            conn.close()
        self.sock.close()
        return self.accepted
