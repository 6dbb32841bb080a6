"""The `model` group and `model show`: which model is in use, from where, and how well it did.

The team's commands of the group (publish, pull, keygen) are in `cli.team`; `cli.main` puts them in it.
"""

from __future__ import annotations

from typing import Any

import click

from ci_risk_hook.cli.common import settings_warnings
from ci_risk_hook.model import metrics
from ci_risk_hook.safetext import clean


@click.group()
def model() -> None:
    """The model in use."""


@click.command("show")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def model_show(fmt: str) -> None:
    """Which model is in use, from where, trained on what, how well it backtested."""
    import json

    from ci_risk_hook import config
    from ci_risk_hook.gate.evaluate import choose_model
    from ci_risk_hook.git import repo as git

    info = git.repo_info()
    settings = config.resolve({}, toplevel=info.toplevel, tolerant=True)  # the model the hook would use
    notes: list[str] = []
    choice = choose_model(settings, info, notes)
    settings_warnings(settings)
    for note in notes:
        click.echo(clean(f"ci-risk: {note}"), err=True)
    if choice is None:
        click.echo("ci-risk: no model available yet: `ci-risk train` (after recording outcomes) creates one")
        return
    m = choice.model
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "path": choice.path,
                    "source": choice.source,
                    "kind": m.kind,
                    "sha256": m.sha256,
                    "thresholds": m.thresholds,
                    "provenance": m.provenance,
                },
                indent=2,
            )
        )
        return
    prov = m.provenance  # written by whoever made the model file: every line of it is cleaned
    chosen = f", chosen candidate {prov['chosen']}" if "chosen" in prov else ""
    click.echo(clean(f"model: {choice.path} ({choice.source}), {m.kind}{chosen}, sha256 {m.sha256[:12]}"))
    if "rows" in prov:
        parts = [
            f"trained: {prov.get('trained_at', '?')} on {prov['rows']:,} builds ({prov.get('failures', 0):,} failed)"
        ]
        if "data_from" in prov:
            parts.append(f"{prov['data_from']} .. {prov.get('data_to', '?')}")
        if "labels" in prov:
            parts.append(f"labels {prov['labels']}")
        if prov.get("repositories"):
            parts.append(f"{len(prov['repositories'])} repositories: {', '.join(prov['repositories'])}")
        click.echo(clean(", ".join(parts)))
        if prov.get("data"):
            click.echo(clean(f"data: {prov['data']}"))
    shown = sorted(m.thresholds.items(), key=lambda kv: (kv[0] not in ("warn", "block"), kv[0] != "warn", kv[0]))
    click.echo(clean("thresholds: " + ", ".join(f"{metrics.threshold_label(k)} {v:.3f}" for k, v in shown)))
    if prov.get("backtest"):
        click.echo(metrics.answer(prov["backtest"]))
        click.echo(metrics.text_table(prov["backtest"]))
    elif prov.get("evaluation"):
        click.echo(_evaluation_text(prov["evaluation"]))


def _evaluation_text(evaluation: dict[str, Any]) -> str:
    """The bundled model's evaluation on unseen projects, as lines (the JSON is `--format json`)."""
    projects = evaluation.get("projects", [])
    lines = [f"evaluated on {len(projects)} projects it never saw (medians): {', '.join(projects)}"]
    for regime, title in (("with_history", "with build history"), ("cold_start", "cold start")):
        for who, name in (("model", "ci-risk"), ("parrot", "Parrot")):
            m = evaluation.get("median", {}).get(regime, {}).get(who)
            if m and (who == "model" or regime == "with_history"):
                cells = ", ".join(
                    f"{metrics.label(key)} {m[key]:.3f}"
                    for key in (
                        "f1",
                        "roc_auc",
                        "pr_auc",
                        "brier",
                        "deferrable_at_90",
                        "quiet_at_warn",
                        "recall_at_warn",
                    )
                    if key in m
                )
                lines.append(f"  {name}, {title}: {cells}")
    return "\n".join(lines)
