"""`ci-risk report`: what the model learnt and how it has done here, as PNG charts and one HTML page.

Everything is computed from the repository's own recorded history: a
backtest (each build predicted only from builds finished before it) for the
curves and matrices, the model in use for the importances and reasons.
matplotlib is imported here only, with the headless Agg backend.
"""

from __future__ import annotations

import base64
import html
import os
import textwrap
from collections import defaultdict
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from ci_risk_hook.features import categories
from ci_risk_hook.features.extract import BY_NAME, FEATURE_NAMES
from ci_risk_hook.features.reasons import describe
from ci_risk_hook.model import metrics
from ci_risk_hook.model.backtest import BacktestResult
from ci_risk_hook.model.dataset import Table
from ci_risk_hook.model.scoring import PortableModel
from ci_risk_hook.views import live as live_view

CHARTS = ("feature_importance", "confusion_matrix", "roc_pr", "calibration", "failure_rate_over_time", "risky_paths")
# Each chart's title and how to read it: the report's captions.
CAPTIONS = {
    "feature_importance": (
        "What the model leans on",
        "Each bar is one fact about a push, and its length the average amount that fact moved the score over the "
        "latest builds (up or down). A long bar means the score follows that fact closely; it does not say the "
        "fact causes failures.",
    ),
    "confusion_matrix": (
        "What the backtest would have said, against what CI said",
        "Rows are what CI said (passed, failed), columns what ci-risk would have said at the warn threshold (left) "
        "and the block threshold (right). The bottom-left cell counts failures it would have let through, the "
        "top-right passing builds it would have flagged for nothing.",
    ),
    "roc_pr": (
        "How well the score ranks failing builds first",
        "Left: the further the curve bends towards the top-left corner, the better the score puts failing builds "
        "above passing ones; the dotted diagonal is guessing. Right: for each share of failures caught (across), "
        "the share of flagged builds that really failed (up). The dot is repeating the previous build's outcome, "
        "which has a single setting.",
    ),
    "calibration": (
        "Does a predicted 30 % risk mean 3 failures in 10?",
        "Builds are grouped by predicted risk; each point is a group's average prediction (across) and how often "
        "its builds really failed (up). Points on the dotted diagonal are well calibrated; above it the model "
        "under-states the risk, below it over-states it.",
    ),
    "failure_rate_over_time": (
        "Failures over time beside the predicted risk",
        "The failure rate of the last 20 builds and the model's average predicted risk for the same builds. Lines "
        "that move together mean the model follows the project's health; a growing gap says it is time to retrain.",
    ),
    "risky_paths": (
        "Where failures gathered",
        "Left: the paths whose builds failed most often (paths in at least 3 builds). Right: how often builds "
        "touching each kind of file failed. A long bar says where failures happened, not what caused them.",
    ),
}
SIZE = (8.0, 5.0)  # inches; 100 dpi -> 800 x 500 pixels
DPI = 100


class Report(NamedTuple):
    charts: dict[str, str]  # name -> PNG path
    html: str | None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: str, name: str) -> str:
    path = os.path.join(out, f"{name}.png")
    fig.savefig(path, dpi=DPI)
    _pyplot().close(fig)
    return path


def feature_words(name: str, width: int = 50) -> str:
    """A feature as a chart axis names it: the schema's description, the words the reasons fall back on."""
    return textwrap.fill(BY_NAME[name].doc, width) if name in BY_NAME else name


def draw_feature_importance(model: PortableModel, table: Table) -> Any:
    plt = _pyplot()
    top = importance(model, table)[:12]
    fig, ax = plt.subplots(figsize=SIZE)
    ax.barh([feature_words(name) for name, _ in reversed(top)], [v for _, v in reversed(top)], color="#4477aa")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("How much each fact moves the score")
    ax.set_xlabel("average size of its contribution" + (" (probability)" if model.kind == "forest" else " (log-odds)"))
    fig.tight_layout()
    return fig


def importance(model: PortableModel, table: Table) -> list[tuple[str, float]]:
    """Mean absolute contribution of each feature over the recorded builds: what the model leans on."""
    totals: dict[str, float] = defaultdict(float)
    rows = table.X[-500:]
    for row in rows:
        values = {name: (None if np.isnan(v) else float(v)) for name, v in zip(FEATURE_NAMES, row)}
        for name, c in model.explain(values).contributions.items():
            totals[name] += abs(c)
    n = max(len(rows), 1)
    return sorted(((k, v / n) for k, v in totals.items()), key=lambda kv: -kv[1])


