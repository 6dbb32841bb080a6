"""A live-figures summary built by hand, shaped as the monitor's `live_summary()` returns it.

Hostile text wherever the store speaks (commits, branches, authors, drift
messages): the report and the dashboard must show it as text.
"""

from __future__ import annotations

HOSTILE = "<script>window.__pwned=1</script>"


def live_summary_by_hand() -> dict[str, object]:
    """A summary as the monitor returns it, with hostile text wherever the store speaks."""
    window = {
        "builds": 40,
        "failures": 8,
        "model": {"precision": 0.5, "recall": 0.75, "f1": 0.6},
        "baseline": {"precision": 0.25, "recall": 0.375, "f1": None},
        "deferred_share": 0.625,
        "deferred_failures": [
            {"commit": "abc123def4567890" + HOSTILE, "branch": HOSTILE + "&amp;", "score": 0.125, "finished_at": 0},
            {"commit": "0123456789ab", "branch": None, "score": 0.2, "finished_at": 86400},
        ],
        "calibration": [
            {"low": 0.0, "high": 0.5, "predicted": 0.1, "observed": 0.125, "builds": 32},
            {"low": 0.5, "high": 1.0, "predicted": 0.7, "observed": None, "builds": 0},
        ],
        "overrides": {"warned": 5, "warned_failed": 2, "blocked": 1, "blocked_failed": 1},
    }
    return {
        "predictions": 55,
        "joined": 40,
        "windows": [
            {**window, "name": "last 50 builds"},
            {**window, "name": "last 200 builds"},
            {**window, "name": "last 30 days", "builds": 12, "deferred_failures": []},
        ],
        "drift": [{"kind": "recall", "message": "live recall 0.60 below the target 0.90 " + HOSTILE}],
        "retrain_would_help": True,
        "bypass": [{"author": HOSTILE + "dev@example.com", "builds": 9, "without_prediction": 3}],
    }
