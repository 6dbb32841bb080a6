"""train / backtest / retrain as library calls: tables from the store, artifacts into the git dir.

The CLI wraps these; keeping them here lets tests and scripts call them
without click.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, NamedTuple, Sequence

from ci_risk_hook import paths
from ci_risk_hook.git import repo as git
from ci_risk_hook.model.backtest import BacktestResult, backtest
from ci_risk_hook.model.dataset import DatasetError, Table, ci_table, concat, szz_table
from ci_risk_hook.model.training import CANDIDATES, TrainResult, export, library_versions, train
from ci_risk_hook.outcomes.store import Store

N_JOBS = -1  # candidates are fitted one per core (joblib's -1); the results do not depend on it


def table_for(store: Store, repo_ids: Sequence[int], labels: str) -> Table:
    tables: list[Table] = []
    for repo_id in repo_ids:
        if labels in ("ci", "both"):
            tables.append(ci_table(store, repo_id))
        if labels in ("szz", "both"):
            tables.append(szz_table(store, repo_id))
    tables = [t for t in tables if len(t)]
    if not tables:
        raise DatasetError(
            "no labelled history: record or import CI outcomes (or run `ci-risk backfill` for --labels szz)"
        )
    return tables[0] if len(tables) == 1 else concat(tables)


class Trained(NamedTuple):
    result: TrainResult
    artifact: dict[str, Any]
    path: str
    previous: str | None


def provenance(
    table: Table,
    result: TrainResult,
    labels: str,
    repos: Sequence[str],
    target_recall: float,
    target_precision: float,
    backtest_result: BacktestResult | None = None,
) -> dict[str, Any]:
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))  # noqa: E731
    record: dict[str, Any] = {
        "trained_at": iso(time.time()),
        "labels": labels,
        "repositories": list(repos),
        "rows": result.rows,
        "failures": result.failures,
        "data_from": iso(table.started.min()),
        "data_to": iso(table.started.max()),
        "chosen": result.model.name,
        "validation_average_precision": {k: round(v, 4) for k, v in result.validation.items()},
        "targets": {"recall": target_recall, "precision": target_precision},
        "libraries": library_versions(),
    }
    if backtest_result is not None:
        record["backtest"] = backtest_result.as_dict()
    return record


def install(artifact: dict[str, Any], path: str) -> str | None:
    """Write the artifact, keeping the one it replaces as <name>.prev.json."""
    from ci_risk_hook.model.export import write_artifact

    previous = None
    if os.path.exists(path):
        previous = paths.previous_model(path)
        os.replace(path, previous)
    write_artifact(artifact, path)
    return previous


def default_model_path(cwd: str | None = None) -> str:
    return paths.repo_model(git.repo_info(cwd).common_dir)


def run_train(
    table: Table,
    labels: str,
    repos: Sequence[str],
    path: str,
    *,
    target_recall: float = 0.9,
    target_precision: float = 0.8,
    backtest_result: BacktestResult | None = None,
    log: Callable[[str], None] | None = None,
    candidates: Sequence[str] = CANDIDATES,
    n_jobs: int = N_JOBS,
) -> Trained:
    result = train(
        table,
        target_recall=target_recall,
        target_precision=target_precision,
        log=log,
        candidates=candidates,
        n_jobs=n_jobs,
    )
    artifact = export(
        result, provenance(table, result, labels, repos, target_recall, target_precision, backtest_result)
    )
    previous = install(artifact, path)
    return Trained(result, artifact, path, previous)


def run_backtest(
    table: Table,
    *,
    retrain_every: int = 25,
    target_recall: float = 0.9,
    progress: Callable[[int, int], None] | None = None,
    n_jobs: int = N_JOBS,
    candidates: Sequence[str] = CANDIDATES,
) -> BacktestResult:
    return backtest(
        table,
        retrain_every=retrain_every,
        target_recall=target_recall,
        progress=progress,
        n_jobs=n_jobs,
        candidates=candidates,
    )


def current_backtest(path: str) -> dict[str, Any] | None:
    from ci_risk_hook.model.scoring import ModelError, read_artifact_json

    try:
        return dict(read_artifact_json(path).get("provenance", {}).get("backtest") or {}) or None
    except (ModelError, AttributeError):
        return None


class Retrained(NamedTuple):
    metric: str
    new: float | None  # the new model's backtest score
    old: float | None  # the current model's, when it has one
    trained: Trained | None  # None: the current model was kept


def keeps_current(new: float | None, old: float | None) -> bool:
    """The rule of `retrain`: the current model stays unless the new one backtests at least as well."""
    return old is not None and (new is None or new < old)


def run_retrain(
    table: Table,
    labels: str,
    repos: Sequence[str],
    path: str,
    *,
    metric: str = "f1",
    retrain_every: int = 25,
    target_recall: float = 0.9,
    target_precision: float = 0.8,
    progress: Callable[[int, int], None] | None = None,
) -> Retrained:
    """Backtest a new model and install it only if it is not worse at `metric` than the current one."""
    result = run_backtest(table, retrain_every=retrain_every, target_recall=target_recall, progress=progress)
    new = result.as_dict()["model"].get(metric)
    old = (current_backtest(path) or {}).get("model", {}).get(metric)
    if keeps_current(new, old):
        return Retrained(metric, new, old, None)
    trained = run_train(
        table,
        labels,
        repos,
        path,
        target_recall=target_recall,
        target_precision=target_precision,
        backtest_result=result,
    )
    return Retrained(metric, new, old, trained)


# -- the scheduled retrain of an organisation ----------------------------------

PublishedReader = Callable[[], "dict[str, Any] | None"]


class Scheduled(NamedTuple):
    rows: int  # training rows read (the sample)
    new: float  # the new model's validation average precision on the newest 20 % of the sample
    old: float | None  # the current model's, on the same builds (None: no current model, or not comparable)
    trained: Trained | None  # None: the current model was kept


def holdout_score(artifact: dict[str, Any], table: Table) -> float | None:
    """Average precision of a portable artifact on the newest 20 % of `table` (None if it cannot score them)."""
    import numpy as np

    from ci_risk_hook.features.extract import FEATURE_NAMES
    from ci_risk_hook.model.scoring import ModelError, PortableModel
    from ci_risk_hook.model.training import _score

    try:
        model = PortableModel.from_dict(artifact)
        columns = [FEATURE_NAMES.index(n) for n in model.feature_names]
    except (ModelError, ValueError):
        return None  # another schema or a broken file: nothing to compare, the new model is installed
    tail = table.subset(range(int(len(table) * 0.8), len(table)))
    rows = [[None if v != v else float(v) for v in row] for row in tail.X[:, columns].tolist()]
    score = _score(np.asarray(model.predict_proba(rows), dtype=float), tail.y)
    return None if score != score else score


def installed_model(path: str) -> PublishedReader:
    """The default `current` of the scheduled retrain: the artifact at `path`, if any."""

    def read() -> dict[str, Any] | None:
        from ci_risk_hook.model.scoring import ModelError, read_artifact_json

        if not os.path.exists(path):
            return None
        try:
            return dict(read_artifact_json(path))
        except ModelError:
            return None

    return read


def run_scheduled_retrain(
    store: Store,
    repo_ids: Sequence[int],
    names: Sequence[str],
    path: str,
    *,
    max_rows: int,
    current: PublishedReader | None = None,
    target_recall: float = 0.9,
    target_precision: float = 0.8,
    log: Callable[[str], None] | None = None,
) -> Scheduled:
    """`retrain --all-repos`: one organisation model from a bounded sample of the shared history.

    The new model's chronological validation (fitted on the oldest 60 % of the
    sample, calibrated on the next 20 %, scored on the newest 20 %) is compared
    with the current model scored on the same newest builds; the new one is
    written to `path` only if it is not worse. `current` is where the current
    model comes from: the artifact at `path` by default; a published model's
    reader (`model pull`'s) plugs in here. The current model may have been
    trained on some of those builds, which only favours keeping it.
    """
    from ci_risk_hook.model.bounded import sampled_ci_table

    started = time.monotonic()
    table = sampled_ci_table(store, repo_ids, max_rows)
    if log:
        log(f"read a sample of {len(table):,} builds in {time.monotonic() - started:.0f} s")
    started = time.monotonic()
    result = train(table, target_recall=target_recall, target_precision=target_precision, log=log, n_jobs=N_JOBS)
    if log:
        log(f"trained in {time.monotonic() - started:.0f} s")
    new = result.validation.get(result.model.name, float("nan"))
    published = (current or installed_model(path))()
    old = None if published is None else holdout_score(published, table)
    if old is not None and new == new and new < old:
        return Scheduled(len(table), new, old, None)
    artifact = export(
        result, provenance(table, result, "ci", names, target_recall, target_precision) | {"sampled_rows": len(table)}
    )
    previous = install(artifact, path)
    return Scheduled(len(table), new, old, Trained(result, artifact, path, previous))
