"""Settings, by precedence: option > CI_RISK_* environment > user config > repository file > model > default.

Trust: the repository file (`.ci-risk.ini` at the top of the work tree) is
written by whoever controls the repository, and arrives with a clone, so it
may only choose what stays on this machine and inside the work tree (mode,
thresholds, strictness, a model file inside the tree). Settings that reach a
server or a path elsewhere (`db`) come only from the user: an option, the
environment, or the user's own config file (`config.ini` in the user config
directory, `CI_RISK_CONFIG` overrides), which sits outside every repository.
The user's layers sit above the repository's, so a user can always overrule
what a repository asks for.

Both files are INI, section `[ci-risk]` (Python 3.9 has no TOML reader in
the standard library and a hook should not need one more dependency).
"""

from __future__ import annotations

import configparser
import os
import stat
from typing import Any, Callable, Mapping, NamedTuple

from ci_risk_hook import paths
from ci_risk_hook.errors import EXIT_USAGE, CiRiskError

CONFIG_FILE = ".ci-risk.ini"
USER_CONFIG_SOURCE = "user config"
SECTION = "ci-risk"
MODES = ("warn", "block", "off", "observe")
MAX_CONFIG_BYTES = 64 * 1024  # a settings file is a few lines; a bigger one is not read

DEFAULT_WARN_AT = 0.5
DEFAULT_BLOCK_AT = 0.8
DEFAULT_INDEX_BUDGET = 1.0  # seconds a push may spend building the history index
DEFAULT_STORE_BUDGET = 1.0  # seconds a push waits for the outcomes store
DEFAULT_MODEL_REFRESH = 6 * 3600.0  # seconds between two checks of the team model source
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DEFAULT_DEEPEN_BUDGET = 60.0  # seconds a CI step may spend deepening a shallow clone


class ConfigError(CiRiskError):
    """A setting has a value that cannot be used (a usage error: exit 2)."""

    exit_code = EXIT_USAGE


class Refused(ConfigError):
    """The trust model refuses where a value comes from (always a warning, never an error)."""


class Setting(NamedTuple):
    key: str
    env: str
    parse: Callable[[str], Any]
    doc: str
    from_repository: bool  # may a committed .ci-risk.ini set it? Never for what reaches the network.


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
RECALL_CUT = "recall90"  # moved by the outcomes as they arrive, where the store has scored failures (model.recall_cut)
NAMED_WARN_AT = (RECALL_CUT,)


def parse_warn_at(text: str) -> float | str:
    if text.strip().lower() in NAMED_WARN_AT:
        return text.strip().lower()
    try:
        float(text)
    except ValueError:
        raise ConfigError(
            f"expected a probability between 0 and 1 or {' or '.join(NAMED_WARN_AT)}, got {text!r}"
        ) from None
    return _probability(text)  # a number: the same message as every other probability


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


def _path(text: str) -> str:
    if not text.strip():
        raise ConfigError("expected a path, got nothing")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"expected a number of seconds, got {text!r}") from None
    if not 0.0 <= value < float("inf"):
        raise ConfigError(f"expected a number of seconds (0 or more), got {text!r}")
    return value


