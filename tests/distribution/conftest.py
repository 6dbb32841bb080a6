"""Published model directories, S3 on a real moto server, keys, and a TCP listener that never answers.

Models are the bundled artifact and copies of it with other thresholds
(resealed, so each is a different, valid model). A "hostile publisher" writes
a directory by hand, the way a compromised bucket could look.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from testing.published import SilentServer, artifact_variant


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model-a.json"
    path.write_bytes(artifact_variant(0.31))
    return path


# -- a server that accepts and never answers, and counts ------------------------------------


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()
