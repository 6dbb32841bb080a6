"""Ed25519 signatures: keygen, publish --sign, and a pull that refuses unsigned, untrusted or altered manifests."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ci_risk_hook import paths
from ci_risk_hook.distribution import cache, keys
from ci_risk_hook.distribution.published import publish
from testing.published import artifact_variant
from testing.repos import Repo, make_repo, run_cli


def keygen(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    private = tmp_path / f"{name}.pem"
    code, out, err = run_cli(["model", "keygen", str(private)], capsys)
    assert code == 0, err
    return private, out.strip()


def test_keygen_writes_a_private_pem_readable_by_its_owner_only_and_prints_a_one_line_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keygen(tmp_path, "team", capsys)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert "\n" not in public and keys.parse_public_keys(public) == (public,)
    code, _, err = run_cli(["model", "keygen", str(private)], capsys)
    assert code == 2 and "not overwritten" in err
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")


@pytest.fixture
def signed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str, str]:
    """(published directory signed by the team key, team public key, another public key)."""
    private, public = keygen(tmp_path, "team", capsys)
    _, other = keygen(tmp_path, "other", capsys)
    dest = tmp_path / "published"
    code, out, err = run_cli(
        ["model", "publish", str(dest), "--model", _model(tmp_path), "--sign", str(private)], capsys
    )
    assert code == 0, err
    assert f"signed by key {keys.key_id(public)}" in out
    return dest, public, other


def _model(tmp_path: Path, warn: float = 0.31) -> str:
    path = tmp_path / f"model-{warn}.json"
    path.write_bytes(artifact_variant(warn))
    return str(path)


def _cached(dest: Path) -> Path:
    return Path(paths.team_model(cache.source_key(str(dest))))


def test_a_model_signed_by_a_trusted_key_is_verified(
    signed: tuple[Path, str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, public, other = signed
    monkeypatch.setenv("CI_RISK_TRUSTED_KEYS", f"{other}, {public}")
    code, out, err = run_cli(["model", "pull", str(dest)], capsys)
    assert code == 0, err
    assert f"signature by key {keys.key_id(public)} verified" in out
    assert _cached(dest).exists()


def test_a_model_signed_by_another_key_is_refused(
    signed: tuple[Path, str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, _, other = signed
    monkeypatch.setenv("CI_RISK_TRUSTED_KEYS", other)
    code, _, err = run_cli(["model", "pull", str(dest)], capsys)
    assert code == 1 and "not trusted" in err and len(err.strip().splitlines()) == 1
    assert not _cached(dest).exists()


def test_an_unsigned_model_is_refused_once_a_key_is_trusted_and_the_old_one_kept(
    signed: tuple[Path, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, public, _ = signed
    monkeypatch.setenv("CI_RISK_TRUSTED_KEYS", public)
    assert run_cli(["model", "pull", str(dest)], capsys)[0] == 0
    before = _cached(dest).read_bytes()
    publish(artifact_variant(0.32), str(dest))  # whoever can write the bucket, without the key
    code, _, err = run_cli(["model", "pull", str(dest)], capsys)
    assert code == 1 and "not signed" in err
    assert _cached(dest).read_bytes() == before


@pytest.mark.parametrize("edit", ["metrics", "artifact sha256 and model", "signature value"])
def test_a_signed_manifest_altered_afterwards_is_refused(
    edit: str, signed: tuple[Path, str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, public, _ = signed
    monkeypatch.setenv("CI_RISK_TRUSTED_KEYS", public)
    data = json.loads((dest / "manifest.json").read_bytes())
    if edit == "metrics":
        data["metrics"] = {"f1": 0.99}
    elif edit == "signature value":
        value = data["signature"]["value"]
        data["signature"]["value"] = ("B" if value[0] == "A" else "A") + value[1:]
    else:  # a forger swaps in another model and fixes up the sha256: the signature no longer covers it
        tmp = dest.parent / "forged"
        forged = publish(artifact_variant(0.9), str(tmp))
        (dest / forged["artifact"]["path"]).write_bytes((tmp / forged["artifact"]["path"]).read_bytes())
        data["artifact"] = forged["artifact"]
        data["model_sha256"] = forged["model_sha256"]
    (dest / "manifest.json").write_text(json.dumps(data))
    code, _, err = run_cli(["model", "pull", str(dest)], capsys)
    assert code == 1 and "signature does not match" in err
    assert not _cached(dest).exists()


def test_without_trusted_keys_a_signed_model_is_pulled_unverified(
    signed: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    dest, _, _ = signed
    code, out, err = run_cli(["model", "pull", str(dest)], capsys)
    assert code == 0, err
    assert "no trusted keys configured" in out


def test_a_repository_may_commit_its_trusted_key(
    signed: tuple[Path, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, _, other = signed
    repo: Repo = make_repo(tmp_path / "project")
    repo.commit({".ci-risk.ini": f"[ci-risk]\ntrusted_keys = {other}\n"}, "trust the team key")
    monkeypatch.chdir(repo.path)
    code, _, err = run_cli(["model", "pull", str(dest)], capsys)
    assert code == 1 and "not trusted" in err  # the committed key counts: this model is signed by another
    assert "may not set" not in err


def test_a_malformed_trusted_key_is_a_usage_error(
    signed: tuple[Path, str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, _, _ = signed
    monkeypatch.setenv("CI_RISK_TRUSTED_KEYS", "ci-risk-ed25519:bm90IGEga2V5")
    code, _, err = run_cli(["model", "pull", str(dest)], capsys)
    assert code == 2 and "not an Ed25519 key" in err


def test_an_unverified_install_stopped_half_way_is_never_taken_as_verified(
    signed: tuple[Path, str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull without keys writes an unsigned model, then stops before its manifest (killed, disk full...):
    the hook, which trusts the team key, must not take that model as the one the last keyed pull verified."""
    from ci_risk_hook.distribution import team

    dest, public, _ = signed
    monkeypatch.setenv("CI_RISK_TRUSTED_KEYS", public)
    assert run_cli(["model", "pull", str(dest)], capsys)[0] == 0
    key = cache.source_key(str(dest))
    assert cache.read_state(key)["verified_key"] == public
    publish(artifact_variant(0.33), str(dest))  # unsigned, by whoever can write the bucket
    monkeypatch.delenv("CI_RISK_TRUSTED_KEYS")  # a pull run where the key is not configured
    manifest_file = Path(paths.team_manifest(key))
    manifest_file.unlink()
    (manifest_file / "blocked").mkdir(parents=True)  # the manifest cannot be written: the install stops there
    code, _, err = run_cli(["model", "pull", str(dest)], capsys)
    assert code == 1 and "cannot write the team model cache" in err
    assert json.loads(_cached(dest).read_bytes())["thresholds"]["warn"] == 0.33  # the model file was replaced
    notes: list[str] = []
    assert team.cached_model(str(dest), (public,), 3600.0, notes, refresh=False) is None
    assert "not verified with the trusted keys" in notes[0]


