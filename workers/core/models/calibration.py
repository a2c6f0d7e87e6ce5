"""Calibrated anomaly scores: a raw score's rank among the tenant's recent raw scores.

A model's raw score means little on its own (HalfSpaceTrees' scale moves with the data).
Its rank among the last ``window`` raw scores of the same tenant and model is a
probability-like number in 0..1: 0.99 means "higher than 99 % of recent inputs". A
threshold on the rank is an adaptive quantile threshold on the raw score.

>>> calibrator = ScoreCalibrator(window=100)
>>> for i in range(100):
...     calibrator.update(i / 100)
>>> calibrator.rank(0.995), calibrator.rank(0.505), calibrator.rank(-1.0)
(1.0, 0.51, 0.0)
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

__all__ = ["ScoreCalibrator"]


@dataclass
class ScoreCalibrator:
    window: int = 1000
    _fifo: deque[float] = field(default_factory=deque, repr=False)
    _sorted: list[float] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self._fifo)

    def rank(self, raw: float) -> float:
        """Share of the recent raw scores below ``raw`` (ties count half)."""
        n = len(self._sorted)
        if n == 0:
            return 0.0
        below = bisect.bisect_left(self._sorted, raw)
        ties = bisect.bisect_right(self._sorted, raw) - below
        return (below + 0.5 * ties) / n

    def quantile(self, q: float) -> float | None:
        """The raw score below which a share ``q`` of the recent raw scores lie."""
        if not self._sorted:
            return None
        return self._sorted[min(len(self._sorted) - 1, int(q * len(self._sorted)))]

    def update(self, raw: float) -> None:
        self._fifo.append(raw)
        bisect.insort(self._sorted, raw)
        if len(self._fifo) > self.window:
            old = self._fifo.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]

    def keep_recent(self, n: int) -> None:
        """Forget all but the ``n`` most recent raw scores."""
        while len(self._fifo) > n:
            old = self._fifo.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
