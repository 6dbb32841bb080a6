"""Live figures ("is it helping?") as HTML, from the monitor's summary dictionary.

The monitor (`ci_risk_hook.outcomes.monitor.live_summary`) joins recorded
predictions with the outcomes that arrived later; this module only renders
its dictionary (the shape `live_summary` documents), so the report shows live
figures beside the backtest when the monitor is there and says plainly why
not when it is absent. Commits, branches, authors and drift messages come
from the store: every one is escaped. Standard library only.
"""

from __future__ import annotations

import html
import time
from typing import Any, Mapping, Sequence

from ci_risk_hook.errors import CiRiskError
from ci_risk_hook.model import metrics
from ci_risk_hook.safetext import clean

ABSENT = "no live figures yet: predictions are recorded once a store is configured"
NO_PREDICTIONS = (
    "no live figures yet: no prediction recorded for this repository; the hook, `ci-risk check` and "
    "`check --ci` record one per push once a store is configured"
)
BASELINE = "repeating the previous build's outcome"
DEFERRED = "Failing builds ci-risk would have let skip the long tests (score below the warn threshold):"
NO_DEFERRED = "No failing build was deferred in these windows."
BYPASS = (
    "CI builds whose commits went through no hook prediction (the hook is not installed on that machine, "
    "or the push skipped hooks), per author:"
)
CALIBRATION = "Calibration: a well-calibrated model's predicted failure rate matches the observed one in every row"
SHOWN_DEFERRED = 20  # deferred failures listed; the rest are counted


def load(store: Any, repo_id: int) -> dict[str, Any] | None:
    """The monitor's summary for this repository, or None when this installation has no monitor yet.

    A store the monitor cannot read (an older schema, a lost connection) costs
    the live section, not the report: the section then says why, in one line.
    """
    try:
        from ci_risk_hook.outcomes.monitor import live_summary  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        summary: dict[str, Any] = live_summary(store, repo_id)
    except CiRiskError as exc:
        return {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
    return summary


def _e(value: object) -> str:
    return html.escape(clean(str(value)), quote=True)  # a bidi override or escape code shown, not obeyed


def _num(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) or isinstance(value, bool) else f"{value:.3f}"


def utc(seconds: Any, form: str = "%Y-%m-%d %H:%M UTC") -> str:
    """A time from the store as UTC text; "?" for one the platform cannot show (a forged 2**62 raises)."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "?"
    try:
        return time.strftime(form, time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):
        return "?"


def _row(title: str, cells: Sequence[str], klass: str = "") -> str:
    attr = f' class="{klass}"' if klass else ""
    return f"<tr{attr}><th>{_e(title)}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _windows_table(windows: Sequence[Mapping[str, Any]]) -> str:
    head = "<tr><th></th>" + "".join(f"<th>{_e(w.get('name', '?'))}</th>" for w in windows) + "</tr>"
    rows = [
        _row("builds with an outcome", [_e(w.get("builds", 0)) for w in windows]),
        _row("failures", [_e(w.get("failures", 0)) for w in windows]),
    ]
    for who, title in (("model", "ci-risk"), ("baseline", BASELINE)):
        rows.append(f'<tr class="group"><th colspan="{len(windows) + 1}">{_e(title)}</th></tr>')
        for key in ("precision", "recall", "f1"):
            rows.append(_row(metrics.label(key), [_num((w.get(who) or {}).get(key)) for w in windows]))
    rows.append(_row(metrics.label("deferred_share"), [_num(w.get("deferred_share")) for w in windows]))
    for kind, title in (("warned", "pushed despite a warning"), ("blocked", "pushed despite a block")):
        cells = []
        for w in windows:
            o = w.get("overrides") or {}
            cells.append(f"{_e(o.get(kind, 0))} ({_e(o.get(kind + '_failed', 0))} failed)")
        rows.append(_row(title, cells))
    return f'<table id="live-windows">{head}{"".join(rows)}</table>'


def _deferred(windows: Sequence[Mapping[str, Any]]) -> str:
    seen: dict[str, Mapping[str, Any]] = {}
    for w in windows:
        for d in w.get("deferred_failures") or ():
            seen.setdefault(str(d.get("commit")), d)
    if not seen:
        return f"<p>{_e(NO_DEFERRED)}</p>"
    newest = sorted(seen.values(), key=lambda d: -(d.get("finished_at") or 0))
    items = "".join(
        f"<li><code>{_e(str(d.get('commit'))[:12])}</code>"
        + (f" on <code>{_e(d['branch'])}</code>" if d.get("branch") else "")
        + f": risk {_num(d.get('score'))}, failed {_e(utc(d.get('finished_at')))}</li>"
        for d in newest[:SHOWN_DEFERRED]
    )
    more = len(newest) - SHOWN_DEFERRED
    tail = f"<li>and {more} more</li>" if more > 0 else ""
    return f'<p>{_e(DEFERRED)}</p><ul id="live-deferred">{items}{tail}</ul>'


def _calibration(windows: Sequence[Mapping[str, Any]]) -> str:
    widest = max(windows, key=lambda w: w.get("builds") or 0)
    buckets = widest.get("calibration") or []
    if not buckets:
        return ""
    rows = "".join(
        _row(
            f"risk {_num(b.get('low'))}-{_num(b.get('high'))}",
            [_e(b.get("builds", 0)), _num(b.get("predicted")), _num(b.get("observed"))],
        )
        for b in buckets
    )
    return (
        f"<p>{_e(CALIBRATION)} ({_e(widest.get('name', '?'))}).</p>"
        '<table id="live-calibration"><tr><th></th><th>builds</th><th>predicted failure rate</th>'
        f"<th>observed failure rate</th></tr>{rows}</table>"
    )


def _bypass(bypass: Sequence[Mapping[str, Any]]) -> str:
    if not bypass:
        return ""
    rows = "".join(
        _row(str(b.get("author")), [_e(b.get("builds", 0)), _e(b.get("without_prediction", 0))]) for b in bypass
    )
    return (
        f"<p>{_e(BYPASS)}</p>"
        f'<table id="live-bypass"><tr><th>author</th><th>builds</th><th>without a prediction</th></tr>{rows}</table>'
    )


def live_html(summary: Mapping[str, Any] | None) -> str:
    """The live section's body: figures per window beside the previous-build rule, or why there are none."""
    if summary is None:
        return f'<p class="note" id="live-none">{_e(ABSENT)}</p>'
    if summary.get("error"):
        return f'<p class="drift" id="live-none">live figures unavailable: {_e(summary["error"])}</p>'
    predictions = summary.get("predictions") or 0
    if not predictions:
        return f'<p class="note" id="live-none">{_e(NO_PREDICTIONS)}</p>'
    windows = [w for w in summary.get("windows") or () if isinstance(w, Mapping)]
    parts = [
        f"<p>{_e(predictions)} predictions recorded; {_e(summary.get('joined', 0))} of their builds have an outcome. "
        f"Each figure is measured on the builds that came after the prediction, beside {BASELINE} on the same "
        "builds.</p>"
    ]
    drift = summary.get("drift") or []
    if drift:
        items = "".join(f"<li>{_e(d.get('message', d.get('kind', '')))}</li>" for d in drift)
        parts.append(f'<ul class="drift" id="live-drift">{items}</ul>')
    if summary.get("retrain_would_help"):
        parts.append(
            '<p class="drift">Retraining on the recent builds would help: run <code>ci-risk retrain</code>.</p>'
        )
    if windows:
        parts += [_windows_table(windows), _deferred(windows), _calibration(windows)]
    parts.append(_bypass(summary.get("bypass") or []))
    return "".join(parts)
