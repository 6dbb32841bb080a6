"""The team model on the push path: precedence, the trust rule for its source, refresh in the background.

Real repositories, real `git push` through the installed raw hook; sources
are directories, moto's S3 server, or a server that accepts and never answers.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ci_risk_hook import config, paths
from ci_risk_hook.distribution import cache, team
from ci_risk_hook.distribution.published import publish
from ci_risk_hook.gate import evaluate as gate
from ci_risk_hook.git import repo as git
from ci_risk_hook.model.scoring import load_model
from testing.published import SilentServer, artifact_variant, aws_env
from testing.repos import Repo, lines, make_repo

CI_RISK = str(Path(sys.executable).parent / "ci-risk")


@pytest.fixture
def pushable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """A repository with history, a bare remote holding main, the raw hook installed, one commit to push."""
    if gate.bundled_model_path() is None:
        pytest.skip("this checkout has no bundled model (model/model.json)")
    repo = make_repo(tmp_path / "project")
    repo.commit({"src/app.py": lines(30), "README.md": "# app\n"}, "initial import")
    for i in range(3):
        repo.commit({"src/app.py": lines(31 + i)}, f"improve {i}")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    repo.git("remote", "add", "origin", str(remote))
    repo.git("push", "-q", "--no-verify", "-u", "origin", "main")
    installed = subprocess.run([CI_RISK, "install"], cwd=repo.path, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    repo.commit({"src/feature.py": lines(12)}, "a change")
    monkeypatch.chdir(repo.path)
    return repo


def git_push(repo: Repo, **env: str) -> tuple[int, str]:
    proc = subprocess.run(
        ["git", "push", "origin", "main"],
        cwd=repo.path,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,  # a hang fails the test instead of the suite; no assertion on time
    )
    return proc.returncode, proc.stdout + proc.stderr


def pushed(repo: Repo) -> bool:
    return repo.git("ls-remote", "origin", "refs/heads/main").split()[0] == repo.head()


def ci_risk(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CI_RISK, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=300)


def wait_for_refresh(source: str) -> None:
    """Until the background refresher has let go of its lock (it exits when done)."""
    lock = paths.team_lock(cache.source_key(source))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            time.sleep(0.05)
        finally:
            os.close(fd)
    raise AssertionError("the background refresh never finished")


# -- the source comes from the user, never from a committed file ---------------------------


def test_a_committed_model_source_is_ignored_and_never_contacted(pushable: Repo, silent_server: SilentServer) -> None:
    pushable.commit({".ci-risk.ini": f"[ci-risk]\nmodel_source = {silent_server.url}/models\n"}, "settings")
    code, out = git_push(pushable, CI_RISK_MODEL_REFRESH="0.001")
    assert code == 0 and pushed(pushable), out
    assert ".ci-risk.ini model_source: a repository's file may not set this" in out
    assert "team model" not in out
    assert not os.path.exists(os.path.join(paths.user_cache_dir(), paths.TEAM_MODELS_DIR))
    assert silent_server.close() == 0, "the hook contacted the source a repository's file named"


def test_the_same_source_from_the_user_is_contacted(pushable: Repo, silent_server: SilentServer) -> None:
    """The counter-check: from the environment, the same source is used (in the background)."""
    source = f"{silent_server.url}/models"
    code, out = git_push(pushable, CI_RISK_MODEL_SOURCE=source)
    assert code == 0 and pushed(pushable), out
    deadline = time.monotonic() + 120
    while silent_server.accepted == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert silent_server.accepted >= 1


# -- precedence -------------------------------------------------------------------------------


def test_precedence_explicit_then_team_then_repository_file_then_trained_then_bundled(
    pushable: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = git.repo_info()
    dest = tmp_path / "published"
    publish(artifact_variant(0.21), str(dest))
    assert cache.pull(str(dest)).status == "installed"
    trained = Path(paths.repo_model(info.common_dir))
    trained.parent.mkdir(parents=True, exist_ok=True)
    trained.write_bytes(artifact_variant(0.22))
    (pushable.path / "committed-model.json").write_bytes(artifact_variant(0.23))
    (pushable.path / ".ci-risk.ini").write_text("[ci-risk]\nmodel = committed-model.json\n")
    explicit = tmp_path / "explicit.json"
    explicit.write_bytes(artifact_variant(0.24))

    def chosen(**env: str) -> tuple[str, float]:
        settings = config.resolve({}, env=env, toplevel=info.toplevel)
        choice = gate.choose_model(settings, info)
        assert choice is not None
        return choice.source, choice.model.thresholds["warn"]

    source = {"CI_RISK_MODEL_SOURCE": str(dest)}
    assert chosen(**source, CI_RISK_MODEL=str(explicit)) == ("$CI_RISK_MODEL", 0.24)
    assert chosen(**source) == (f"team ({dest})", 0.21)
    assert chosen() == (".ci-risk.ini", 0.23)
    (pushable.path / ".ci-risk.ini").unlink()
    assert chosen() == ("repository", 0.22)
    trained.unlink()
    assert chosen()[0] == "bundled"


# -- the push uses the pulled team model and never waits for its source ----------------------


def test_a_push_uses_the_pulled_team_model_and_says_so(pushable: Repo, tmp_path: Path) -> None:
    dest = tmp_path / "published"
    publish(artifact_variant(0.0), str(dest))  # warns on everything: the model line is shown
    pulled = ci_risk("model", "pull", str(dest))
    assert pulled.returncode == 0, pulled.stderr
    code, out = git_push(pushable, CI_RISK_MODEL_SOURCE=str(dest))
    assert code == 0 and pushed(pushable), out
    assert f"model: team ({dest})" in out
    assert "checking" not in out  # pulled a moment ago: not due


def test_the_team_model_from_s3_is_used_by_the_push(pushable: Repo, s3_bucket: str, moto_endpoint: str) -> None:
    source = f"s3://{s3_bucket}/org"
    publish(artifact_variant(0.0), source)
    assert ci_risk("model", "pull", source).returncode == 0
    code, out = git_push(pushable, CI_RISK_MODEL_SOURCE=source)
    assert code == 0 and pushed(pushable), out
    assert f"model: team ({source})" in out


def test_a_push_never_waits_for_a_source_that_does_not_answer(
    pushable: Repo, silent_server: SilentServer, s3_bucket: str
) -> None:
    source = f"s3://{s3_bucket}/org"
    env = {**aws_env(silent_server.url), "CI_RISK_MODEL_SOURCE": source, "CI_RISK_WARN_AT": "0"}
    code, out = git_push(pushable, **env)
    assert code == 0 and pushed(pushable), out
    assert f"team model: none cached yet from {source}; checking {source} for a newer model in the background" in out
    assert "model: bundled" in out
    # a second push meanwhile: the refresh is under way (or failed), nothing waits, one line
    pushable.commit({"src/feature.py": lines(13)}, "another change")
    code, out = git_push(pushable, **env)
    assert code == 0 and pushed(pushable), out
    assert out.count("team model:") == 1


@pytest.mark.parametrize(
    "trouble, said",
    [
        ("gone", "nothing published at"),
        ("tampered", "does not match the manifest"),
        ("signed by another key", "not trusted"),
    ],
)
def test_a_refused_or_failed_refresh_keeps_the_cached_model_and_says_so_in_one_line(
    trouble: str, said: str, pushable: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ci_risk_hook.distribution import keys

    dest = tmp_path / "published"
    ours = tmp_path / "ours.pem"
    public = keys.generate(str(ours))
    publish(artifact_variant(0.0), str(dest), signing_key=str(ours))
    env = {"CI_RISK_MODEL_SOURCE": str(dest), "CI_RISK_TRUSTED_KEYS": public}
    assert ci_risk("model", "pull", **env).returncode == 0
    if trouble == "gone":
        (dest / "manifest.json").unlink()
    elif trouble == "tampered":
        manifest = publish(artifact_variant(0.02), str(dest), signing_key=str(ours))
        artifact = dest / manifest["artifact"]["path"]
        artifact.write_bytes(artifact.read_bytes().replace(b'"warn":0.02', b'"warn":0.92'))
    else:
        theirs = tmp_path / "theirs.pem"
        keys.generate(str(theirs))
        publish(artifact_variant(0.03), str(dest), signing_key=str(theirs))
    failed = ci_risk("model", "pull", **env)  # what the background refresh does, in the foreground
    assert failed.returncode == 1 and said in failed.stderr
    code, out = git_push(pushable, **env)
    assert code == 0 and pushed(pushable), out
    assert out.count("team model:") == 1
    assert "team model: last refresh failed (" in out and said in out and "using the cached one" in out
    assert f"model: team ({dest})" in out
    assert load_model(paths.team_model(cache.source_key(str(dest)))).thresholds["warn"] == 0.0


def test_when_due_the_push_refreshes_in_the_background_and_the_next_push_uses_the_new_model(
    pushable: Repo, tmp_path: Path
) -> None:
    dest = tmp_path / "published"
    publish(artifact_variant(0.0), str(dest))
    assert ci_risk("model", "pull", str(dest)).returncode == 0
    publish(artifact_variant(0.01), str(dest))
    code, out = git_push(pushable, CI_RISK_MODEL_SOURCE=str(dest), CI_RISK_MODEL_REFRESH="0.001")
    assert code == 0 and pushed(pushable), out
    assert f"team model: checking {dest} for a newer model in the background" in out
    wait_for_refresh(str(dest))
    assert load_model(paths.team_model(cache.source_key(str(dest)))).thresholds["warn"] == 0.01
    state = cache.read_state(cache.source_key(str(dest)))
    assert state["error"] is None and state["checked"] >= state["attempted"]


def test_a_refresh_is_not_started_again_within_the_interval(pushable: Repo, tmp_path: Path) -> None:
    dest = tmp_path / "published"
    publish(artifact_variant(0.0), str(dest))
    assert ci_risk("model", "pull", str(dest)).returncode == 0
    for i in range(2):
        pushable.commit({"src/feature.py": lines(20 + i)}, f"change {i}")
        code, out = git_push(pushable, CI_RISK_MODEL_SOURCE=str(dest), CI_RISK_MODEL_REFRESH="1h")
        assert code == 0 and "checking" not in out, out
    assert "attempted" not in cache.read_state(cache.source_key(str(dest)))


# -- the CI step's foreground pull --------------------------------------------------------------


def test_refresh_now_gives_up_after_its_timeout_with_one_line(silent_server: SilentServer) -> None:
    line = team.refresh_now(f"{silent_server.url}/models", (), timeout=0.5)
    assert line == f"team model: {silent_server.url}/models did not answer within 0.5 s; using the cached or next model"


def test_refresh_now_pulls(tmp_path: Path) -> None:
    dest = tmp_path / "published"
    manifest = publish(artifact_variant(0.3), str(dest))
    assert (
        team.refresh_now(str(dest), (), timeout=60)
        == f"team model: pulled from {dest} (published {manifest['created']})"
    )
    assert "up to date" in team.refresh_now(str(dest), (), timeout=60)


def test_the_push_path_with_a_team_model_imports_no_fsspec_cryptography_or_click(
    pushable: Repo, tmp_path: Path
) -> None:
    dest = tmp_path / "published"
    publish(artifact_variant(0.0), str(dest))
    assert ci_risk("model", "pull", str(dest)).returncode == 0
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ci_risk_hook", "hook"],
        cwd=pushable.path,
        capture_output=True,
        text=True,
        env={**os.environ, "CI_RISK_MODEL_SOURCE": str(dest), "CI_RISK_MODEL_REFRESH": "0.001"},
        timeout=300,
    )
    assert proc.returncode == 0 and f"model: team ({dest})" in proc.stdout, proc.stdout + proc.stderr
    assert "checking" in proc.stdout  # the refresh was started, in another process
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    heavy = {"fsspec", "s3fs", "botocore", "aiohttp", "cryptography", "click", "platformdirs"}
    assert not imported & heavy, imported & heavy
    wait_for_refresh(str(dest))


def test_a_model_cached_before_keys_were_trusted_is_not_used_until_a_pull_verifies_it(
    pushable: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from testing.repos import run_cli

    dest = tmp_path / "published"
    publish(artifact_variant(0.0), str(dest))  # unsigned
    assert ci_risk("model", "pull", str(dest)).returncode == 0
    code, public, _ = run_cli(["model", "keygen", str(tmp_path / "k.pem")], capsys)
    assert code == 0
    env = {"CI_RISK_MODEL_SOURCE": str(dest), "CI_RISK_TRUSTED_KEYS": public.strip(), "CI_RISK_WARN_AT": "0"}
    code, out = git_push(pushable, **env)
    assert code == 0 and pushed(pushable), out
    assert "team model: the cached model was not verified with the trusted keys" in out
    assert "model: bundled" in out
    wait_for_refresh(str(dest))  # the refresh it started is refused: the model is unsigned
    assert "not signed" in cache.read_state(cache.source_key(str(dest)))["error"]


def test_check_ci_helper_pulls_in_the_foreground_only_with_a_source(tmp_path: Path) -> None:
    dest = tmp_path / "published"
    publish(artifact_variant(0.3), str(dest))
    assert team.refresh_for_ci(config.resolve({}, env={})) is None
    line = team.refresh_for_ci(config.resolve({"model_source": str(dest)}, env={}), timeout=60)
    assert line is not None and line.startswith(f"team model: pulled from {dest}")


@pytest.mark.parametrize("absent", ["fsspec", "s3fs"])
def test_without_the_extra_the_push_names_it_and_pull_is_a_usage_error(
    absent: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An installation without the package (simulated: the module lookup finds nothing) says what installs it."""
    import importlib.util

    from testing.repos import run_cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == absent else real(name, *a))
    source = "s3://bucket/org" if absent == "s3fs" else str(tmp_path)
    extra = "s3" if absent == "s3fs" else "team"
    notes: list[str] = []
    assert team.cached_model(source, (), 3600.0, notes, refresh=True) is None
    assert len(notes) == 1 and f"pip install 'ci-risk[{extra}]'" in notes[0] and "using the next model" in notes[0]
    code, _, err = run_cli(["model", "pull", source], capsys)
    assert code == 2 and f"pip install 'ci-risk[{extra}]'" in err


