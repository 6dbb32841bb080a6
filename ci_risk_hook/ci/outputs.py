"""A gate report in the forms CI systems show: a job summary in Markdown, an annotation, a log section.

Every piece of text from the repository or the model (reasons quote file
names and commit subjects; the model's provenance is the trainer's text)
goes through `safetext`: Markdown escaped for the summary, percent-encoded
for workflow commands, control characters escaped everywhere, so a file
name cannot forge a verdict, a table row or a second workflow command.
"""

from __future__ import annotations

import time
from typing import Any

from ci_risk_hook.gate.evaluate import GateReport
from ci_risk_hook.gate.output import render_text
from ci_risk_hook.safetext import clean, markdown, workflow_data, workflow_property

_VERDICTS = {
    "pass": "low risk",
    "warn": "risky: this change may fail CI",
    "block": "BLOCKED: this change is likely to fail CI",
    "empty": "nothing to score",
}
SECTION = "ci_risk"  # the GitLab log section's name


def _score(report: GateReport) -> float | None:
    scored = [r.probability for r in report.ranges if r.probability is not None]
    return max(scored) if scored else None


def _model_line(report: GateReport) -> str:
    if report.model is None:
        return "none"
    chosen = report.model.model.provenance.get("chosen")
    kind = f", {chosen}" if isinstance(chosen, str) and chosen else ""
    return f"{report.model.source}{kind} (sha256 {report.model.model.sha256[:12]})"


def headline(report: GateReport) -> str:
    score = _score(report)
    verdict = _VERDICTS[report.decision]
    return f"ci-risk: {verdict}" + (f" (risk {score:.2f})" if score is not None else "")


def step_summary(report: GateReport, where: str) -> str:
    """Markdown for $GITHUB_STEP_SUMMARY (or any Markdown page): score, decision, reasons, model, thresholds."""
    score = _score(report)
    lines = [
        f"### {markdown(headline(report))}",
        "",
        "| | |",
        "|---|---|",
        f"| score | {'not scored' if score is None else f'{score:.2f}'} |",
        f"| decision | {report.decision} (mode {markdown(report.settings.mode)}, exit {report.exit_code}) |",
        f"| thresholds | warn at {report.warn_at:.2f}, block at {report.block_at:.2f} |",
        f"| model | {markdown(_model_line(report))} |",
        f"| range | {markdown(where)} |",
    ]
    for entry in report.ranges:
        if entry.reasons:
            lines += [
                "",
                f"**Reasons** ({markdown(entry.push_range.describe())}, {len(entry.features.commits)} commits)",
            ]
            unit = "" if entry.space == "probability" else " log-odds"
            lines += [f"{i}. {markdown(r.text)} ({r.contribution:+.2f}{unit})" for i, r in enumerate(entry.reasons, 1)]
    notes = list(report.notes) + [n for entry in report.ranges for n in entry.features.notes]
    if notes:
        lines += ["", "**Notes**", *[f"- {markdown(n)}" for n in notes]]
    return "\n".join(lines) + "\n"


def annotation(report: GateReport) -> str | None:
    """One GitHub workflow command: `::error` when blocked, `::warning` when risky, nothing otherwise."""
    level = {"block": "error", "warn": "warning"}.get(report.decision)
    if level is None:
        return None
    parts = [headline(report)]
    for entry in report.ranges:
        parts += [f"{i}. {r.text}" for i, r in enumerate(entry.reasons, 1)]
    parts.append(f"model: {_model_line(report)}")
    message = "\n".join(clean(p) for p in parts)  # one clean line each, then joined by real newlines
    return f"::{level} title={workflow_property(headline(report))}::{workflow_data(message)}"


def gitlab_section(report: GateReport, body: str, now: int | None = None) -> str:
    """The text report in a collapsible GitLab log section, folded when the change looks safe."""
    stamp = int(time.time()) if now is None else now
    collapsed = "[collapsed=true]" if report.decision in ("pass", "empty") else ""
    title = clean(headline(report))
    return (
        f"\x1b[0Ksection_start:{stamp}:{SECTION}{collapsed}\r\x1b[0K{title}\n"
        f"{body}\n"
        f"\x1b[0Ksection_end:{stamp}:{SECTION}\r\x1b[0K"
    )


def render(report: GateReport, output_format: str, where: str = "") -> str:
    """The report in one of the gate's formats (text and json are gate.output's)."""
    from ci_risk_hook.gate import output

    if output_format == "json":
        return output.render_json(report)
    if output_format == "markdown":
        return step_summary(report, where).rstrip("\n")
    if output_format == "github":
        return annotation(report) or ""
    if output_format == "gitlab":
        return gitlab_section(report, render_text(report))
    return render_text(report)


def json_extra(report_json: str, ci: dict[str, Any]) -> str:
    """The JSON report with what CI used (system, range source, run ids) added under "ci"."""
    import json

    data = json.loads(report_json)
    data["ci"] = ci
    return json.dumps(data, indent=2, allow_nan=False)
