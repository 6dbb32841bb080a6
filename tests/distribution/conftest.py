"""Published model directories, S3 on a real moto server, keys, and a TCP listener that never answers.

Models are the bundled artifact and copies of it with other thresholds
(resealed, so each is a different, valid model). A "hostile publisher" writes
a directory by hand, the way a compromised bucket could look.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from testing.published import SilentServer, artifact_variant, aws_env


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model-a.json"
    path.write_bytes(artifact_variant(0.31))
    return path


# -- S3: moto's standalone server on loopback, as s3fs's own tests use ------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server; the process's environment points S3 clients at it."""
    import boto3

    for name, value in aws_env(moto_endpoint).items():
        monkeypatch.setenv(name, value)
    bucket = f"team-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    return bucket


# -- a server that accepts and never answers, and counts ------------------------------------


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()
