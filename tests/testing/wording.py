"""What a person reads must name metrics in words: find the raw metric ids (JSON keys) left in a text."""

from __future__ import annotations

import re

from ci_risk_hook.model import metrics

# Keys that are plain English words (precision, recall, warn, block) are fine in a sentence; the others are ids.
_PLAIN = {"precision", "recall", "warn", "block"}
IDS = sorted({m.key for m in (*metrics.METRICS, metrics.RECALL_REACHED, *metrics.OTHER, *metrics.THRESHOLDS)} - _PLAIN)
_RAW = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, IDS)) + r")(?![\w-])")  # case-sensitive: "F1" is a name


def raw_metric_ids(text: str) -> list[str]:
    return _RAW.findall(text)
