"""Popularity outlook: plays in the next event-time window, predicted online.

Inputs are one track's counts in its current window (so far) and the window before;
the target is the next window's plays. The regressor learns a correction, in log space,
to a simple forecast (this window's plays, the unseen rest of it at the last window's
pace), so an untrained model *is* that forecast and training can only refine it.
Training uses delayed labels: when a window closes, the window before it (complete)
is paired with the plays the closed window finally got (predict-then-learn).

>>> model = PopularityModel.create()
>>> counts = WindowCounts(plays=10, skips=1, likes=2, shares=0, listeners=8)
>>> model.predict(current=counts, previous=counts, elapsed=0.5) > 0
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from river import compose, linear_model, optim, preprocessing

#: Largest correction, in log space, the model may apply to the simple forecast (x20).
MAX_CORRECTION = 3.0


@dataclass(frozen=True, slots=True)
class WindowCounts:
    plays: int = 0
    skips: int = 0
    likes: int = 0
    shares: int = 0
    listeners: int = 0


def features(*, current: WindowCounts, previous: WindowCounts, elapsed: float) -> dict[str, float]:
    """Model inputs; ``elapsed`` is the fraction (0..1] of the current window behind us."""
    elapsed = min(1.0, max(elapsed, 1e-3))
    return {
        "log_plays_rate": math.log1p(current.plays / elapsed),
        "log_plays_prev": math.log1p(previous.plays),
        "log_listeners": math.log1p(current.listeners / elapsed),
        "skip_share": current.skips / max(1, current.plays + current.skips),
        "log_engagement": math.log1p((current.likes + 2 * current.shares) / elapsed),
        "trend": math.log1p(current.plays / elapsed) - math.log1p(previous.plays),
    }


def rate_extrapolation(*, current: WindowCounts, previous: WindowCounts, elapsed: float) -> float:
    """The fallback forecast: this window so far, the rest of it at the previous window's pace.

    A full window's worth of plays, expected to carry over to the next window.
    """
    elapsed = min(1.0, max(elapsed, 0.0))
    return current.plays + previous.plays * (1.0 - elapsed)


@dataclass
class PopularityModel:
    model: compose.Pipeline
    trained: int = 0
    version: str = "linreg-residual-v1"

    @classmethod
    def create(cls) -> PopularityModel:
        regressor = linear_model.LinearRegression(optimizer=optim.SGD(0.01), intercept_lr=0.01)
        return cls(model=preprocessing.StandardScaler() | regressor)

    def predict(self, *, current: WindowCounts, previous: WindowCounts, elapsed: float) -> float:
        base = rate_extrapolation(current=current, previous=previous, elapsed=elapsed)
        x = features(current=current, previous=previous, elapsed=elapsed)
        correction = float(self.model.predict_one(x))
        if not math.isfinite(correction):
            correction = 0.0
        correction = max(-MAX_CORRECTION, min(MAX_CORRECTION, correction))
        return max(0.0, math.expm1(math.log1p(base) + correction))

    def learn(self, *, current: WindowCounts, previous: WindowCounts, next_plays: int) -> None:
        """One delayed label: a complete window ``current`` and the plays of the one after it."""
        x = features(current=current, previous=previous, elapsed=1.0)
        self.model.learn_one(x, math.log1p(next_plays) - math.log1p(current.plays))
        self.trained += 1