def _interval(text: str) -> float:
    """A duration: seconds, or a number with s, m, h or d (`30m`, `6h`, `1d`)."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:], None)
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise ConfigError(f"expected an interval such as 30m, 6h or 1d, got {text!r}") from None
    if not 0.0 < seconds < float("inf"):
        raise ConfigError(f"expected a positive interval such as 30m, 6h or 1d, got {text!r}")
    return seconds


def _source(text: str) -> str:
    if not text.strip():
        raise ConfigError("expected a URL or directory, got nothing")
    return text.strip()


def _trusted_keys(text: str) -> tuple[str, ...]:
    from ci_risk_hook.distribution.keys import KeyError_, parse_public_keys

    try:
        return parse_public_keys(text)
    except KeyError_ as exc:
        raise ConfigError(str(exc)) from None


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "mode",
        "CI_RISK_MODE",
        _mode,
        "warn (default): report; block: stop risky pushes; off: do nothing; observe: score and record silently",
        True,
    ),
    Setting(
        "warn_at",
        "CI_RISK_WARN_AT",
        parse_warn_at,
        "probability from which to warn, or recall90 for the model's 90 %-recall cut (default: model's, else 0.5)",
        True,
    ),
    Setting(
        "block_at",
        "CI_RISK_BLOCK_AT",
        _probability,
        "probability from which to block in block mode (default: model's, else 0.8)",
        True,
    ),
    Setting("strict", "CI_RISK_STRICT", _bool, "fail closed (exit 3) on ci-risk's own errors", True),
    Setting(
        "model",
        "CI_RISK_MODEL",
        _path,
        "path to a model artifact (.json) to use instead of the repository's or the bundled one",
        True,
    ),
    Setting(
        "max_commits", "CI_RISK_MAX_COMMITS", _positive_int, "most commits of one push to read (default 1000)", True
    ),
    Setting(
        "db", paths.DB_ENV, _path, "history store: a file path or postgresql:// URL (default: the user data dir)", False
    ),
    Setting(
        "hash_authors",
        "CI_RISK_HASH_AUTHORS",
        _bool,
        "write keyed hashes of authors (key from CI_RISK_HASH_AUTHORS_KEY) instead of e-mails into the store",
        False,
    ),
    Setting(
        "index_budget",
        "CI_RISK_INDEX_BUDGET",
        _seconds,
        "seconds a push may spend building the history index before finishing it in the background (default 1)",
        True,
    ),
    Setting(
        "deepen_budget",
        "CI_RISK_DEEPEN_BUDGET",
        _seconds,
        "seconds `check --ci` and `record --ci` may spend fetching history a shallow clone lacks (default 60)",
        False,  # it reaches the network: never from a committed file
    ),
    Setting(
        "store_budget",
        "CI_RISK_STORE_BUDGET",
        _seconds,
        "seconds a push waits for the outcomes store before going on without build history (default 1)",
        True,
    ),
    Setting(
        "record_predictions",
        "CI_RISK_RECORD_PREDICTIONS",
        _bool,
        "record each prediction in the history store, when one is configured, for `ci-risk monitor` (default true)",
        True,
    ),
    Setting(
        "model_source",
        "CI_RISK_MODEL_SOURCE",
        _source,
        "where the team's published model is pulled from: a directory or fsspec URL (s3://, file://, ...)",
        False,
    ),
    Setting(
        "trusted_keys",
        "CI_RISK_TRUSTED_KEYS",
        _trusted_keys,
        "public keys (from `ci-risk model keygen`) a pulled model must be signed by; comma separated",
        True,
    ),
    Setting(
        "model_refresh",
        "CI_RISK_MODEL_REFRESH",
        _interval,
        "how often the hook checks the model source, in the background (default 6h)",
        True,
    ),
)
_BY_KEY = {s.key: s for s in SETTINGS}
PATH_SETTINGS = ("model", "db", "model_source")  # a relative value is relative to the file that gives it


class Settings:
    def __init__(self) -> None:
        self.mode = "warn"
        self.warn_at: float | str | None = None  # a probability or one of NAMED_WARN_AT
        self.block_at: float | None = None
        self.strict = False
        self.model: str | None = None
        self.max_commits = 1000
        self.db: str | None = None
        self.index_budget = DEFAULT_INDEX_BUDGET
        self.store_budget = DEFAULT_STORE_BUDGET
        self.record_predictions = True
        self.model_source: str | None = None
        self.trusted_keys: tuple[str, ...] = ()
        self.model_refresh = DEFAULT_MODEL_REFRESH
        self.deepen_budget = DEFAULT_DEEPEN_BUDGET
        self.sources: dict[str, str] = {}  # setting -> where its value came from
        self.refused: list[str] = []  # settings the trust model does not take from where they came (warnings)
        self.errors: list[str] = []  # unusable values ignored by a tolerant resolve (the hook's --strict fails on them)

    @property
    def warnings(self) -> list[str]:
        """One line each, for the caller to print."""
        return self.refused + [f"{error}; ignored" for error in self.errors]

    def thresholds(self, model_thresholds: Mapping[str, float] | None = None) -> tuple[float, float]:
        model_thresholds = model_thresholds or {}
        warn = self.warn_at if self.warn_at is not None else model_thresholds.get("warn", DEFAULT_WARN_AT)
        if isinstance(warn, str):
            warn = model_thresholds.get(warn, model_thresholds.get("warn", DEFAULT_WARN_AT))
        block = self.block_at if self.block_at is not None else model_thresholds.get("block", DEFAULT_BLOCK_AT)
        if block < warn:
            warn = block
        return float(warn), float(block)


# -- the files ---------------------------------------------------------------


def _read_ini(path: str, shown: str) -> dict[str, str]:
    """The [ci-risk] section of a settings file; {} when there is none. Raises ConfigError naming `shown`."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{shown}: larger than {MAX_CONFIG_BYTES:,} bytes, not a settings file")
    parser = configparser.ConfigParser(interpolation=None)  # a '%' in a path is just a '%'
    try:
        parser.read_string(raw.decode("utf-8"), source=shown)
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{shown}: {str(exc).splitlines()[0]}") from None
    if not parser.has_section(SECTION):
        return {}
    return dict(parser.items(SECTION))


