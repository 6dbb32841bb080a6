"""Publish then pull through a directory, file:// and a real S3 API server; what is refused keeps the old model.

Every case runs the real commands (`ci-risk model publish/pull`) in-process
and then looks at the files: the published directory, the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from ci_risk_hook import paths
from ci_risk_hook.distribution import cache
from ci_risk_hook.distribution.manifest import MAX_MANIFEST_BYTES, schema_version
from ci_risk_hook.distribution.published import publish, read_published
from ci_risk_hook.features.extract import FEATURE_NAMES
from ci_risk_hook.model.scoring import load_model
from testing.published import artifact_variant, bundled_artifact, write_by_hand
from testing.repos import run_cli


@pytest.fixture(params=["directory", "file-url", "s3"])
def dest(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "directory":
        return str(tmp_path / "published")
    if request.param == "file-url":
        return (tmp_path / "published").as_uri()
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/models/org"


def cached(source: str) -> Path:
    return Path(paths.team_model(cache.source_key(source)))


def test_publish_then_pull_installs_the_same_bytes(
    dest: str, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["model", "publish", dest, "--model", str(model_file)], capsys)
    assert code == 0, err
    assert "published" in out and "unsigned" in out
    code, out, err = run_cli(["model", "pull", dest], capsys)
    assert code == 0, err
    assert "pulled from" in out
    raw = model_file.read_bytes()
    assert cached(dest).read_bytes() == raw
    assert load_model(cached(dest), known_features=FEATURE_NAMES).thresholds["warn"] == 0.31

    published = read_published(dest)
    assert published is not None
    artifact, manifest = published
    assert manifest["artifact"]["sha256"] == hashlib.sha256(raw).hexdigest()
    assert manifest["artifact"]["path"] == f"models/{manifest['artifact']['sha256']}.json"
    assert manifest["feature_schema"]["version"] == schema_version(FEATURE_NAMES)
    assert manifest["provenance"]["ci_risk_version"]
    assert "@" in manifest["provenance"]["publisher"]
    assert manifest["created"].endswith("Z") and manifest["created_ms"] > 0
    assert artifact["thresholds"]["warn"] == 0.31

    code, out, _ = run_cli(["model", "pull", dest], capsys)
    assert code == 0 and "already up to date" in out


def test_a_second_publish_replaces_the_manifest_keeps_the_old_artifact_and_moves_time_forward(tmp_path: Path) -> None:
    dest = str(tmp_path / "published")
    first = publish(artifact_variant(0.31), dest, metrics={"f1": 0.5})
    # the next publisher's clock is behind: the new manifest must still be the later one
    (tmp_path / "published" / "manifest.json").write_bytes(
        (tmp_path / "published" / "manifest.json")
        .read_bytes()
        .replace(f'"created_ms":{first["created_ms"]}'.encode(), b'"created_ms":9999999999999')
    )
    second = publish(artifact_variant(0.32), dest)
    assert second["created_ms"] == 9999999999999 + 1
    assert (tmp_path / "published" / first["artifact"]["path"]).exists()
    assert first["metrics"] == {"f1": 0.5}
    published = read_published(dest)
    assert published is not None and published.artifact["thresholds"]["warn"] == 0.32


def test_nothing_published_is_none_for_the_library_and_a_refusal_for_pull(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert read_published(str(tmp_path)) is None
    code, _, err = run_cli(["model", "pull", str(tmp_path)], capsys)
    assert code == 1 and "nothing published" in err and len(err.strip().splitlines()) == 1


def test_publish_refuses_a_file_that_is_not_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    code, _, err = run_cli(["model", "publish", str(tmp_path / "out"), "--model", str(bad)], capsys)
    assert code == 1 and "not a ci-risk model artifact" in err
    assert not (tmp_path / "out").exists()


# -- refused, and the cached model stays -----------------------------------------------------


def _pull_refused(source: str, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code, out, err = run_cli(["model", "pull", source, *extra], capsys)
    assert code == 1, (out, err)
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture
def installed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, bytes]:
    """A published directory whose model (warn 0.31) is already pulled into the cache."""
    dest = tmp_path / "published"
    publish(artifact_variant(0.31), str(dest))
    assert run_cli(["model", "pull", str(dest)], capsys)[0] == 0
    return dest, cached(str(dest)).read_bytes()


def test_a_tampered_artifact_is_refused_by_its_sha256(
    installed: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    dest, before = installed
    publish(artifact_variant(0.32), str(dest))
    manifest = json.loads((dest / "manifest.json").read_bytes())
    artifact = dest / manifest["artifact"]["path"]
    artifact.write_bytes(artifact.read_bytes().replace(b'"warn":0.32', b'"warn":0.99'))
    err = _pull_refused(str(dest), capsys)
    assert "does not match the manifest" in err
    assert cached(str(dest)).read_bytes() == before


def test_an_incompatible_feature_schema_is_refused_and_the_old_model_kept(
    installed: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    dest, before = installed
    artifact = bundled_artifact()
    names = list(artifact["feature_names"])
    renamed = {names[0]: "feature_of_a_later_version"}
    names[0] = renamed[artifact["feature_names"][0]]
    ranges = {renamed.get(name, name): r for name, r in artifact.get("feature_ranges", {}).items()}
    write_by_hand(dest, artifact_variant(0.33, feature_names=names, feature_ranges=ranges))
    err = _pull_refused(str(dest), capsys)
    assert "incompatible feature schema" in err and "feature_of_a_later_version" in err
    assert cached(str(dest)).read_bytes() == before


def test_a_replayed_older_manifest_is_refused_unless_forced(
    installed: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    dest, _ = installed
    old_manifest = (dest / "manifest.json").read_bytes()
    publish(artifact_variant(0.32), str(dest))
    assert run_cli(["model", "pull", str(dest)], capsys)[0] == 0
    newer = cached(str(dest)).read_bytes()
    (dest / "manifest.json").write_bytes(old_manifest)  # the bucket serves the old, validly signed manifest again
    err = _pull_refused(str(dest), capsys)
    assert "older" in err and "--force" in err
    assert cached(str(dest)).read_bytes() == newer
    code, out, err = run_cli(["model", "pull", str(dest), "--force"], capsys)
    assert code == 0, err
    assert load_model(cached(str(dest))).thresholds["warn"] == 0.31


@pytest.mark.parametrize(
    "path", ["../../../outside.json", "/etc/passwd", "models/../manifest.json", "models/other.json"]
)
def test_a_manifest_naming_anything_but_its_content_address_is_refused(
    installed: tuple[Path, bytes], path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dest, before = installed
    raw = artifact_variant(0.34)
    sha = hashlib.sha256(raw).hexdigest()
    (dest.parent / "outside.json").write_bytes(raw)
    write_by_hand(dest, raw, artifact={"path": path, "sha256": sha, "bytes": len(raw)})
    err = _pull_refused(str(dest), capsys)
    assert "artifact.path must be" in err
    assert cached(str(dest)).read_bytes() == before


def test_a_huge_manifest_is_refused_without_reading_it_all(
    installed: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    dest, before = installed
    with open(dest / "manifest.json", "wb") as fh:
        fh.truncate(MAX_MANIFEST_BYTES * 1000)  # sparse: a GB that costs no disk
    err = _pull_refused(str(dest), capsys)
    assert "larger than" in err
    assert cached(str(dest)).read_bytes() == before


def test_an_artifact_larger_than_its_manifest_says_is_refused(
    installed: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    dest, before = installed
    raw = artifact_variant(0.35)
    data = write_by_hand(dest, raw)
    with open(dest / data["artifact"]["path"], "ab") as fh:
        fh.write(b" " * 4096)
    err = _pull_refused(str(dest), capsys)
    assert "larger than" in err or "does not match" in err
    assert cached(str(dest)).read_bytes() == before


@pytest.mark.parametrize("chain", ["", "simplecache::"])  # fsspec's chained URLs: each link is redacted
def test_an_unreachable_source_names_it_without_its_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], chain: str
) -> None:
    with __import__("socket").socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = f"{chain}http://deploy:hunter2-secret@127.0.0.1:{port}/models?token=s3cr3t-token"
    err = _pull_refused(source, capsys)
    assert "hunter2" not in err and "s3cr3t" not in err
    assert "127.0.0.1" in err
    state = cache.read_state(cache.source_key(source))
    assert state["error"] and "hunter2" not in json.dumps(state) and "s3cr3t" not in json.dumps(state)
    assert not os.path.exists(paths.team_model(cache.source_key(source)))


def test_pull_through_a_local_http_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Any fsspec URL: here a plain static HTTP server over the published directory (read-only, as a CDN)."""
    import functools
    import http.server
    import threading

    dest = tmp_path / "published"
    manifest = publish(artifact_variant(0.36), str(dest))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        source = f"http://127.0.0.1:{server.server_address[1]}/published"
        code, out, err = run_cli(["model", "pull", source], capsys)
        assert code == 0, err
        assert cached(source).read_bytes() == (dest / manifest["artifact"]["path"]).read_bytes()
        publish(artifact_variant(0.37), str(dest))
        tampered = dest / json.loads((dest / "manifest.json").read_bytes())["artifact"]["path"]
        tampered.write_bytes(tampered.read_bytes().replace(b'"warn":0.37', b'"warn":0.97'))
        code, _, err = run_cli(["model", "pull", source], capsys)
        assert code == 1 and "does not match the manifest" in err
        assert load_model(cached(source)).thresholds["warn"] == 0.36
    finally:
        server.shutdown()
        server.server_close()


