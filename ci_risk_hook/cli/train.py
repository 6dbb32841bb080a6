"""Learning from the recorded history: `train`, `backtest` and `retrain` (also the scheduled `retrain --all-repos`)."""

from __future__ import annotations

from typing import Any

import click

from ci_risk_hook.cli.common import all_repos_store, bar, note, open_reading, repositories
from ci_risk_hook.cli.extras import require
from ci_risk_hook.cli.options import training_options
from ci_risk_hook.model import metrics
from ci_risk_hook.safetext import clean


def _table(target: Any, labels: str, all_repos: bool) -> tuple[Any, list[str]]:
    from ci_risk_hook.git import repo as git
    from ci_risk_hook.model.workflow import table_for

    if all_repos:
        ids, names = repositories(target.store)
    else:  # a repository the store does not know: no rows (table_for says so)
        ids = [] if target.repo_id is None else [target.repo_id]
        names = [git.repo_name(target.info)]
    return table_for(target.store, ids, labels), names


@click.command()
@training_options
@click.option("--out", default=None, help="Where to write the model (default: .git/ci-risk/model.json).")
def train(
    labels: str, all_repos: bool, target_recall: float, target_precision: float, db: str | None, out: str | None
) -> None:
    """Train this repository's model on its recorded history (time-ordered validation)."""
    require("train")
    from ci_risk_hook.model.workflow import default_model_path, run_train

    target = open_reading(db, this_repo=not all_repos)
    try:
        table, names = _table(target, labels, all_repos)
        path = out or default_model_path()
        trained = run_train(
            table,
            labels,
            names,
            path,
            target_recall=target_recall,
            target_precision=target_precision,
            log=note,
        )
    finally:
        target.store.close()
    result = trained.result
    scores = ", ".join(f"{k} {v:.3f}" for k, v in sorted(result.validation.items(), key=lambda kv: -kv[1]))
    click.echo(
        f"ci-risk: trained on {result.rows:,} builds ({result.failures:,} failed); chose {result.model.name} "
        f"by validation PR-AUC ({scores})"
    )
    t = result.thresholds
    click.echo(
        f"ci-risk: thresholds: warn {t['warn']:.3f} (catches {target_recall:.0%} of validation failures), "
        f"block {t['block']:.3f} (precision {target_precision:.0%}), best-F1 {t['f1']:.3f}"
    )
    click.echo(
        clean(
            f"ci-risk: model written to {trained.path}"
            + (f" (previous kept as {trained.previous})" if trained.previous else "")
        )
    )


