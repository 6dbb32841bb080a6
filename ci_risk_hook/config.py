"""Settings, by precedence: command-line option > CI_RISK_* environment > repository file > model > default.

The repository file is `.ci-risk.ini` at the top of the work tree, section
`[ci-risk]` (INI because Python 3.9 has no TOML reader in the standard
library and a hook should not need one more dependency).
"""
from __future__ import annotations

import configparser
import os
from typing import Any, Callable, Mapping, NamedTuple

CONFIG_FILE = ".ci-risk.ini"
SECTION = "ci-risk"
MODES = ("warn", "block", "off")
FORMATS = ("text", "json")

DEFAULT_WARN_AT = 0.5
DEFAULT_BLOCK_AT = 0.8


class ConfigError(Exception):
    """A setting has a value that cannot be used (a usage error: exit 2)."""


class Setting(NamedTuple):
    key: str
    env: str
    parse: Callable[[str], Any]
    doc: str


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"expected a probability between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"expected a probability between 0 and 1, got {text!r}")
    return value


# Named cuts a model may carry besides its default "warn": teams that want nine failures in ten caught, at the
# price of more warnings, say `--warn-at recall90`. A model without it (trained before it existed) used its
# 90 %-recall cut as "warn".
NAMED_WARN_AT = ("recall90",)


def parse_warn_at(text: str) -> float | str:
    if text.strip().lower() in NAMED_WARN_AT:
        return text.strip().lower()
    try:
        return _probability(text)
    except ConfigError:
        raise ConfigError(f"expected a probability between 0 and 1 or {' or '.join(NAMED_WARN_AT)}, got {text!r}") from None


def _mode(text: str) -> str:
    value = text.strip().lower()
    if value not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {text!r}")
    return value


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"expected true or false, got {text!r}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise ConfigError(f"expected a positive number, got {text!r}")
    return value


SETTINGS: tuple[Setting, ...] = (
    Setting("mode", "CI_RISK_MODE", _mode, "warn (default): report; block: stop risky pushes; off: do nothing"),
    Setting("warn_at", "CI_RISK_WARN_AT", parse_warn_at,
            "probability from which to warn, or recall90 for the model's 90 %-recall cut (default: model's, else 0.5)"),
    Setting("block_at", "CI_RISK_BLOCK_AT", _probability, "probability from which to block in block mode (default: model's, else 0.8)"),
    Setting("strict", "CI_RISK_STRICT", _bool, "fail closed (exit 3) on ci-risk's own errors"),
    Setting("model", "CI_RISK_MODEL", str, "path to a model artifact (.json) to use instead of the repository's or the bundled one"),
    Setting("max_commits", "CI_RISK_MAX_COMMITS", _positive_int, "most commits of one push to read (default 1000)"),
    Setting("db", "CI_RISK_DB", str, "history store: a file path or postgresql:// URL (default: the user data dir)"),
)
_BY_KEY = {s.key: s for s in SETTINGS}


class Settings:
    def __init__(self) -> None:
        self.mode = "warn"
        self.warn_at: float | str | None = None  # a probability or one of NAMED_WARN_AT
        self.block_at: float | None = None
        self.strict = False
        self.model: str | None = None
        self.max_commits = 1000
        self.db: str | None = None
        self.sources: dict[str, str] = {}  # setting -> where its value came from

    def thresholds(self, model_thresholds: Mapping[str, float] | None = None) -> tuple[float, float]:
        model_thresholds = model_thresholds or {}
        warn = self.warn_at if self.warn_at is not None else model_thresholds.get("warn", DEFAULT_WARN_AT)
        if isinstance(warn, str):
            warn = model_thresholds.get(warn, model_thresholds.get("warn", DEFAULT_WARN_AT))
        block = self.block_at if self.block_at is not None else model_thresholds.get("block", DEFAULT_BLOCK_AT)
        if block < warn:
            warn = block
        return float(warn), float(block)


def read_repo_file(toplevel: str | None) -> dict[str, str]:
    if not toplevel:
        return {}
    path = os.path.join(toplevel, CONFIG_FILE)
    if not os.path.isfile(path):
        return {}
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {str(exc).splitlines()[0]}") from None
    if not parser.has_section(SECTION):
        return {}
    values = dict(parser.items(SECTION))
    unknown = sorted(set(values) - set(_BY_KEY))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s): {', '.join(unknown)}")
    return values


def resolve(
    options: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    toplevel: str | None = None,
) -> Settings:
    """Merge the layers; `options` holds command-line values, None where not given."""
    env = os.environ if env is None else env
    file_values = read_repo_file(toplevel)
    settings = Settings()
    for setting in SETTINGS:
        value: Any = None
        source = "default"
        if options.get(setting.key) is not None:
            value, source = options[setting.key], "option"
        elif env.get(setting.env):
            try:
                value, source = setting.parse(env[setting.env]), f"${setting.env}"
            except ConfigError as exc:
                raise ConfigError(f"{setting.env}: {exc}") from None
        elif setting.key in file_values:
            try:
                value, source = setting.parse(file_values[setting.key]), CONFIG_FILE
            except ConfigError as exc:
                raise ConfigError(f"{CONFIG_FILE} {setting.key}: {exc}") from None
        if value is not None:
            if setting.key in ("model", "db") and source == CONFIG_FILE and "://" not in value and toplevel and not os.path.isabs(value):
                value = os.path.join(toplevel, value)
            setattr(settings, setting.key, value)
            settings.sources[setting.key] = source
    return settings


def user_data_dir() -> str:
    """Where ci-risk keeps its own files; CI_RISK_HOME overrides (tests point it at a tmp dir)."""
    override = os.environ.get("CI_RISK_HOME")
    if override:
        return override
    import platformdirs  # imported here: only commands that store data need it

    return str(platformdirs.user_data_dir("ci-risk", appauthor=False))