def test_without_a_refresh_an_empty_cache_claims_no_pull_was_started(tmp_path: Path) -> None:
    """`check --ci` pulls in the foreground and then reads the cache: a timed-out pull started nothing else."""
    notes: list[str] = []
    assert team.cached_model(str(tmp_path / "published"), (), 3600.0, notes, refresh=False) is None
    assert notes == [f"team model: none cached yet from {tmp_path / 'published'}; using the next model"]


def test_the_background_refresher_never_imports_code_from_the_pushed_repository(pushable: Repo, tmp_path: Path) -> None:
    """`python -m` puts its working directory first on sys.path: started in the work tree, a repository's
    top-level `json.py` (or `fsspec.py`, `ci_risk_hook/`) would run in the refresher on every push."""
    marker = tmp_path / "imported-from-the-repository"
    planted = f"open({str(marker)!r}, 'w').close()\nraise ImportError('planted')\n"
    for name in ("json.py", "fsspec.py", "hashlib.py"):
        (pushable.path / name).write_text(planted)
    dest = tmp_path / "published"
    publish(artifact_variant(0.0), str(dest))
    code, out = git_push(pushable, CI_RISK_MODEL_SOURCE=str(dest), CI_RISK_MODEL_REFRESH="0.001")
    assert code == 0 and pushed(pushable), out
    assert "checking" in out
    wait_for_refresh(str(dest))
    assert not marker.exists(), "the refresher imported a module from the repository's work tree"
    assert os.path.isfile(paths.team_model(cache.source_key(str(dest))))
