"""The 90 %-recall cut, moved as outcomes arrive so that the recall it promises is the recall it delivers.

A cut chosen once, at training, drifts: the model's scores move with the
project, and a cut chosen on a few dozen failures is noisy. Adaptive conformal
inference (Gibbs and Candès, 2021) keeps the share of failures let through at
its target whatever the drift: after each failure whose outcome arrives, the
quantile level moves up a little if the failure scored above the cut it met
(caught), and down more if it was let through. The cut is that quantile of
the scores the latest failures had *before* their outcomes were known.

On the 59 unseen Travis projects (bench/backtest_travis.py, parameters set
before the run, not tuned) the median realised recall went from 0.935 (a cut
fixed at each retrain) to 0.905, and the median share of builds deferrable at
>= 0.88 recall from 20 % to 26 %.

The same `RecallCut` serves the backtest (fed in time order) and the gate
(`replay` over the store's scored failures). Standard library only: it runs
on a push.
"""

from __future__ import annotations

from collections import deque
from typing import Optional, Sequence

from ci_risk_hook.outcomes.records import ScoredFailure

STEP = 0.05  # how far one failure moves the quantile level
WINDOW = 50  # the latest failures whose scores set the cut
MIN_FAILURES = 10  # fewer scored failures than this: no cut of its own (the model's is used)
REPLAY = 400  # the gate replays at most this many latest failures (the level forgets older ones anyway)
MAX_LEVEL = 0.5  # never let through more than half of the failures' score range


class RecallCut:
    """The cut's state: the quantile level and the latest failures' scores."""

    def __init__(self, target_recall: float = 0.9) -> None:
        self.target_miss = 1.0 - target_recall
        self.level = self.target_miss
        self.scores: deque[float] = deque(maxlen=WINDOW)

    def cut(self) -> Optional[float]:
        """Warn from this score; None until MIN_FAILURES failures have been seen."""
        if len(self.scores) < MIN_FAILURES:
            return None
        if self.level <= 0.0:
            return 0.0  # every failure caught lately was not enough: flag everything until one is let through
        ordered = sorted(self.scores)
        return ordered[int(self.level * (len(ordered) - 1))]

    def finished(self, score: float, cut_at_start: Optional[float]) -> None:
        """A failure's outcome arrived: it was let through if it scored under the cut it met at its start."""
        if cut_at_start is not None:
            missed = 1.0 if score < cut_at_start else 0.0
            self.level = min(MAX_LEVEL, max(0.0, self.level + STEP * (self.target_miss - missed)))
        self.scores.append(score)


def cuts_met(builds: Sequence[tuple[int, int, Optional[float]]], target_recall: float = 0.9) -> list[Optional[float]]:
    """The cut each build met at its start, walking time: `builds` are (started, finished, score if it failed, else
    None). A failure counts once it has finished, strictly before a later build starts."""
    state = RecallCut(target_recall)
    events = sorted(
        [(started, 0, i) for i, (started, _, _) in enumerate(builds)]
        + [(finished, 1, i) for i, (_, finished, score) in enumerate(builds) if score is not None]
    )
    met: dict[int, Optional[float]] = {}
    for _, kind, i in events:
        if kind == 0:
            met[i] = state.cut()
        else:
            score = builds[i][2]
            assert score is not None
            state.finished(score, met.get(i))  # not met (finished before it started): no level move
    return [met[i] for i in range(len(builds))]


def replay(failures: Sequence[ScoredFailure], now: int, target_recall: float = 0.9) -> Optional[float]:
    """The cut a build starting just after `now` meets: the failures finished by then have moved it."""
    moments = [(f.started_at, f.finished_at, f.score) for f in failures]
    return cuts_met([*moments, (now + 1, now + 1, None)], target_recall)[-1]
