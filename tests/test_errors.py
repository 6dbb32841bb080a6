"""One error base, one mapping from an exception to an exit code and a line."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import ci_risk_hook
from ci_risk_hook import errors
from ci_risk_hook.config import ConfigError
from ci_risk_hook.features.history_index import HistoryIndexError
from ci_risk_hook.git.ranges import NothingPending, RangeError
from ci_risk_hook.outcomes.importers import ImportFormatError
from ci_risk_hook.outcomes.store import StoreError


def _modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(ci_risk_hook.__path__, "ci_risk_hook."):
        if info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return names


@pytest.mark.parametrize("module", _modules())
def test_every_public_exception_is_a_ci_risk_error_with_an_exit_code(module: str) -> None:
    mod = importlib.import_module(module)
    for name, cls in vars(mod).items():
        if (
            inspect.isclass(cls)
            and issubclass(cls, BaseException)
            and cls.__module__ == module
            and not name.startswith("_")
        ):
            assert issubclass(cls, errors.CiRiskError), f"{module}.{name}"
            assert cls.exit_code in (errors.EXIT_OK, errors.EXIT_BLOCKED, errors.EXIT_USAGE, errors.EXIT_INTERNAL)


@pytest.mark.parametrize(
    "exc, code",
    [
        (ConfigError("mode must be one of warn, block, off"), errors.EXIT_USAGE),
        (ImportFormatError("f.csv", 2, "status", "unknown"), errors.EXIT_USAGE),
        (RangeError("unknown revision"), errors.EXIT_USAGE),
        (NothingPending("nothing to check"), errors.EXIT_OK),
        (StoreError("cannot open the store"), errors.EXIT_BLOCKED),
        (HistoryIndexError("history index unavailable"), errors.EXIT_BLOCKED),
        (KeyboardInterrupt(), errors.EXIT_INTERRUPTED),
    ],
)
def test_known_errors_keep_their_code_and_message_without_a_log(
    exc: BaseException, code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI_RISK_HOME", str(tmp_path))
    handled = errors.handle(exc)
    assert handled.exit_code == code and handled.log is None
    assert handled.message == (str(exc) or "interrupted")
    assert not (tmp_path / "error.log").exists()


def test_a_bug_is_exit_3_in_one_line_with_the_traceback_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_RISK_HOME", str(tmp_path))
    try:
        {}["missing\nkey"]
    except KeyError as exc:
        handled = errors.handle(exc)
    assert handled.exit_code == errors.EXIT_INTERNAL
    assert handled.message.startswith("internal error (KeyError: ") and "\n" not in handled.line
    assert handled.log == str(tmp_path / "error.log")
    assert handled.line.endswith(f"; details in {tmp_path / 'error.log'}")
    assert "Traceback" in (tmp_path / "error.log").read_text()


def test_the_cli_turns_an_unexpected_error_into_exit_3(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ci_risk_hook.cli import main as cli
    from ci_risk_hook.views import demo

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(demo, "build", broken)
    assert cli.main(["demo", str(tmp_path / "demo")]) == errors.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.startswith("ci-risk: error: internal error (ZeroDivisionError: simulated bug); details in ")
    assert err.count("\n") == 1
