"""The command line: output, exit codes, settings, and failing open."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ci_risk_hook.cli import main as cli
from ci_risk_hook.features.extract import FEATURE_NAMES
from ci_risk_hook.gate import evaluate as gate
from ci_risk_hook.gate import output
from testing.modelkit import NEWCOMERS, grow_history, train_model
from testing.repos import REPO_ROOT, Repo, lines
from testing.repos import run_cli as run
from testing.wording import raw_metric_ids


@pytest.fixture
def in_repo(history_repo: Repo, monkeypatch: pytest.MonkeyPatch) -> Repo:
    monkeypatch.chdir(history_repo.path)
    return history_repo


@pytest.fixture
def trained(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> Repo:
    labels = grow_history(repo, commits=60)
    train_model(repo, labels, repo.path / ".git" / "ci-risk" / "model.json")
    monkeypatch.chdir(repo.path)
    return repo


def test_no_model_says_so_in_one_line_and_passes(
    in_repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate, "bundled_model_path", lambda: None)  # an installation without the bundled model
    in_repo.commit({"src/x.py": "x\n"})
    code, out, _ = run(["check", "--from", "HEAD~1"], capsys)
    assert code == 0
    assert out.count("no model available yet") == 1


def test_nothing_pending(in_repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["check", "--from", "HEAD"], capsys)
    assert code == 0 and "nothing to push" in out


def test_bad_revision_is_a_usage_error(in_repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["check", "--from", "no-such-rev"], capsys)
    assert code == 2 and "not a commit: no-such-rev" in err


def test_bad_option_value_is_a_usage_error(in_repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(["check", "--block-at", "1.5"], capsys)
    assert code == 2


def test_outside_a_repository_fails_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["check"], capsys)
    assert code == 0 and "not inside a git repository" in err
    code, _, err = run(["check", "--strict"], capsys)
    assert code == 3 and err.startswith("ci-risk: error:")


def test_scores_and_explains_with_concrete_facts(trained: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    trained.commit(
        {".github/workflows/ci.yml": lines(300, "step"), "setup.cfg": lines(90, "opt")},
        "rework CI",
        author=NEWCOMERS[-1],
    )
    code, out, _ = run(["check", "--from", "HEAD~1", "--format", "json"], capsys)
    assert code == 0
    report = json.loads(out)
    entry = report["ranges"][0]
    assert 0.0 <= entry["probability"] <= 1.0
    assert list(entry["features"]) == list(FEATURE_NAMES)
    assert len(entry["reasons"]) == 3
    texts = [r["text"] for r in entry["reasons"]]
    assert any(
        ".github/workflows/ci.yml" in t or "setup.cfg" in t or "lines changed" in t or "commit in this repository" in t
        for t in texts
    ), texts
    assert report["model"]["source"] == "repository"

    code, out, _ = run(["check", "--from", "HEAD~1"], capsys)
    assert out.startswith("ci-risk: risk ")
    assert "  1. " in out and "  3. " in out


def test_block_mode_exit_codes_follow_the_thresholds(trained: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    trained.commit({".github/workflows/ci.yml": lines(300, "step")}, "rework CI", author=NEWCOMERS[-1])
    _, out, _ = run(["check", "--from", "HEAD~1", "--format", "json"], capsys)
    p = json.loads(out)["ranges"][0]["probability"]
    assert run(["check", "--from", "HEAD~1", "--mode", "block", "--block-at", str(max(p - 0.01, 0))], capsys)[0] == 1
    assert run(["check", "--from", "HEAD~1", "--mode", "block", "--block-at", str(min(p + 0.01, 1))], capsys)[0] == 0
    # warn mode never blocks, even above block-at
    assert run(["check", "--from", "HEAD~1", "--mode", "warn", "--block-at", "0"], capsys)[0] == 0
    assert run(["check", "--from", "HEAD~1", "--mode", "off", "--block-at", "0"], capsys)[0] == 0


def test_settings_precedence(
    trained: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    trained.commit({"src/core.py": lines(41)})
    (trained.path / ".ci-risk.ini").write_text("[ci-risk]\nmode = block\nblock_at = 0\n")
    assert run(["check", "--from", "HEAD~1"], capsys)[0] == 1  # file: block at 0
    monkeypatch.setenv("CI_RISK_MODE", "warn")
    assert run(["check", "--from", "HEAD~1"], capsys)[0] == 0  # env beats file
    assert run(["check", "--from", "HEAD~1", "--mode", "block"], capsys)[0] == 1  # option beats env


def test_bad_repository_setting_is_a_usage_error(in_repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    (in_repo.path / ".ci-risk.ini").write_text("[ci-risk]\nblock_at = lots\n")
    code, _, err = run(["check"], capsys)
    assert code == 2 and ".ci-risk.ini block_at" in err
    (in_repo.path / ".ci-risk.ini").write_text("[ci-risk]\nblok_at = 0.5\n")
    code, _, err = run(["check"], capsys)
    assert code == 2 and "unknown setting(s): blok_at" in err


def test_corrupt_model_fails_open_unless_strict(
    in_repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "model.json"
    broken.write_text('{"format": "ci-risk-model", "truncated')
    monkeypatch.setenv("CI_RISK_MODEL", str(broken))
    in_repo.commit({"src/y.py": "y\n"})
    code, _, err = run(["check", "--from", "HEAD~1"], capsys)
    assert code == 0 and "ci-risk: warning:" in err and "push not checked" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(["check", "--from", "HEAD~1", "--strict"], capsys)
    assert code == 3 and "ci-risk: error:" in err
    assert broken.read_text() == '{"format": "ci-risk-model", "truncated'  # never replaced


def test_a_bug_fails_open_and_is_logged(
    in_repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(gate, "evaluate", broken)
    code, _, err = run(["check"], capsys)
    assert code == 0 and "internal error (ZeroDivisionError: simulated bug)" in err
    log = Path(err.split("details in ")[1].split(";")[0])
    assert "ZeroDivisionError" in log.read_text()
    assert run(["check", "--strict"], capsys)[0] == 3


def test_a_bug_while_rendering_fails_open_too(
    trained: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise KeyError("simulated rendering bug")

    monkeypatch.setattr(output, "render_text", broken)
    trained.commit({"src/core.py": lines(46)})
    code, out, err = run(["check", "--from", "HEAD~1"], capsys)
    assert code == 0 and out == "" and "internal error (KeyError" in err
    assert run(["check", "--from", "HEAD~1", "--strict"], capsys)[0] == 3


def test_an_unborn_branch_has_nothing_to_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from testing.repos import make_repo

    monkeypatch.chdir(make_repo(tmp_path / "empty").path)
    code, _, err = run(["check", "--mode", "block"], capsys)
    assert code == 0 and "nothing to check: this branch has no commits yet" in err


def test_hook_outside_pre_commit_checks_upstream_range(in_repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["hook"], capsys)
    assert code == 0 and "not on any remote" in out  # no remote: every commit is pending


def test_colour_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert output.use_colour(Tty()) is True
    assert output.use_colour(io.StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert output.use_colour(Tty()) is False


def test_install_refuses_a_foreign_hook_and_restores_it(in_repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    hook = in_repo.path / ".git" / "hooks" / "pre-push"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\necho mine\n")
    code, _, err = run(["install"], capsys)
    assert code == 1 and "not written by ci-risk" in err
    assert hook.read_text() == "#!/bin/sh\necho mine\n"
    assert run(["install", "--force"], capsys)[0] == 0
    assert "ci-risk pre-push hook" in hook.read_text()
    assert run(["uninstall"], capsys)[0] == 0
    assert hook.read_text() == "#!/bin/sh\necho mine\n"
    code, _, err = run(["uninstall"], capsys)
    assert code == 1 and "not written by ci-risk" in err


def test_every_command_is_in_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    for name in cli.cli.commands:
        assert f"ci-risk {name}" in readme, name


def test_the_readme_describes_the_bundled_model_that_ships() -> None:
    """A retrained bundled model with the README still quoting the previous one's figures misleads every user."""
    artifact = json.loads((REPO_ROOT / "model" / "model.json").read_text())
    provenance, cuts = artifact["provenance"], artifact["thresholds"]
    median = provenance["evaluation"]["median"]
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    for quoted in (
        f"trained on {provenance['rows']:,} real Travis CI push builds of {len(provenance['repositories'])} public",
        f"Evaluated on {median['projects']} projects",
        f"F1 {median['with_history']['model']['f1']:.3f} against {median['with_history']['parrot']['f1']:.3f}",
        f"ROC-AUC {median['with_history']['model']['roc_auc']:.3f} against",
        f"default warn threshold ({cuts['warn']:.3f})",
        f"`--warn-at recall90` ({cuts['recall90']:.3f}:",
        f"(ROC-AUC {median['cold_start']['model']['roc_auc']:.2f})",
    ):
        assert quoted in readme, f"README.md's bundled-model paragraph should say: {quoted}"


