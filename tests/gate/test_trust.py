"""What a cloned repository may make the hook do, and bad settings that must not stop a push.

A repository's committed files are not trusted: its `.ci-risk.ini` cannot
point the hook at a server or outside the work tree, its model cannot be a
device or a symlink out of the tree, a model is size-capped and range-checked
whatever its source, and a typo in its settings is a warning in the hook.
Real repositories, real `git push` through the installed raw hook.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from ci_risk_hook import config, paths
from ci_risk_hook.features.extract import FEATURE_NAMES
from ci_risk_hook.gate import evaluate as gate
from ci_risk_hook.model.export import seal_artifact
from ci_risk_hook.model.scoring import (
    FORMAT,
    MAX_MODEL_BYTES,
    ModelError,
    PortableModel,
    ScoreError,
    canonical_json,
    load_model,
    read_artifact,
)
from testing.repos import Repo, built_once, lines, make_repo, run_cli

CI_RISK = str(Path(sys.executable).parent / "ci-risk")
TOO_BIG = "larger than 50 MB; not read"


# -- fixtures ------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """A repository with a little history and one pending commit, the bundled model, cwd inside it."""
    if gate.bundled_model_path() is None:
        pytest.skip("this checkout has no bundled model (model/model.json)")
    repo = make_repo(tmp_path / "project")
    built_once(repo, "trusted project", _four_commits)
    subprocess.run([CI_RISK, "index"], cwd=repo.path, check=True, capture_output=True)  # warm, as after a first push
    monkeypatch.chdir(repo.path)
    return repo


def _four_commits(repo: Repo) -> None:
    repo.commit({"src/app.py": lines(30), "README.md": "# app\n"}, "initial import")
    for i in range(3):
        repo.commit({"src/app.py": lines(31 + i)}, f"improve {i}")


@pytest.fixture
def pushable(project: Repo, tmp_path: Path) -> Repo:
    """`project` with a bare remote holding main and the raw hook installed (`ci-risk install`)."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    project.git("remote", "add", "origin", str(remote))
    project.git("push", "-q", "--no-verify", "-u", "origin", "main")
    installed = subprocess.run([CI_RISK, "install"], cwd=project.path, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    return project


def commit_settings(repo: Repo, text: str, extra: dict[str, str] | None = None) -> str:
    return repo.commit({".ci-risk.ini": text, "src/feature.py": lines(12), **(extra or {})}, "settings and a change")


def git_push(repo: Repo, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "push", "origin", "main"],
        cwd=repo.path,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def remote_head(repo: Repo) -> str:
    return repo.git("ls-remote", "origin", "refs/heads/main").split()[0]


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return run_cli(["check", "--from", "HEAD~1", *args], capsys)


def hook(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, repo: Repo, *args: str
) -> tuple[int, str, str]:
    """`ci-risk hook` as pre-commit calls it for the last commit."""
    monkeypatch.setenv("PRE_COMMIT_FROM_REF", repo.git("rev-parse", "HEAD~1"))
    monkeypatch.setenv("PRE_COMMIT_TO_REF", repo.head())
    return run_cli(["hook", *args], capsys)


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN and Infinity, as any strict JSON reader would."""

    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


# -- hand-made model artifacts, sealed the way export.seal_artifact does -------


def _tree(leaf: float, value: float = 0.5) -> dict[str, Any]:
    """One split on n_commits; both leaves `leaf`, so any push lands on it."""
    return {
        "feature": [0],
        "threshold": [0.5],
        "left": [-1],
        "right": [-2],
        "missing_left": [1],
        "value": [value],
        "leaf_value": [leaf, leaf],
    }


def _artifact(model: dict[str, Any], names: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": 1,
        "feature_names": names or list(FEATURE_NAMES),
        "thresholds": {"warn": 0.3, "block": 0.6},
        "provenance": {"trained_on": "hand-made for a test"},
        "imputation": {},
        "model": model,
        **extra,
    }


def forest(*leaves: float, **extra: Any) -> dict[str, Any]:
    return seal_artifact(
        _artifact({"kind": "forest", "missing": "native", "trees": [_tree(x) for x in leaves]}, **extra)
    )


def isotonic_forest(ys: list[float]) -> dict[str, Any]:
    return forest(0.5, calibration={"kind": "isotonic", "input": "probability", "x": [0.0, 1.0], "y": ys})


def logistic(coef: list[float], scale: list[float], means: list[float] | None = None) -> dict[str, Any]:
    n = len(FEATURE_NAMES)
    model = {
        "kind": "logistic",
        "missing": "impute",
        "coef": coef,
        "intercept": 0.0,
        "center": [0.0] * n,
        "scale": scale,
        "feature_means": means or [0.0] * n,
    }
    art = _artifact(model)
    art["imputation"] = {name: 0.0 for name in FEATURE_NAMES}
    return seal_artifact(art)


def nan_logistic() -> dict[str, Any]:
    """Loads (every number finite), then n_commits*1e308/1e-300 = inf meets nf*-1e308/1e-300 = -inf: NaN."""
    n = len(FEATURE_NAMES)
    coef, scale = [0.0] * n, [1.0] * n
    for name, weight in (("n_commits", 1e308), ("nf", -1e308)):
        coef[FEATURE_NAMES.index(name)] = weight
        scale[FEATURE_NAMES.index(name)] = 1e-300
    return logistic(coef, scale)


def write(artifact: dict[str, Any], path: Path) -> Path:
    """Canonical JSON, as write_artifact writes it, but without its validation (these are meant to be bad)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(canonical_json(artifact) + "\n")
    return path


def write_with_raw_number(artifact: dict[str, Any], placeholder: float, raw_number: str, path: Path) -> Path:
    """Put a number JSON can spell but not hold (1e999 reads as inf) into the file, sha256 over the file's bytes."""
    import hashlib

    body = canonical_json({k: v for k, v in artifact.items() if k != "sha256"})
    assert repr(placeholder) in body
    body = body.replace(repr(placeholder), raw_number)
    sha = hashlib.sha256(body.encode("ascii")).hexdigest()
    path.write_text(body[:-1] + f',"sha256":"{sha}"}}\n')
    return path


def sparse_file(path: Path, size: int = MAX_MODEL_BYTES + 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size)  # no blocks written: costs no disk
    return path


# -- 1. a repository's file may not reach the network ----------------------------


class Listener:
    """A plain TCP socket on loopback that counts the connections it is offered (and drops them)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:  # the accept timeout included
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> int:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.accepted


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def test_a_committed_db_url_is_never_connected_to(pushable: Repo, listener: Listener) -> None:
    url = f"postgresql://dev@127.0.0.1:{listener.port}/x"
    tip = commit_settings(pushable, f"[ci-risk]\ndb = {url}\n")

    pushed = git_push(pushable, PGPASSWORD="the developer's secret")

    assert pushed.returncode == 0, pushed.stderr
    assert remote_head(pushable) == tip
    assert listener.close() == 0, "the hook connected to the server a repository's file named"
    refusals = [line for line in pushed.stderr.splitlines() if ".ci-risk.ini db" in line]
    assert len(refusals) == 1 and refusals[0].startswith("ci-risk: warning: ") and "ignored" in refusals[0]
    assert "ci-risk: risk " in pushed.stderr + pushed.stdout  # the push was still scored


def test_the_same_url_from_the_user_is_used(
    project: Repo, listener: Listener, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counter-check: the listener does see the hook when the user (environment) names it."""
    project.commit({"src/feature.py": lines(12)})
    monkeypatch.setenv("CI_RISK_DB", f"postgresql://dev@127.0.0.1:{listener.port}/x")
    code, out, _ = check(capsys)
    assert code == 0 and out.startswith("ci-risk: risk ")
    assert "build history unavailable" in out
    assert listener.close() >= 1


def test_check_by_hand_refuses_a_committed_db_too(
    project: Repo, listener: Listener, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_settings(project, f"[ci-risk]\nmode = warn\ndb = postgresql://dev@127.0.0.1:{listener.port}/x\n")
    code, out, err = check(capsys)
    assert code == 0 and out.startswith("ci-risk: risk ")
    assert err.count(".ci-risk.ini db: a repository's file may not set this") == 1
    assert listener.close() == 0


# -- the user's own config file ---------------------------------------------------


def user_config(text: str) -> Path:
    path = Path(os.environ["CI_RISK_CONFIG"])
    path.write_text(text)
    return path


def test_user_config_sits_between_the_environment_and_the_repository_file(
    project: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    commit_settings(project, "[ci-risk]\nmode = warn\nblock_at = 0.99\n")
    assert check(capsys)[0] == 0
    user_config("[ci-risk]\nmode = block\nblock_at = 0\n")
    assert check(capsys)[0] == 1  # the user's file beats the repository's
    monkeypatch.setenv("CI_RISK_MODE", "warn")
    assert check(capsys)[0] == 0  # the environment beats the user's file
    assert check(capsys, "--mode", "block")[0] == 1  # an option beats everything


def test_user_config_may_set_the_store_relative_to_itself(project: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    path = user_config("[ci-risk]\ndb = stores/history.sqlite\n")
    settings = config.resolve({}, toplevel=str(project.path))
    assert settings.db == str(path.parent / "stores" / "history.sqlite")
    assert settings.sources["db"] == config.USER_CONFIG_SOURCE and not settings.warnings

    code, _, err = run_cli(["record", "--status", "fail"], capsys)  # commands without --db follow it too
    assert code == 0, err
    assert (path.parent / "stores" / "history.sqlite").is_file()
    project.commit({"src/feature.py": lines(12)})
    code, out, _ = check(capsys, "--format", "json")
    assert json.loads(out)["ranges"][0]["features"]["prev_build_failed"] == 1.0  # and so does the hook


def test_a_bad_user_config_is_a_usage_error_by_hand_and_a_warning_in_the_hook(
    project: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = user_config("[ci-risk]\nmode = loud\n")
    project.commit({"src/feature.py": lines(12)})
    code, _, err = check(capsys)
    assert code == 2 and f"{path} mode" in err
    code, out, err = hook(capsys, monkeypatch, project)
    assert code == 0 and out.startswith("ci-risk: risk ")
    modes = "warn, block, off, observe"
    assert err.strip() == f"ci-risk: warning: {path} mode: mode must be one of {modes}, got 'loud'; ignored"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the hand-computed path is Linux's")
@pytest.mark.parametrize("xdg", [None, "/somewhere/config", "relative/config", ""])
def test_user_config_directory_is_platformdirs_without_importing_it(
    xdg: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import platformdirs

    monkeypatch.delenv("CI_RISK_CONFIG")
    if xdg is None:
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", xdg)
    expected = os.path.join(platformdirs.user_config_dir("ci-risk", appauthor=False), "config.ini")
    assert paths.user_config_file() == expected


# -- 2. a repository's model: a regular file inside the work tree; every model capped --


def model_in_report(out: str) -> dict[str, Any]:
    report = strict_json(out)
    assert report["model"] is not None, report
    return report


@pytest.mark.parametrize("how", ["device", "committed symlink to a device", "symlink out of the tree", "url"])
def test_a_repository_file_model_outside_the_work_tree_is_refused(
    how: str, project: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = write(forest(0.99), tmp_path / "elsewhere" / "model.json")
    extra: dict[str, str] = {}
    if how == "device":
        value = "/dev/zero"
    elif how == "url":
        value = "https://example.invalid/model.json"
    else:
        (project.path / "tools").mkdir()
        os.symlink("/dev/zero" if "device" in how else str(outside), project.path / "tools" / "model.json")
        project.git("add", "tools/model.json")
        value = "tools/model.json"
    commit_settings(project, f"[ci-risk]\nmodel = {value}\n", extra)
    if how.startswith("committed"):
        assert project.git("ls-files", "-s", "tools/model.json").startswith("120000")  # a symlink in git

    code, out, err = check(capsys, "--format", "json")

    assert code == 0
    assert err.count("ci-risk: warning: .ci-risk.ini model:") == 1 and len(err.strip().splitlines()) == 1, err
    assert "ignored" in err
    assert model_in_report(out)["model"]["source"] == "bundled"  # the default is used, the push is scored


@pytest.mark.parametrize("link", [False, True])
def test_a_repository_file_model_inside_the_work_tree_is_used(
    link: bool, project: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    write(forest(0.99), project.path / "tools" / "real.json")
    if link:
        os.symlink("real.json", project.path / "tools" / "model.json")
    commit_settings(project, f"[ci-risk]\nmodel = tools/{'model' if link else 'real'}.json\n")
    code, out, err = check(capsys, "--format", "json")
    report = model_in_report(out)
    assert code == 0 and not err
    assert report["model"]["source"] == ".ci-risk.ini" and report["ranges"][0]["probability"] == 0.99
    assert report["model"]["path"] == str((project.path / "tools" / "real.json").resolve())


def test_a_percent_sign_in_a_setting_is_just_a_character(project: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    write(forest(0.42), project.path / "tools" / "100%.json")
    commit_settings(project, "[ci-risk]\nmodel = tools/100%.json\n")
    code, out, err = check(capsys, "--format", "json")
    assert code == 0 and not err and strict_json(out)["ranges"][0]["probability"] == 0.42


def _oversize_sources(
    project: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Callable[[], list[str]]]:
    def option() -> list[str]:
        return ["--model", str(sparse_file(tmp_path / "big.json"))]

    def env() -> list[str]:
        monkeypatch.setenv("CI_RISK_MODEL", str(sparse_file(tmp_path / "big.json")))
        return []

    def repository_file() -> list[str]:
        sparse_file(project.path / "tools" / "big.json")
        (project.path / ".ci-risk.ini").write_text("[ci-risk]\nmodel = tools/big.json\n")
        return []

    def repository_own() -> list[str]:
        sparse_file(project.path / ".git" / "ci-risk" / "model.json")
        return []

    def bundled() -> list[str]:
        big = str(sparse_file(tmp_path / "bundled" / "model.json"))
        monkeypatch.setattr(gate, "bundled_model_path", lambda: big)
        return []

    return {
        "option": option,
        "env": env,
        "repository file": repository_file,
        "repository's own": repository_own,
        "bundled": bundled,
    }


@pytest.mark.parametrize("source", ["option", "env", "repository file", "repository's own", "bundled"])
def test_an_oversize_model_is_refused_before_it_is_read_whatever_its_source(
    source: str, project: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project.commit({"src/feature.py": lines(12)})
    args = _oversize_sources(project, tmp_path, monkeypatch)[source]()
    code, out, err = check(capsys, *args)
    assert code == 0 and not out
    assert err.startswith("ci-risk: warning: model file ") and TOO_BIG in err and "push not checked" in err, err
    assert len(err.strip().splitlines()) == 1
    code, _, err = check(capsys, *args, "--strict")
    assert code == 3 and err.startswith("ci-risk: error: ") and TOO_BIG in err


def test_a_device_named_by_the_user_is_read_only_up_to_the_cap(
    project: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project.commit({"src/feature.py": lines(12)})
    monkeypatch.setenv("CI_RISK_MODEL", "/dev/zero")
    code, _, err = check(capsys)
    assert code == 0 and TOO_BIG in err and "push not checked" in err


def _bytes_read_by_this_process() -> int:
    with open("/proc/self/io") as fh:
        return int(next(line for line in fh if line.startswith("rchar:")).split()[1])


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux's per-process I/O counters")
def test_the_cap_is_checked_before_reading_and_bounds_what_is_read(tmp_path: Path) -> None:
    big = sparse_file(tmp_path / "model.json", size=1024**4)  # 1 TB, no blocks
    before = _bytes_read_by_this_process()
    with pytest.raises(ModelError, match=TOO_BIG):
        read_artifact(big)
    assert _bytes_read_by_this_process() - before < 1024 * 1024  # refused on its size alone

    before = _bytes_read_by_this_process()
    with pytest.raises(ModelError, match=TOO_BIG):
        read_artifact("/dev/zero")  # no size to check first: read up to the cap, no further
    assert MAX_MODEL_BYTES < _bytes_read_by_this_process() - before < MAX_MODEL_BYTES + 1024 * 1024


def test_training_and_retrain_read_models_through_the_cap(tmp_path: Path) -> None:
    from ci_risk_hook.model.training import PortableEstimator, TrainError
    from ci_risk_hook.model.workflow import current_backtest

    big = str(sparse_file(tmp_path / "model.json"))
    assert current_backtest(big) is None
    with pytest.raises(TrainError, match="larger than 50 MB"):
        PortableEstimator(big)
    with pytest.raises(ModelError, match="larger than 50 MB"):
        load_model("/dev/zero")


# -- 3. a tampered model, re-sealed: structure and ranges at load, the score at scoring time --

TAMPERED_AT_LOAD = {
    "forest leaf 50": (lambda: forest(50.0), "model.trees[0].leaf_value: values must be probabilities in [0, 1]"),
    "forest leaf -7": (lambda: forest(0.2, -7.0), "model.trees[1].leaf_value: values must be probabilities"),
    "forest summing to inf": (lambda: forest(1e308, 1e308), "values must be probabilities in [0, 1]"),
    "forest node value 3": (
        lambda: seal_artifact(_artifact({"kind": "forest", "missing": "native", "trees": [_tree(0.5, value=3.0)]})),
        "model.trees[0].value: values must be probabilities",
    ),
    "isotonic y 50": (lambda: isotonic_forest([0.0, 50.0]), "calibration.y: values must be probabilities"),
    "isotonic x beyond a probability": (
        lambda: forest(0.5, calibration={"kind": "isotonic", "input": "probability", "x": [0.0, 7.0], "y": [0.0, 1.0]}),
        "calibration.x: values must be probabilities",
    ),
    "logistic base overflow": (
        lambda: logistic([1e308] * len(FEATURE_NAMES), [1.0] * len(FEATURE_NAMES), [1e308] * len(FEATURE_NAMES)),
        "model: coefficients, means and scales overflow a float",
    ),
    "unknown feature": (
        lambda: seal_artifact(
            _artifact(
                {"kind": "forest", "missing": "native", "trees": [_tree(0.5)]},
                names=[*FEATURE_NAMES[:-1], "no_such_feature"],
            )
        ),
        "the model reads features this ci-risk does not compute: no_such_feature",
    ),
}


def _tampered(case: str, tmp_path: Path) -> Path:
    if case == "provenance Infinity":
        return write_with_raw_number(
            forest(0.5, provenance={"auc": 12345.5}), 12345.5, "1e999", tmp_path / "model.json"
        )
    if case == "leaf Infinity":
        return write_with_raw_number(forest(0.5, 12345.5), 12345.5, "1e999", tmp_path / "model.json")
    return write(TAMPERED_AT_LOAD[case][0](), tmp_path / "model.json")


@pytest.mark.parametrize("case", [*TAMPERED_AT_LOAD, "provenance Infinity", "leaf Infinity"])
def test_a_resealed_tampered_model_is_refused_in_every_mode(
    case: str, project: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _tampered(case, tmp_path)
    expected = TAMPERED_AT_LOAD[case][1] if case in TAMPERED_AT_LOAD else "finite"
    project.commit({"src/feature.py": lines(12)})
    monkeypatch.setenv("CI_RISK_MODEL", str(path))
    _assert_not_scored_in_every_mode(capsys, expected)


def test_a_model_that_scores_nan_is_an_internal_error_in_every_mode(
    project: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(nan_logistic(), tmp_path / "model.json")
    load_model(path, known_features=FEATURE_NAMES)  # every number in it is finite: it loads
    project.commit({"src/feature.py": lines(12)})
    monkeypatch.setenv("CI_RISK_MODEL", str(path))
    _assert_not_scored_in_every_mode(capsys, "the model returned nan, not a probability")


def test_a_model_with_infinite_contributions_is_an_internal_error(
    project: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    n = len(FEATURE_NAMES)
    coef, scale = [0.0] * n, [1.0] * n
    coef[FEATURE_NAMES.index("n_commits")], scale[FEATURE_NAMES.index("n_commits")] = 1e308, 1e-300
    path = write(logistic(coef, scale), tmp_path / "model.json")  # sigmoid(inf) = 1.0, but its reason is inf
    project.commit({"src/feature.py": lines(12)})
    monkeypatch.setenv("CI_RISK_MODEL", str(path))
    _assert_not_scored_in_every_mode(capsys, "non-finite contributions")


def _assert_not_scored_in_every_mode(capsys: pytest.CaptureFixture[str], expected: str) -> None:
    for args in ([], ["--mode", "block", "--block-at", "0"]):  # warn and block fail open alike
        code, out, err = check(capsys, *args)
        assert code == 0 and not out, out
        assert err.startswith("ci-risk: warning: ") and expected in err and "push not checked" in err, err
        assert len(err.strip().splitlines()) == 1
    code, out, err = check(capsys, "--strict")
    assert code == 3 and not out and err.startswith("ci-risk: error: ") and expected in err, err
    for args, exit_code in ((["--format", "json"], 0), (["--format", "json", "--strict"], 3)):
        code, out, err = check(capsys, *args)
        document = strict_json(out)
        assert code == exit_code and document["decision"] == "error" and document["exit_code"] == exit_code
        assert expected in document["error"]


@pytest.mark.parametrize(
    "artifact",
    [
        lambda: forest(0.2, 0.9),
        lambda: isotonic_forest([0.1, 0.8]),
        lambda: logistic([0.01] * len(FEATURE_NAMES), [1.0] * len(FEATURE_NAMES)),
    ],
    ids=["forest", "isotonic", "logistic"],
)
def test_the_same_hand_made_models_in_range_score_normally(
    artifact: Callable[[], dict[str, Any]],
    project: Repo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The control for the tests above: only the tampered number makes those models fail."""
    monkeypatch.setenv("CI_RISK_MODEL", str(write(artifact(), tmp_path / "model.json")))
    project.commit({"src/feature.py": lines(12)})
    code, out, err = check(capsys, "--format", "json")
    assert code == 0 and not err
    assert 0.0 <= strict_json(out)["ranges"][0]["probability"] <= 1.0


@pytest.mark.parametrize("option", ["--warn-at", "--block-at"])
def test_a_nan_threshold_is_a_usage_error(option: str, project: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    project.commit({"src/feature.py": lines(12)})
    code, out, err = check(capsys, option, "nan")  # click's FloatRange(0, 1) lets NaN through; the settings do not
    assert code == 2 and not out
    assert err.strip() == f"ci-risk: error: {option}: expected a probability between 0 and 1, got 'nan'"


def test_scoring_checks_every_probability_it_returns() -> None:
    model = PortableModel.from_dict(nan_logistic())
    row = [1.0] * len(FEATURE_NAMES)
    with pytest.raises(ScoreError, match="nan"):
        model.predict_proba([row])
    with pytest.raises(ScoreError):
        model.explain(dict(zip(FEATURE_NAMES, row)))
    with pytest.raises(ModelError, match=r"\[0, 1\]"):
        PortableModel.from_dict(forest(50.0))


# -- 8. a bad setting does not stop a push --------------------------------------------

BAD_SETTINGS = {
    "mode = blok": ".ci-risk.ini mode: mode must be one of warn, block, off, observe, got 'blok'; ignored",
    "warn_at = 1.5": ".ci-risk.ini warn_at: expected a probability between 0 and 1, got '1.5'; ignored",
    "blok_at = 0.5": ".ci-risk.ini: unknown setting(s): blok_at; ignored",
    "no section header": ".ci-risk.ini: File contains no section headers.; ignored",
}


def _settings_text(bad: str) -> str:
    return "mode = block\n" if bad == "no section header" else f"[ci-risk]\n{bad}\n"


@pytest.mark.parametrize("bad", BAD_SETTINGS)
def test_a_bad_committed_setting_warns_and_the_raw_hook_lets_the_push_through(bad: str, pushable: Repo) -> None:
    tip = commit_settings(pushable, _settings_text(bad))

    pushed = git_push(pushable)

    assert pushed.returncode == 0, pushed.stderr
    assert remote_head(pushable) == tip
    assert f"ci-risk: warning: {BAD_SETTINGS[bad]}" in pushed.stderr.splitlines(), pushed.stderr
    assert "ci-risk: risk " in pushed.stderr + pushed.stdout


def test_a_bad_committed_setting_fails_the_push_under_strict(pushable: Repo) -> None:
    tip = commit_settings(pushable, "[ci-risk]\nmode = blok\n")
    pushed = git_push(pushable, CI_RISK_STRICT="1")
    assert pushed.returncode != 0
    expected = "ci-risk: error: .ci-risk.ini mode: mode must be one of warn, block, off, observe, got 'blok'"
    assert expected in pushed.stderr
    assert remote_head(pushable) != tip


@pytest.mark.parametrize("bad", BAD_SETTINGS)
def test_ci_risk_hook_warns_on_a_bad_setting_and_check_refuses_it(
    bad: str, project: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    commit_settings(project, _settings_text(bad))
    code, out, err = hook(capsys, monkeypatch, project)
    assert code == 0 and out.startswith("ci-risk: risk ")
    assert err.splitlines() == [f"ci-risk: warning: {BAD_SETTINGS[bad]}"]
    code, out, err = hook(capsys, monkeypatch, project, "--strict")
    assert code == 3 and not out and err.splitlines() == [f"ci-risk: error: {BAD_SETTINGS[bad][: -len('; ignored')]}"]
    code, out, err = hook(capsys, monkeypatch, project, "--strict", "--format", "json")
    assert code == 3 and strict_json(out)["exit_code"] == 3
    code, _, err = check(capsys)  # by hand, a bad setting is still a usage error
    assert code == 2 and err.startswith("ci-risk: error: .ci-risk.ini")


def test_a_bad_setting_falls_back_to_the_next_layer(
    project: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    commit_settings(project, "[ci-risk]\nmode = block\nblock_at = 0\n")
    monkeypatch.setenv("CI_RISK_MODE", "blok")
    code, _, err = hook(capsys, monkeypatch, project)
    assert code == 1  # the environment's typo is ignored: the repository's block mode decides
    assert err.splitlines() == [
        "ci-risk: warning: CI_RISK_MODE: mode must be one of warn, block, off, observe, got 'blok'; ignored"
    ]


def test_a_settings_file_that_is_a_symlink_out_of_the_tree_is_not_read(
    project: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "elsewhere.ini").write_text("[ci-risk]\nmode = block\nblock_at = 0\n")
    os.symlink(str(tmp_path / "elsewhere.ini"), project.path / ".ci-risk.ini")
    project.commit({"src/feature.py": lines(12)})
    code, out, err = check(capsys)
    assert code == 0 and out.startswith("ci-risk: risk ")  # block mode from outside was not applied
    assert err.splitlines() == ["ci-risk: warning: .ci-risk.ini: not a regular file inside the work tree; not read"]


def test_an_oversize_settings_file_is_not_read(
    project: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sparse_file(project.path / ".ci-risk.ini", size=config.MAX_CONFIG_BYTES + 1)
    project.commit({"src/feature.py": lines(12)})
    code, out, err = hook(capsys, monkeypatch, project)
    assert code == 0 and out.startswith("ci-risk: risk ") and "larger than 65,536 bytes" in err
    assert check(capsys)[0] == 2


def test_model_show_names_the_model_the_hook_would_use_despite_a_bad_setting(
    project: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_settings(project, "[ci-risk]\nmode = blok\n")
    code, out, err = run_cli(["model", "show"], capsys)
    assert code == 0 and "(bundled)" in out
    assert err.splitlines() == [f"ci-risk: warning: {BAD_SETTINGS['mode = blok']}"]