def _is_regular_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # another drive (Windows)
        return False


def _repo_file(toplevel: str | None) -> str | None:
    """The repository file, if it is a regular file inside the work tree (a committed symlink may point anywhere)."""
    if not toplevel:
        return None
    path = os.path.join(toplevel, CONFIG_FILE)
    if not os.path.lexists(path):
        return None
    real = os.path.realpath(path)
    if not _inside(real, os.path.realpath(toplevel)) or not _is_regular_file(real):
        raise Refused(f"{CONFIG_FILE}: not a regular file inside the work tree; not read")
    return real


def read_repo_file(toplevel: str | None) -> dict[str, str]:
    path = _repo_file(toplevel)
    return {} if path is None else _read_ini(path, CONFIG_FILE)


def read_user_file(env: Mapping[str, str] | None = None) -> dict[str, str]:
    path = paths.user_config_file(env)
    if not _is_regular_file(path):
        return {}
    return _read_ini(path, path)


def setting_env(key: str) -> str:
    """The environment variable of a setting."""
    return _BY_KEY[key].env


def env_setting(key: str, env: Mapping[str, str] | None = None) -> Any:
    """One setting from its environment variable alone, parsed (None when unset)."""
    setting = _BY_KEY[key]
    text = (os.environ if env is None else env).get(setting_env(key))
    if not text:
        return None
    try:
        return setting.parse(text)
    except ConfigError as exc:
        raise ConfigError(f"{setting.env}: {exc}") from None


def user_setting(key: str, env: Mapping[str, str] | None = None) -> Any:
    """One setting from the user's config file alone (for commands that take no other layers), parsed."""
    setting = _BY_KEY[key]
    values = read_user_file(env)
    if key not in values:
        return None
    path = paths.user_config_file(env)
    try:
        value = setting.parse(values[key])
    except ConfigError as exc:
        raise ConfigError(f"{path} {key}: {exc}") from None
    return _user_path(value, path) if key in PATH_SETTINGS else value


def _user_path(value: str, config_path: str) -> str:
    """A path in the user's file is relative to that file."""
    if "://" in value:
        return value
    return os.path.join(os.path.dirname(os.path.abspath(config_path)), os.path.expanduser(value))


def repository_model(value: str, toplevel: str) -> str:
    """The real path of the repository file's model: only a regular file inside the work tree.

    A missing file passes (loading it says so); a symlink out of the tree, a
    device or a URL does not, so a committed file cannot make the hook read
    /dev/zero, someone's home directory or the network.
    """
    root = os.path.realpath(toplevel)
    real = os.path.realpath(os.path.join(toplevel, value))
    if "://" in value or not _inside(real, root):
        raise Refused(f"{value!r} is not inside the work tree")
    if os.path.lexists(real) and not _is_regular_file(real):
        raise Refused(f"{value!r} is not a regular file")
    return real


# -- merging the layers ------------------------------------------------------


