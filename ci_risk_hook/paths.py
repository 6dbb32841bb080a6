"""Every place ci-risk keeps a file, named once.

Per repository, under the git dir (shared by worktrees): `.git/ci-risk/`
holds the trained model, the scored-push log, the store pointer and the
root-commit cache. The history index (with its build lock and log) lives
there too unless `CI_RISK_INDEX_DIR` moves it; that variable moves the index
only. Per user: the data directory (`CI_RISK_HOME` overrides) holds the
default store and the error log; the config file is `CI_RISK_CONFIG`, else
`config.ini` in the user config directory; the cache directory
(`CI_RISK_CACHE` overrides) holds team models pulled from a model source.

Imported on every push: standard library only, platformdirs loaded lazily.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping

APP = "ci-risk"
INDEX_DIR_ENV = "CI_RISK_INDEX_DIR"
HOME_ENV = "CI_RISK_HOME"
USER_CONFIG_ENV = "CI_RISK_CONFIG"
CACHE_ENV = "CI_RISK_CACHE"
DB_ENV = "CI_RISK_DB"  # the history store: a file path or a postgresql:// URL
REPO_ENV = "CI_RISK_REPO"  # which repository this is, when its remote does not say (CI sets it for a job)

MODEL_FILE = "model.json"
INDEX_FILE = "history-index.sqlite"
INDEX_BUILD_LOG = "index-build.log"
SCORED_LOG = "scored.jsonl"
STORE_POINTER = "store"
PREDICTION_SPOOL = "predictions-pending.jsonl"  # the hook's predictions on their way to the store
DROPPED_PREDICTIONS = "predictions-dropped"  # <this>.<count>.<unique>: predictions a push could not spool
ROOT_COMMIT_CACHE = "root-commit"
CI_JOB_START = "ci-job-start"
STORE_FILE = "history.sqlite"
ERROR_LOG = "error.log"
USER_CONFIG_FILE = "config.ini"
TEAM_MODELS_DIR = "team-models"
MANIFEST_FILE = "manifest.json"
TEAM_STATE_FILE = "state.json"
TEAM_LOCK_FILE = "refresh.lock"
TEAM_LOG_FILE = "refresh.log"


# -- per repository (common_dir: git's common dir, `.git` of the main worktree) --


def repo_dir(common_dir: str) -> str:
    """`.git/ci-risk/`: ci-risk's files for one repository."""
    return os.path.join(common_dir, APP)


def index_dir(common_dir: str) -> str:
    """Where the history index lives: `CI_RISK_INDEX_DIR`, else the repository's ci-risk dir."""
    override = os.environ.get(INDEX_DIR_ENV)
    return override if override else repo_dir(common_dir)


def index_file(common_dir: str) -> str:
    return os.path.join(index_dir(common_dir), INDEX_FILE)


def index_lock(index_path: str) -> str:
    """The build lock sits next to the index it guards."""
    return os.path.splitext(index_path)[0] + ".lock"


def index_build_log(lock_file: str) -> str:
    """The background builder's log sits next to its lock."""
    return os.path.join(os.path.dirname(lock_file), INDEX_BUILD_LOG)


def repo_model(common_dir: str) -> str:
    """The model `ci-risk train` writes for this repository."""
    return os.path.join(repo_dir(common_dir), MODEL_FILE)


def previous_model(model_path: str) -> str:
    """Where a replaced model is kept: model.json -> model.prev.json."""
    return model_path[: -len(".json")] + ".prev.json" if model_path.endswith(".json") else model_path + ".prev"


def scored_log(common_dir: str) -> str:
    return os.path.join(repo_dir(common_dir), SCORED_LOG)


def prediction_spool(common_dir: str) -> str:
    """The hook's predictions not yet in the store: appended by a push, moved into the store by the next."""
    return os.path.join(repo_dir(common_dir), PREDICTION_SPOOL)


def dropped_predictions(common_dir: str) -> str:
    """The prefix of the drop counts: one empty file a push, `<prefix>.<count>.<unique>`; the next move takes them."""
    return os.path.join(repo_dir(common_dir), DROPPED_PREDICTIONS)


def store_pointer(common_dir: str) -> str:
    """Which store this repository records into, for the hook."""
    return os.path.join(repo_dir(common_dir), STORE_POINTER)


def root_commit_cache(common_dir: str) -> str:
    return os.path.join(repo_dir(common_dir), ROOT_COMMIT_CACHE)


def ci_job_start(common_dir: str) -> str:
    """When `check --ci` first ran in this CI job: `record --ci` takes it as the job's start."""
    return os.path.join(repo_dir(common_dir), CI_JOB_START)


def repo_store_file(common_dir: str) -> str:
    """A store kept inside one repository's git dir (the demo's)."""
    return os.path.join(repo_dir(common_dir), STORE_FILE)


# -- per user ------------------------------------------------------------------


def user_data_dir() -> str:
    """Where ci-risk keeps its own files; CI_RISK_HOME overrides (tests point it at a tmp dir)."""
    override = os.environ.get(HOME_ENV)
    if override:
        return os.path.abspath(os.path.expanduser(override))  # messages then name the real place
    import platformdirs  # imported here: only commands that store data need it

    return str(platformdirs.user_data_dir(APP, appauthor=False))


def default_store_file() -> str:
    return os.path.join(user_data_dir(), STORE_FILE)


def error_log() -> str:
    return os.path.join(user_data_dir(), ERROR_LOG)


def user_cache_dir() -> str:
    """Files ci-risk can download again (pulled team models); CI_RISK_CACHE overrides (tests set it)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return os.path.abspath(os.path.expanduser(override))
    return _platform_dir("cache", os.environ)


def team_model_dir(source_key: str) -> str:
    """One pulled source's cache: its model, manifest, refresh state, lock and log (`source_key` is a digest)."""
    return os.path.join(user_cache_dir(), TEAM_MODELS_DIR, source_key)


def team_model(source_key: str) -> str:
    return os.path.join(team_model_dir(source_key), MODEL_FILE)


def team_manifest(source_key: str) -> str:
    return os.path.join(team_model_dir(source_key), MANIFEST_FILE)


def team_state(source_key: str) -> str:
    return os.path.join(team_model_dir(source_key), TEAM_STATE_FILE)


def team_lock(source_key: str) -> str:
    return os.path.join(team_model_dir(source_key), TEAM_LOCK_FILE)


def team_log(source_key: str) -> str:
    return os.path.join(team_model_dir(source_key), TEAM_LOG_FILE)


def user_config_file(env: Mapping[str, str] | None = None) -> str:
    """The user's own config file: `CI_RISK_CONFIG`, else `config.ini` in the user config directory."""
    env = os.environ if env is None else env
    override = env.get(USER_CONFIG_ENV)
    if override:
        return os.path.expanduser(override)
    return os.path.join(_platform_dir("config", env), USER_CONFIG_FILE)


def _platform_dir(kind: str, env: Mapping[str, str]) -> str:
    """platformdirs' user `kind` ("cache", "config") directory; on Linux computed here, as it does (importing it costs
    ~12 ms a push)."""
    if sys.platform.startswith("linux"):
        xdg = env.get(f"XDG_{kind.upper()}_HOME", "")
        base = xdg if os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), "." + kind)
        return os.path.join(base, APP)
    import platformdirs

    found = platformdirs.user_cache_dir if kind == "cache" else platformdirs.user_config_dir
    return str(found(APP, appauthor=False))
