"""`ci-risk monitor` as text: the live figures (`outcomes.monitor.live_summary`) for people, metrics in words."""

from __future__ import annotations

from typing import Any

from ci_risk_hook.safetext import clean
from ci_risk_hook.views.live import utc

FIGURES = (
    ("recall", "failures caught (recall)"),
    ("precision", "flags that were right (precision)"),
    ("f1", "balance of the two (F1)"),
)
_LISTED_DEFERRED = 10  # deferred failures listed per window; the JSON has them all


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"


def render_text(summary: dict[str, Any]) -> str:
    lines = [
        f"ci-risk monitor: {summary['predictions']} prediction(s) recorded, "
        f"{summary['joined']} build(s) with their outcome"
    ]
    if not summary["joined"]:
        lines.append(
            "  no outcome has arrived yet for a predicted commit: record CI outcomes (`ci-risk record --ci`) "
            "and predictions (the hook or `check --ci` with a store configured)"
        )
    for window in summary["windows"]:
        lines.extend(_window_lines(window))
    lines.extend(_drift_lines(summary))
    lines.extend(_bypass_lines(summary["bypass"]))
    return "\n".join(lines)


def _window_lines(window: dict[str, Any]) -> list[str]:
    lines = ["", f"{window['name']}: {window['builds']} build(s), {window['failures']} failed"]
    if not window["builds"]:
        return lines
    lines.append(f"  {'':36} {'ci-risk':>9} {'previous build rule':>20}")
    for key, words in FIGURES:
        lines.append(f"  {words:36} {_share(window['model'][key]):>9} {_share(window['baseline'][key]):>20}")
    deferred = window["deferred_failures"]
    lines.append(
        f"  builds the gate let through without a flag: {_share(window['deferred_share'])}; "
        f"failures among them: {len(deferred)}"
    )
    for item in deferred[:_LISTED_DEFERRED]:
        when = utc(item["finished_at"])
        branch = clean(item["branch"] or "(no branch)")
        lines.append(f"    {clean(item['commit'][:10])} on {branch}, risk {item['score']:.2f}, failed {when}")
    if len(deferred) > _LISTED_DEFERRED:
        lines.append(f"    ... and {len(deferred) - _LISTED_DEFERRED} more (--format json lists them all)")
    buckets = ", ".join(
        f"{b['low']:.1f}-{b['high']:.1f}: predicted {_share(b['predicted'])}, "
        f"failed {_share(b['observed'])} of {b['builds']}"
        for b in window["calibration"]
    )
    lines.append(f"  predicted vs observed failure rate by risk: {buckets}")
    o = window["overrides"]
    lines.append(
        f"  pushed after a warning: {o['warned']} (failed: {o['warned_failed']}); "
        f"after a block: {o['blocked']} (failed: {o['blocked_failed']})"
    )
    return lines


def _drift_lines(summary: dict[str, Any]) -> list[str]:
    if not summary["drift"]:
        return ["", "drift: none found"]
    lines = ["", "drift:"]
    lines.extend(f"  {clean(flag['kind'])}: {clean(flag['message'])}" for flag in summary["drift"])
    if summary["retrain_would_help"]:
        lines.append(
            f"  `ci-risk retrain` would help: {summary['new_outcomes']} outcome(s) arrived since this model "
            "started predicting"
        )
    else:
        lines.append("  few outcomes arrived since this model started predicting: a retrain would learn little yet")
    return lines


def _bypass_lines(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["", "CI builds since the first hook prediction, and how many of their commits the hook did not score:"]
    lines.append("  (a hook not installed in that clone, or `git push --no-verify`; counted, not judged)")
    for row in rows:
        lines.append(f"  {clean(row['author'])}: {row['without_prediction']} of {row['builds']}")
    return lines