class _Layer(NamedTuple):
    source: str  # recorded in Settings.sources
    shown: Callable[[Setting], str]  # how a message names the place of one setting
    values: Mapping[str, str]
    locate: Callable[[str], str]  # the path a path setting's value means (raises Refused to refuse it)


class _Problems:
    """Unusable settings raise (check by hand: exit 2) or become warnings (the hook: the push goes on)."""

    def __init__(self, settings: Settings, tolerant: bool) -> None:
        self.settings = settings
        self.tolerant = tolerant

    def bad(self, message: str) -> None:
        if not self.tolerant:
            raise ConfigError(message)
        self.settings.errors.append(message)

    def refused(self, message: str) -> None:
        """Not an error anywhere: the trust model says no, and the user is told in one line."""
        self.settings.refused.append(message)


def _file_values(shown: str, read: Callable[[], dict[str, str]], problems: _Problems) -> dict[str, str]:
    try:
        values = read()
    except Refused as exc:
        problems.refused(str(exc))
        return {}
    except ConfigError as exc:
        problems.bad(str(exc))
        return {}
    unknown = sorted(set(values) - set(_BY_KEY))
    if unknown:
        problems.bad(f"{shown}: unknown setting(s): {', '.join(unknown)}")
    return {k: v for k, v in values.items() if k in _BY_KEY}


def _user_layer(env: Mapping[str, str], problems: _Problems) -> _Layer:
    path = paths.user_config_file(env)
    values = _file_values(path, lambda: read_user_file(env), problems)
    return _Layer(USER_CONFIG_SOURCE, lambda s: f"{path} {s.key}", values, lambda v: _user_path(v, path))


def _repository_layer(toplevel: str | None, env: Mapping[str, str], problems: _Problems) -> _Layer:
    values = _file_values(CONFIG_FILE, lambda: read_repo_file(toplevel), problems)
    for setting in SETTINGS:
        if setting.key in values and not setting.from_repository:
            del values[setting.key]
            problems.refused(
                f"{CONFIG_FILE} {setting.key}: a repository's file may not set this (it reaches a server or files "
                f"outside the work tree); ignored (set it with --{setting.key.replace('_', '-')}, {setting.env} or in "
                f"{paths.user_config_file(env)})"
            )
    return _Layer(
        CONFIG_FILE, lambda s: f"{CONFIG_FILE} {s.key}", values, lambda v: repository_model(v, toplevel or "")
    )


def resolve(
    options: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    toplevel: str | None = None,
    *,
    tolerant: bool = False,
) -> Settings:
    """Merge the layers; `options` holds command-line values, None where not given.

    `tolerant` (the hook): an unusable value from the environment or a file is
    kept in `Settings.errors` and the next layer (or the default) decides;
    otherwise it raises ConfigError. Settings the trust model refuses
    are warnings either way.
    """
    env = os.environ if env is None else env
    settings = Settings()
    problems = _Problems(settings, tolerant)
    layers = (
        _Layer("env", lambda s: s.env, {s.key: env[s.env] for s in SETTINGS if env.get(s.env)}, lambda v: v),
        _user_layer(env, problems),
        _repository_layer(toplevel, env, problems),
    )
    for setting in SETTINGS:
        if options.get(setting.key) is not None:
            try:  # the same check as every other layer (click's FloatRange lets NaN through)
                setting.parse(str(options[setting.key]))
            except ConfigError as exc:
                raise ConfigError(f"--{setting.key.replace('_', '-')}: {exc}") from None
            setattr(settings, setting.key, options[setting.key])
            settings.sources[setting.key] = "option"
            continue
        for layer in layers:
            if setting.key not in layer.values:
                continue
            where = layer.shown(setting)
            try:
                value = setting.parse(layer.values[setting.key])
            except ConfigError as exc:
                problems.bad(f"{where}: {exc}")
                continue
            if setting.key in PATH_SETTINGS:
                try:
                    value = layer.locate(value)
                except Refused as exc:
                    problems.refused(
                        f"{where}: {exc}; ignored (a repository's file may name only a regular "
                        "file inside its work tree)"
                    )
                    continue
            setattr(settings, setting.key, value)
            settings.sources[setting.key] = f"${setting.env}" if layer.source == "env" else layer.source
            break
    return settings
