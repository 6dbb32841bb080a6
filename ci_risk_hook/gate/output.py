"""Render a gate report as human text (colour only on a terminal) or JSON.

Text quotes the repository (paths, commit subjects, branch names, notes):
each such piece passes through `clean`, so no escape sequence from
there reaches the terminal. JSON stays lossless (json.dumps escapes).
"""

from __future__ import annotations

import json
import os
from typing import IO, Any

from ci_risk_hook.gate.evaluate import GateReport, RangeReport
from ci_risk_hook.safetext import clean

_COLOURS = {"pass": "32", "warn": "33", "block": "31", "empty": "0"}
_HEADLINES = {
    "pass": "low risk",
    "warn": "risky: this push may fail CI",
    "block": "BLOCKED: this push is likely to fail CI",
    "empty": "nothing to push",
}


def use_colour(stream: IO[str]) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _paint(text: str, decision: str, colour: bool) -> str:
    return f"\033[{_COLOURS[decision]}m{text}\033[0m" if colour else text


def _contribution(value: float, space: str) -> str:
    unit = "" if space == "probability" else " log-odds"
    return f"{value:+.2f}{unit}"


def render_text(report: GateReport, colour: bool = False) -> str:
    lines: list[str] = []
    for entry in report.ranges:
        lines.extend(_range_lines(report, entry, colour))
    if not report.ranges:
        lines.append("ci-risk: nothing to push")
    for note in report.notes:
        lines.append(clean(f"ci-risk: {note}"))
    if report.decision in ("warn", "block"):
        if report.model is not None:
            lines.append(clean(f"  model: {report.model.source}{_chosen(report)} ({report.model.model.sha256[:12]})"))
        if report.decision == "block":
            lines.append(f"  to push anyway: {_push_anyway()}")
    return "\n".join(lines)


def _push_anyway() -> str:
    """pre-commit (which sets PRE_COMMIT=1 for its hooks) can skip this hook alone; a raw hook cannot."""
    if os.environ.get("PRE_COMMIT"):
        return "SKIP=ci-risk git push (or git push --no-verify to skip every hook)"
    return "git push --no-verify"


def _chosen(report: GateReport) -> str:
    """Which candidate training installed; the baseline says so, since it did better than any model here."""
    assert report.model is not None
    chosen = report.model.model.provenance.get("chosen")
    if chosen == "parrot":
        return ", the baseline rule (previous build's outcome): it backtested better than any model here"
    return f", {chosen}" if chosen else ""


def _threshold_text(report: GateReport, probability: float) -> str:
    if probability >= report.block_at:
        if report.settings.mode == "block":
            return f"block at {report.block_at:.2f}"
        return f"block at {report.block_at:.2f}, but mode is {report.settings.mode}"
    return f"warn at {report.warn_at:.2f}"


def _range_lines(report: GateReport, entry: RangeReport, colour: bool) -> list[str]:
    where = clean(entry.push_range.label or entry.push_range.describe())
    n = len(entry.features.commits)
    lines: list[str] = []
    if entry.decision == "empty":
        lines.append(f"ci-risk: nothing to push for {where}")
    elif entry.probability is None:
        lines.append(f"ci-risk: {where}: {n} commit(s), not scored")
    else:
        headline = _paint(_HEADLINES[entry.decision], entry.decision, colour)
        lines.append(
            f"ci-risk: risk {entry.probability:.2f} ({_threshold_text(report, entry.probability)}) - {headline}"
        )
        lines.append(f"  {where}: {n} commit(s)")
        for i, reason in enumerate(entry.reasons, 1):
            contribution = _contribution(reason.contribution, entry.space)
            lines.append(f"  {i}. {clean(reason.text)} ({contribution})")
    for note in entry.features.notes:
        lines.append(clean(f"  note: {note}"))
    return lines


def report_dict(report: GateReport) -> dict[str, Any]:
    model = None
    if report.model is not None:
        model = {
            "path": report.model.path,
            "source": report.model.source,
            "sha256": report.model.model.sha256,
            "kind": report.model.model.kind,
        }
    return {
        "decision": report.decision,
        "exit_code": report.exit_code,
        "mode": report.settings.mode,
        "warn_at": report.warn_at,
        "block_at": report.block_at,
        "model": model,
        "notes": report.notes,
        "ranges": [
            {
                "range": entry.push_range.describe(),
                "label": entry.push_range.label,
                "commits": entry.features.commits,
                "probability": entry.probability,
                "decision": entry.decision,
                "contribution_space": entry.space,
                "reasons": [r.as_dict() for r in entry.reasons],
                "features": entry.features.values,
                "notes": entry.features.notes,
            }
            for entry in report.ranges
        ],
    }


def render_json(report: GateReport) -> str:
    return json.dumps(report_dict(report), indent=2, sort_keys=False, allow_nan=False)  # NaN is not JSON