def test_publish_records_the_store_it_trains_from_without_its_password(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from testing.repos import make_repo

    repo = make_repo(tmp_path / "project")
    repo.commit({"a.py": "x = 1\n"}, "initial")
    monkeypatch.chdir(repo.path)
    monkeypatch.setenv("CI_RISK_DB", "postgresql://ci:hunter2@db.example/ci_risk")
    dest = tmp_path / "published"
    code, _, err = run_cli(["model", "publish", str(dest), "--model", str(model_file)], capsys)
    assert code == 0, err
    manifest = json.loads((dest / "manifest.json").read_bytes())
    assert manifest["provenance"]["store"] == "postgresql://ci@db.example/ci_risk"
    assert b"hunter2" not in (dest / "manifest.json").read_bytes()


@pytest.mark.parametrize("name", ["manifest", "artifact"])
def test_a_fifo_in_a_published_directory_is_refused_without_waiting_on_it(
    installed: tuple[Path, bytes], name: str
) -> None:
    import threading

    from ci_risk_hook.distribution.manifest import DistributionError

    dest, before = installed
    data = write_by_hand(dest, artifact_variant(0.36))
    fifo = dest / ("manifest.json" if name == "manifest" else data["artifact"]["path"])
    fifo.unlink()
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def pull() -> None:
        try:
            cache.pull(str(dest))
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - looked at below
            outcome.append(exc)

    worker = threading.Thread(target=pull, daemon=True)
    worker.start()
    worker.join(60)  # a hang fails the test, no assertion on time
    if worker.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # let the blocked open go, then fail
        worker.join()
        pytest.fail("the pull waited on a FIFO")
    assert isinstance(outcome[0], DistributionError) and "not a regular file" in str(outcome[0])
    assert cached(str(dest)).read_bytes() == before


def test_a_manifest_from_beyond_the_year_9999_is_refused_and_the_next_publish_replaces_it(
    installed: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand-written created_ms in microseconds (or a hostile pin) must not stop every later publish."""
    dest, before = installed
    write_by_hand(dest, artifact_variant(0.37), created_ms=10**30)
    err = _pull_refused(str(dest), capsys)
    assert "created_ms" in err
    assert cached(str(dest)).read_bytes() == before
    manifest = publish(artifact_variant(0.38), str(dest))
    assert manifest["created_ms"] < 10**13
    code, _, err = run_cli(["model", "pull", str(dest)], capsys)
    assert code == 0, err
    assert load_model(cached(str(dest))).thresholds["warn"] == 0.38


def test_a_cached_model_that_is_not_its_manifests_is_installed_again(
    installed: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """Two pulls at once can leave one's model beside the other's manifest: the next pull repairs it."""
    dest, before = installed
    cached(str(dest)).write_bytes(artifact_variant(0.39))  # what the interleaved writes leave
    code, out, err = run_cli(["model", "pull", str(dest)], capsys)
    assert code == 0, err
    assert out.startswith("pulled from")
    assert cached(str(dest)).read_bytes() == before