def test_the_hook_path_imports_no_scikit_learn_pandas_or_numpy(trained: Repo) -> None:
    import subprocess
    import sys

    trained.commit({"src/core.py": lines(44)})
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ci_risk_hook", "check", "--from", "HEAD~1"],
        cwd=trained.path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("ci-risk: risk"), proc.stdout + proc.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & {"sklearn", "pandas", "numpy", "scipy", "joblib"}, imported & {"sklearn", "pandas", "numpy"}


def test_the_bundled_model_scores_a_repository_without_its_own(
    in_repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gate.bundled_model_path() is not None, "no bundled model: neither installed nor in this checkout"
    in_repo.commit({".github/workflows/ci.yml": lines(200, "step")}, "rework CI", author="New <new@example.com>")
    code, out, _ = run(["check", "--from", "HEAD~1", "--format", "json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["model"]["source"] == "bundled"
    assert 0.0 <= report["ranges"][0]["probability"] <= 1.0 and len(report["ranges"][0]["reasons"]) == 3


def test_the_fast_parser_knows_exactly_clicks_check_and_hook_options() -> None:
    """`check` and `hook` are parsed without click on a push; the two parsers must not drift apart."""
    from ci_risk_hook.gate import entry as fastpath

    for name, extra in (("check", fastpath.CHECK_OPTIONS), ("hook", fastpath.HOOK_OPTIONS)):
        clicks = {
            opt
            for param in cli.cli.commands[name].params
            for opt in (*param.opts, *param.secondary_opts)
            if opt.startswith("--")
        }
        assert clicks - {"--help"} == set(fastpath.GATE_OPTIONS) | set(extra), name


def test_the_fast_parser_hands_anything_unusual_to_click() -> None:
    from ci_risk_hook.gate.entry import parse

    assert parse(["check", "--from", "HEAD~2", "--mode=block", "--block-at", "0.7", "--strict"]) == (
        "check",
        {
            "mode": "block",
            "warn_at": None,
            "block_at": 0.7,
            "strict": True,
            "model": None,
            "max_commits": None,
            "db": None,
            "model_source": None,
            "output_format": "text",
            "from_rev": "HEAD~2",
            "to_rev": None,
            "branch": None,
            "ci": False,
            "output_file": None,
        },
        [],
    )
    assert parse(["hook", "--raw", "origin", "/tmp/remote.git"])[2] == ["origin", "/tmp/remote.git"]  # type: ignore[index]
    for unusual in (
        ["check", "--help"],
        ["check", "--block-at", "1.5"],
        ["check", "--mode", "loud"],
        ["check", "--from"],
        ["hook", "-x"],
        ["check", "extra"],
        ["train"],
    ):
        assert parse(unusual) is None, unusual


def test_the_console_script_never_imports_click_on_a_push(trained: Repo) -> None:
    import subprocess
    import sys

    trained.commit({"src/core.py": lines(45)})
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ci_risk_hook", "check", "--from", "HEAD~1"],
        cwd=trained.path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("ci-risk: risk"), proc.stderr[-500:]
    assert " click" not in proc.stderr


def test_with_the_bundled_model_a_docs_and_tests_push_passes_quietly(
    in_repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its default warn threshold lets most pushes through; the 90 %-recall cut is there for those who ask."""
    if gate.bundled_model_path() is None:
        pytest.skip("this checkout has no bundled model (model/model.json)")
    in_repo.commit(
        {"docs/usage.md": lines(40, "doc"), "tests/test_app.py": lines(30, "test")},
        "document usage and test it",
        author="Maintainer <maint@example.com>",
    )
    code, out, _ = run(["check", "--from", "HEAD~1", "--format", "json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["model"]["source"] == "bundled"
    assert report["decision"] == "pass", report["ranges"][0]["probability"]
    code, out, _ = run(["check", "--from", "HEAD~1"], capsys)
    assert code == 0 and "low risk" in out and "risky" not in out
    shipped = gate.load_model(gate.bundled_model_path()).thresholds  # type: ignore[arg-type]
    p = report["ranges"][0]["probability"]
    assert shipped["recall90"] < shipped["warn"]
    _, out, _ = run(["check", "--from", "HEAD~1", "--warn-at", "recall90", "--format", "json"], capsys)
    opted = json.loads(out)
    assert opted["warn_at"] == shipped["recall90"]
    assert opted["decision"] == ("warn" if p >= shipped["recall90"] else "pass")


def test_recall90_is_a_setting_everywhere_a_warn_threshold_is(
    trained: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ci_risk_hook.model.export import seal_artifact, write_artifact

    trained.commit({"src/core.py": lines(41)})
    path = trained.path / ".git" / "ci-risk" / "model.json"
    artifact = json.loads(path.read_text())
    write_artifact(seal_artifact({**artifact, "thresholds": {"warn": 0.4, "recall90": 0.123, "block": 0.9}}), path)
    _, out, _ = run(["check", "--from", "HEAD~1", "--format", "json"], capsys)
    assert json.loads(out)["warn_at"] == 0.4
    monkeypatch.setenv("CI_RISK_WARN_AT", "recall90")
    _, out, _ = run(["check", "--from", "HEAD~1", "--format", "json"], capsys)
    assert json.loads(out)["warn_at"] == 0.123
    monkeypatch.delenv("CI_RISK_WARN_AT")
    (trained.path / ".ci-risk.ini").write_text("[ci-risk]\nwarn_at = recall90\n")
    _, out, _ = run(["check", "--from", "HEAD~1", "--format", "json"], capsys)
    assert json.loads(out)["warn_at"] == 0.123
    code, _, err = run(["check", "--from", "HEAD~1", "--warn-at", "recall80"], capsys)
    assert code == 2 and "recall90" in err


def test_a_model_without_a_recall90_cut_uses_its_warn_threshold_for_it() -> None:
    """Models written before the name existed chose "warn" for 90 % recall."""
    from ci_risk_hook.config import Settings

    settings = Settings()
    settings.warn_at = "recall90"
    assert settings.thresholds({"warn": 0.1, "block": 0.8})[0] == 0.1
    assert settings.thresholds({"warn": 0.3, "recall90": 0.1, "block": 0.8})[0] == 0.1


@pytest.mark.parametrize("under_pre_commit", [False, True])
def test_the_push_anyway_advice_fits_the_hook_that_runs(
    trained: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, under_pre_commit: bool
) -> None:
    """SKIP=ci-risk means something only to pre-commit; a raw hook is skipped with --no-verify."""
    trained.commit({".github/workflows/ci.yml": lines(300, "step")}, "rework CI", author=NEWCOMERS[-1])
    if under_pre_commit:
        monkeypatch.setenv("PRE_COMMIT", "1")
    code, out, _ = run(["check", "--from", "HEAD~1", "--mode", "block", "--block-at", "0"], capsys)
    assert code == 1 and "git push --no-verify" in out
    assert ("SKIP=ci-risk" in out) == under_pre_commit


def test_model_show_prints_the_bundled_evaluation_as_text(in_repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    if gate.bundled_model_path() is None:
        pytest.skip("this checkout has no bundled model (model/model.json)")
    code, out, _ = run(["model", "show"], capsys)
    assert code == 0 and "(bundled)" in out
    evaluation = json.loads(Path(str(gate.bundled_model_path())).read_text())["provenance"]["evaluation"]
    assert "{" not in out and f"evaluated on {len(evaluation['projects'])} projects it never saw" in out
    roc_auc = evaluation["median"]["with_history"]["model"]["roc_auc"]
    assert (
        "thresholds: warn at" in out and "90 % recall cut" in out and f"ROC-AUC (ranking quality) {roc_auc:.3f}" in out
    )
    assert not raw_metric_ids(out), out  # metrics under their names for people; the JSON keeps the keys
    code, out, _ = run(["model", "show", "--format", "json"], capsys)
    assert json.loads(out)["provenance"]["evaluation"]["projects"]