@click.command()
@training_options
@click.option("--retrain-every", type=click.IntRange(1), default=25, show_default=True, help="Builds between retrains.")
@click.option(
    "--predictions",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write one CSV row per predicted build.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def backtest(
    labels: str,
    all_repos: bool,
    target_recall: float,
    target_precision: float,
    db: str | None,
    retrain_every: int,
    predictions: str | None,
    fmt: str,
) -> None:
    """Would it have helped here? Predict each past build from the builds finished before it."""
    require("train")
    import json

    from ci_risk_hook.model.backtest import write_predictions
    from ci_risk_hook.model.workflow import run_backtest

    target = open_reading(db, this_repo=not all_repos)
    try:
        table, _ = _table(target, labels, all_repos)
    finally:
        target.store.close()
    result = run_backtest(table, retrain_every=retrain_every, target_recall=target_recall, progress=bar("backtest"))
    if predictions:
        write_predictions(result, predictions)
    report = result.as_dict()
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    chosen = ", ".join(f"{k} x{v}" for k, v in sorted(result.chosen.items(), key=lambda kv: -kv[1]))
    click.echo(
        f"ci-risk: {result.predicted:,} of {result.builds:,} builds predicted, {result.retrains} retrains "
        f"(every {retrain_every}; chosen: {chosen}), {result.seconds:.1f} s"
    )
    click.echo(metrics.answer(report, failures=sum(p.label for p in result.predictions)))
    click.echo(metrics.text_table(report))


@click.command()
@training_options
@click.option(
    "--metric",
    type=click.Choice(metrics.RETRAIN_METRICS),
    default="f1",
    show_default=True,
    help="What the new model must not be worse at.",
)
@click.option("--retrain-every", type=click.IntRange(1), default=25, show_default=True)
@click.option(
    "--max-rows",
    type=click.IntRange(100),
    default=None,
    help="With --all-repos: most builds to train on, sampled by repository and time (default 200,000).",
)
@click.option("--out", default=None, help="With --all-repos: the model file (default: .git/ci-risk/model.json).")
@click.option(
    "--publish",
    "publish_to",
    default=None,
    help="With --all-repos: compare with the model published at this URL and publish the new one if not worse.",
)
@click.option("--sign", "key_file", default=None, help="With --publish: sign with this private key (model keygen).")
def retrain(
    labels: str,
    all_repos: bool,
    target_recall: float,
    target_precision: float,
    db: str | None,
    metric: str,
    retrain_every: int,
    max_rows: int | None,
    out: str | None,
    publish_to: str | None,
    key_file: str | None,
) -> None:
    """Train and backtest; replace the current model only if the new one is not worse.

    With --all-repos (the scheduled job): one organisation model from the whole
    store, read in bounded memory; see the README.
    """
    require("train")
    from ci_risk_hook.model.workflow import default_model_path, run_retrain

    if (publish_to or key_file) and not (all_repos and labels == "ci"):
        raise click.UsageError("--publish and --sign go with --all-repos (and --labels ci)")
    if key_file and not publish_to:
        raise click.UsageError("--sign needs --publish DEST")
    if all_repos and labels == "ci" and publish_to:
        from ci_risk_hook.cli.team import scheduled_publish

        scheduled_publish(db, out, max_rows, target_recall, target_precision, publish_to, key_file)
        return
    if all_repos and labels == "ci":
        _scheduled_retrain(db, out, max_rows, target_recall, target_precision)
        return
    target = open_reading(db, this_repo=not all_repos)
    try:
        table, names = _table(target, labels, all_repos)
        done = run_retrain(
            table,
            labels,
            names,
            default_model_path(),
            metric=metric,
            retrain_every=retrain_every,
            target_recall=target_recall,
            target_precision=target_precision,
            progress=bar("backtest"),
        )
    finally:
        target.store.close()
    old, new = done.old, done.new
    if done.trained is None:
        click.echo(
            f"ci-risk: kept the current model: its backtest {metrics.label(metric)} {old:.3f} beats the new "
            f"one's {0.0 if new is None else new:.3f}"
        )
        return
    was = "none" if old is None else f"{old:.3f}"
    click.echo(
        f"ci-risk: installed {done.trained.result.model.name}: backtest {metrics.label(metric)} {new:.3f} "
        f"(previous model: {was}); "
        f"written to {clean(done.trained.path)}"
    )


def _scheduled_retrain(
    db: str | None, out: str | None, max_rows: int | None, target_recall: float, target_precision: float
) -> None:
    """`retrain --all-repos`: needs a store, not a checkout (a checkout only gives the default --out)."""
    from ci_risk_hook import paths
    from ci_risk_hook.model.bounded import DEFAULT_MAX_ROWS
    from ci_risk_hook.model.workflow import run_scheduled_retrain
    from ci_risk_hook.outcomes.store import open_existing

    common_dir, url = all_repos_store(db)
    if out is None and common_dir is None:
        raise click.UsageError("outside a git repository, --all-repos needs --out FILE")
    out = out or paths.repo_model(str(common_dir))
    store = open_existing(url)
    try:
        ids, names = repositories(store)
        done = run_scheduled_retrain(
            store,
            ids,
            names,
            out,
            max_rows=max_rows or DEFAULT_MAX_ROWS,
            target_recall=target_recall,
            target_precision=target_precision,
            log=note,
        )
    finally:
        store.close()
    was = "none" if done.old is None else f"{done.old:.3f}"
    if done.trained is None:
        click.echo(
            f"ci-risk: kept the current model: on the newest builds of the sample its PR-AUC {was} beats the new "
            f"one's {done.new:.3f} ({done.rows:,} builds of {len(ids)} repositories)"
        )
        return
    click.echo(
        f"ci-risk: installed {done.trained.result.model.name} trained on {done.rows:,} builds of {len(ids)} "
        f"repositories: validation PR-AUC {done.new:.3f} (current model: {was}); written to {clean(done.trained.path)}"
    )