def test_a_model_installed_under_another_key_is_no_baseline_for_refusing_older_ones(
    signed: tuple[Path, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull that trusted another key (one a pull request committed, on a self-hosted runner) installed that
    key's newer model; a pull trusting the team key must not refuse the team's model as a replay of it."""
    dest, public, _ = signed
    team_manifest = (dest / "manifest.json").read_bytes()
    other_private, other = keygen(tmp_path, "intruder", capsys)
    assert (
        run_cli(
            ["model", "publish", str(dest), "--model", _model(tmp_path, 0.4), "--sign", str(other_private)], capsys
        )[0]
        == 0
    )
    monkeypatch.setenv("CI_RISK_TRUSTED_KEYS", other)
    assert run_cli(["model", "pull", str(dest)], capsys)[0] == 0
    (dest / "manifest.json").write_bytes(team_manifest)  # the team's model, older than the intruder's
    monkeypatch.setenv("CI_RISK_TRUSTED_KEYS", public)
    code, out, err = run_cli(["model", "pull", str(dest)], capsys)
    assert code == 0, err
    assert f"signature by key {keys.key_id(public)} verified" in out
    assert json.loads(_cached(dest).read_bytes())["thresholds"]["warn"] == 0.31


def test_keygen_with_a_public_key_file_it_cannot_write_writes_no_private_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private = tmp_path / "team.pem"
    code, _, err = run_cli(["model", "keygen", str(private), "--public-out", str(tmp_path / "no" / "team.pub")], capsys)
    assert code == 2 and "cannot write" in err and len(err.strip().splitlines()) == 1
    assert not private.exists()