def build(
    out: str,
    model: PortableModel,
    table: Table,
    result: BacktestResult,
    files_by_commit: dict[str, Sequence[str]],
    *,
    html_page: bool = False,
    card: str = "",
    scored: Sequence[dict[str, Any]] = (),
    live: Mapping[str, Any] | None = None,
) -> Report:
    plt = _pyplot()
    os.makedirs(out, exist_ok=True)
    charts: dict[str, str] = {}
    y = np.array([p.label for p in result.predictions])
    score = np.array([p.score for p in result.predictions])
    parrot = np.array([p.baseline_score for p in result.predictions])
    started = np.array([p.started_at for p in result.predictions])

    charts["feature_importance"] = _save(draw_feature_importance(model, table), out, "feature_importance")

    fig, axes = plt.subplots(1, 2, figsize=SIZE)
    for ax, (label, key) in zip(axes, (("warn", "warn"), ("block", "block"))):
        t = model.thresholds.get(key, 0.5)
        flagged = score >= t
        matrix = np.array(
            [
                [((~flagged) & (y == 0)).sum(), (flagged & (y == 0)).sum()],
                [((~flagged) & (y == 1)).sum(), (flagged & (y == 1)).sum()],
            ]
        )
        ax.imshow(matrix, cmap="Blues")
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=14)
        ax.set_xticks([0, 1], ["pass", label])
        ax.set_yticks([0, 1], ["passed", "failed"])
        ax.set_title(f"at {label} threshold {t:.2f}")
    fig.suptitle("Backtest confusion matrices (rows: what CI said)")
    fig.tight_layout()
    charts["confusion_matrix"] = _save(fig, out, "confusion_matrix")

    from sklearn.metrics import precision_recall_curve, roc_curve

    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=SIZE)
    if len(np.unique(y)) == 2:
        fpr, tpr, _ = roc_curve(y, score)
        roc_ax.plot(fpr, tpr, label="ci-risk")
        precision, recall, _ = precision_recall_curve(y, score)
        pr_ax.plot(recall, precision, label="ci-risk")
        p_flag = parrot >= 0.5
        p_tpr = (p_flag & (y == 1)).sum() / max((y == 1).sum(), 1)
        p_fpr = (p_flag & (y == 0)).sum() / max((y == 0).sum(), 1)
        p_prec = (p_flag & (y == 1)).sum() / max(p_flag.sum(), 1)
        roc_ax.plot([p_fpr], [p_tpr], "o", color="#cc6677", label="previous build's outcome")
        pr_ax.plot([p_tpr], [p_prec], "o", color="#cc6677", label="previous build's outcome")
    roc_ax.plot([0, 1], [0, 1], ":", color="grey")
    roc_ax.set(
        title="Ranking (ROC)", xlabel="passing builds flagged (false positive rate)", ylabel="failures caught (recall)"
    )
    pr_ax.set(title="Precision against recall", xlabel="failures caught (recall)", ylabel="flagged builds that failed")
    roc_ax.legend(loc="lower right")
    pr_ax.legend(loc="upper right")
    fig.tight_layout()
    charts["roc_pr"] = _save(fig, out, "roc_pr")

    fig, ax = plt.subplots(figsize=SIZE)
    bins = np.linspace(0, 1, 11)
    which = np.clip(np.digitize(score, bins) - 1, 0, 9)
    xs = [score[which == b].mean() for b in range(10) if (which == b).any()]
    ys = [y[which == b].mean() for b in range(10) if (which == b).any()]
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    ax.plot(xs, ys, "o-", label="ci-risk (backtest)")
    ax.set(
        title="Reliability: predicted risk against observed failure rate",
        xlabel="predicted probability",
        ylabel="observed failure rate",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend()
    fig.tight_layout()
    charts["calibration"] = _save(fig, out, "calibration")

    fig, ax = plt.subplots(figsize=SIZE)
    order = np.argsort(started)
    window = 20
    if len(order) >= window:
        kernel = np.ones(window) / window
        when = started[order][window - 1 :]
        days = (when - when.min()) / 86400.0
        ax.plot(days, np.convolve(y[order], kernel, mode="valid"), label=f"failure rate (last {window} builds)")
        ax.plot(days, np.convolve(score[order], kernel, mode="valid"), label="mean predicted risk")
    ax.set(
        title="Failures over time and the model's predicted risk",
        xlabel="days since the first prediction",
        ylabel="rate",
    )
    ax.legend()
    fig.tight_layout()
    charts["failure_rate_over_time"] = _save(fig, out, "failure_rate_over_time")

    fig, (path_ax, cat_ax) = plt.subplots(1, 2, figsize=SIZE)
    by_path: dict[str, list[int]] = defaultdict(list)
    by_cat: dict[str, list[int]] = defaultdict(list)
    for p in result.predictions:
        files = files_by_commit.get(p.commit, ())
        for f in files:
            by_path[f].append(p.label)
        for cat in {categories.categorize(f) for f in files}:
            by_cat[cat].append(p.label)
    risky = sorted(((np.mean(v), len(v), k) for k, v in by_path.items() if len(v) >= 3), reverse=True)[:10]
    path_ax.barh([_short(k) for _, _, k in reversed(risky)], [r for r, _, _ in reversed(risky)], color="#cc6677")
    path_ax.set(title="Riskiest paths (3+ builds)", xlabel="failure rate")
    cats = sorted(((np.mean(v), k) for k, v in by_cat.items() if v), reverse=True)
    cat_ax.barh([categories.LABELS[k] for _, k in reversed(cats)], [r for r, _ in reversed(cats)], color="#4477aa")
    cat_ax.set(title="By file category", xlabel="failure rate")
    fig.tight_layout()
    charts["risky_paths"] = _save(fig, out, "risky_paths")

    page = None
    if html_page:
        page = os.path.join(out, "report.html")
        with open(page, "w", encoding="utf-8") as fh:
            fh.write(_html(charts, result, model, table, card, scored, live))
    return Report(charts, page)


def _short(path: str, width: int = 32) -> str:
    return path if len(path) <= width else "..." + path[-(width - 3) :]


def metrics_table(report: Mapping[str, Any]) -> str:
    """The backtest's figures under their names for people, one column per predictor compared."""
    head = "<tr><th></th>" + "".join(f"<th>{html.escape(title)}</th>" for _, title in metrics.COLUMNS) + "</tr>"
    rows = "".join(
        f"<tr><th>{html.escape(m.label)}</th>"
        + "".join(
            f"<td>{'-' if report.get(w, {}).get(m.key) is None else format(report[w][m.key], '.3f')}</td>"
            for w, _ in metrics.COLUMNS
        )
        + "</tr>"
        for m in (*metrics.METRICS, metrics.RECALL_REACHED)
    )
    return f'<table id="metrics">{head}{rows}</table>'


def model_summary(model: PortableModel, where: str) -> str:
    """Which model, from where, with which thresholds, trained on what: `model show`'s facts, as lines."""
    prov = model.provenance
    lines = [f"{where}, {model.kind}, sha256 {model.sha256[:12]}"]
    shown = sorted(model.thresholds.items(), key=lambda kv: (kv[0] not in ("warn", "block"), kv[0] != "warn", kv[0]))
    lines.append("thresholds: " + ", ".join(f"{metrics.threshold_label(k)} {v:.3f}" for k, v in shown))
    if isinstance(prov.get("rows"), int):
        lines.append(
            f"trained {prov.get('trained_at', '?')} on {prov['rows']:,} builds ({prov.get('failures', 0):,} failed)"
        )
    return "\n".join(lines)


def _figure(name: str, path: str) -> str:
    with open(path, "rb") as fh:
        data = base64.b64encode(fh.read()).decode("ascii")
    title, how = CAPTIONS[name]
    return (
        f'<figure id="chart-{name}"><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{html.escape(title if title.endswith('?') else title + '.')}</b> {html.escape(how)}"
        "</figcaption></figure>"
    )


def _html(
    charts: dict[str, str],
    result: BacktestResult,
    model: PortableModel,
    table: Table,
    card: str,
    scored: Sequence[dict[str, Any]] = (),
    live: Mapping[str, Any] | None = None,
) -> str:
    from ci_risk_hook.features.extract import Facts, FeatureResult

    report = result.as_dict()
    failures = sum(p.label for p in result.predictions)
    reasons_html = []
    for k in range(max(0, len(table) - 5), len(table)):
        values = {name: (None if np.isnan(v) else float(v)) for name, v in zip(FEATURE_NAMES, table.X[k])}
        explanation = model.explain(values)
        result_stub = FeatureResult(values, Facts(), [table.commits[k]])
        top = sorted(explanation.contributions.items(), key=lambda kv: -kv[1])[:3]
        items = "".join(f"<li>{html.escape(describe(n, values.get(n), result_stub))} ({c:+.2f})</li>" for n, c in top)
        outcome = "failed" if table.y[k] else "passed"
        reasons_html.append(
            f"<li><code>{html.escape(table.commits[k][:10])}</code>: risk {explanation.probability:.2f}, CI {outcome}"
            f"<ul>{items}</ul></li>"
        )
    pushes = (
        "".join(
            f"<li>{html.escape(str(e.get('range')))}: risk {float(e['probability']):.2f} "
            f"({html.escape(str(e.get('decision')))})"
            f"<ul>{''.join(f'<li>{html.escape(str(t))}</li>' for t in e.get('reasons', []))}</ul></li>"
            for e in reversed(list(scored))
            if e.get("probability") is not None
        )
        or "<li>no push scored in this repository yet</li>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ci-risk report</title>
<style>body{{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;color:#222}}
.answer{{font-size:1.25em;line-height:1.4;border-left:4px solid #4477aa;padding:.4em .8em;background:#f3f6fa}}
.side{{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:1.5em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right}}
th{{text-align:left;font-weight:normal}}tr.group th{{font-weight:bold;background:#f6f6f6}}
.note{{color:#555}}.drift{{color:#b00}}figcaption{{color:#444;max-width:50em}}
figure{{margin:1.5em 0}}img{{max-width:100%}}pre{{background:#f6f6f6;padding:1em;overflow:auto;white-space:pre-wrap}}
code{{overflow-wrap:anywhere}}</style></head>
<body><h1>ci-risk report</h1>
<p class="answer" id="answer">{html.escape(metrics.answer(report, failures=failures))}</p>
<div class="side">
<section id="backtest"><h2>Would it have helped? (backtest)</h2>
<p>{result.predicted} of {result.builds} builds predicted ({failures} of them failed), each by a model trained only
on builds that had finished before it started; {result.retrains} retrains.</p>
{metrics_table(report)}
<p class="note">{html.escape(metrics.PARROT_NOTE)}</p></section>
<section id="live"><h2>Is it helping? (live)</h2>
{live_view.live_html(live)}</section>
</div>
<h2>Charts</h2>
{"".join(_figure(name, charts[name]) for name in CHARTS)}
<h2>Reasons for the last scored pushes</h2>
<ul id="scored">{pushes}</ul>
<h2>Reasons for the latest builds</h2>
<ul>{"".join(reasons_html)}</ul>
<h2>Model</h2>
<pre>{html.escape(card)}</pre>
</body></html>
"""


def build_for_repo(
    out: str,
    store: Any,
    repo_id: int,
    info: Any,
    choice: Any,
    *,
    html_page: bool = False,
    retrain_every: int = 25,
    progress: Any = None,
) -> Report:
    """`ci-risk report`: backtest this repository's recorded history, chart it with the model in use."""
    from ci_risk_hook.gate.evaluate import scored_pushes
    from ci_risk_hook.model.dataset import ci_table
    from ci_risk_hook.model.workflow import run_backtest

    try:
        table = ci_table(store, repo_id)
        features = store.build_features(repo_id)
        commits = {b.id: b.commit for b in store.builds(repo_id)}
        live = live_view.load(store, repo_id) if html_page else None
    finally:
        store.close()
    files = {commits[i]: f for i, (_, f, _) in features.items() if i in commits}
    result = run_backtest(table, retrain_every=retrain_every, progress=progress)
    card = model_summary(choice.model, f"{choice.path} ({choice.source})")
    if choice.source == "bundled":
        card_path = os.path.join(os.path.dirname(choice.path), "MODEL_CARD.md")
        if os.path.exists(card_path):
            with open(card_path, encoding="utf-8") as fh:
                card = fh.read() + "\n" + card
    return build(
        out, choice.model, table, result, files, html_page=html_page, card=card, scored=scored_pushes(info), live=live
    )
