"""Popularity outlook: plays in the next event-time window, predicted online per tenant.

The model learns a correction, in log space, to a simple forecast (this window's plays so
far, the unseen rest of it at the last window's pace), so an untrained model *is* that
forecast and learning can only refine it. Features are the track's trend (this window
against the last, in log plays), how much that trend can be trusted (the trend scaled by
volume: small counts are noisy), and volume itself.

The regressor is a Bayesian linear regression with unit prior and noise precision: River's
``BayesianLinearRegression(alpha=1, beta=1)`` computes the same posterior mean (a unit test
checks), here kept as its sufficient statistics (``a`` = Σ x xᵀ, ``b`` = Σ x y), so that the
state store can update it atomically with the event that closes a window: one model per
tenant, one writer per update, whichever worker processes it (``state/lua/forecaster.lua``
is the same computation in Lua; the store contract tests compare them). Samples are weighted
by √plays (x and y scaled by the square root of the weight), since forecast errors are
counted in plays, where big tracks weigh most.

Training uses delayed labels: when a window closes, the complete window before it is
paired with the plays the closed window got (predict-then-learn). The model scores itself on
each label: its error and the naive forecast's ("next = this window"), as running means over
the last ``QUALITY_WINDOW`` labels.

Drift policy: exponential forgetting. Each label first multiplies the statistics by
``FORGETTING`` (1 - 1/2000), so the fit follows a change of regime within a few thousand
labels while a false alarm can cost nothing: there is no alarm.

Logarithms are ``log(1 + x)`` and ``exp(x) - 1`` (not ``log1p``/``expm1``), as in Lua.

>>> from workers.core.listening_state import WindowCounts
>>> model = PopularityModel.create()
>>> counts = WindowCounts(plays=10, skips=1, likes=2, shares=0, listeners=8)
>>> round(model.predict_one(current=counts, previous=counts, elapsed=0.5), 6)
15.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from workers.core.listening_state import WindowCounts
from workers.core.models.protocol import ModelQuality

__all__ = [
    "FORGETTING",
    "MAX_CORRECTION",
    "QUALITY_WINDOW",
    "PopularityModel",
    "features",
    "rate_extrapolation",
    "solve",
]

#: Largest correction, in log space, the model may apply to the simple forecast (x20).
MAX_CORRECTION = 3.0
QUALITY_WINDOW = 1000
FORGETTING = 1.0 - 1.0 / 2000
N = 4
NAMES = ("bias", "trend", "trend_volume", "volume")


def _log1p(x: float) -> float:
    return math.log(1 + x)


def rate_extrapolation(*, current: WindowCounts, previous: WindowCounts, elapsed: float) -> float:
    """The simple forecast: this window so far, the rest of it at the previous window's pace.

    A full window's worth of plays, expected to carry over to the next window.
    """
    elapsed = min(1.0, max(elapsed, 0.0))
    return current.plays + previous.plays * (1.0 - elapsed)


def features(*, current: WindowCounts, previous: WindowCounts, elapsed: float) -> dict[str, float]:
    base = rate_extrapolation(current=current, previous=previous, elapsed=elapsed)
    trend = _log1p(base) - _log1p(previous.plays)
    volume = _log1p(min(base, previous.plays)) / 10.0
    return {"bias": 1.0, "trend": trend, "trend_volume": trend * volume, "volume": volume}


def _at(i: int, j: int) -> int:
    """Index of A[i][j] in the packed upper triangle (0-based)."""
    if i > j:
        i, j = j, i
    return i * N - i * (i - 1) // 2 + (j - i)


def solve(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """The posterior mean m solving (I + A) m = b, by Cholesky (as forecaster.lua)."""
    low = [[0.0] * N for _ in range(N)]
    for i in range(N):
        for j in range(i + 1):
            s = (1.0 if i == j else 0.0) + a[_at(i, j)]
            for k in range(j):
                s = s - low[i][k] * low[j][k]
            low[i][j] = math.sqrt(s) if i == j else s / low[j][j]
    y = [0.0] * N
    for i in range(N):
        s = b[i]
        for k in range(i):
            s = s - low[i][k] * y[k]
        y[i] = s / low[i][i]
    m = [0.0] * N
    for i in range(N - 1, -1, -1):
        s = y[i]
        for k in range(i + 1, N):
            s = s - low[k][i] * m[k]
        m[i] = s / low[i][i]
    return m


@dataclass
class PopularityModel:
    """The forecaster's sufficient statistics and quality (what the store keeps per tenant)."""

    a: list[float] = field(default_factory=lambda: [0.0] * (N * (N + 1) // 2))
    b: list[float] = field(default_factory=lambda: [0.0] * N)
    trained: int = 0
    mae: float = 0.0
    naive_mae: float = 0.0
    forgetting: float = FORGETTING
    version: str = "blr-stats-v3"

    @classmethod
    def create(cls) -> PopularityModel:
        return cls()

    def _correction(self, x: Mapping[str, float]) -> float:
        m = solve(self.a, self.b)
        c = 0.0
        for i, name in enumerate(NAMES):
            c = c + m[i] * x[name]
        if not math.isfinite(c):
            return 0.0
        return max(-MAX_CORRECTION, min(MAX_CORRECTION, c))

    def predict_one(
        self, *, current: WindowCounts, previous: WindowCounts, elapsed: float
    ) -> float:
        base = rate_extrapolation(current=current, previous=previous, elapsed=elapsed)
        if not self.trained:
            return max(0.0, base)
        x = features(current=current, previous=previous, elapsed=elapsed)
        return max(0.0, math.exp(_log1p(base) + self._correction(x)) - 1)

    def explain_one(self, x: Mapping[str, float]) -> list[str]:
        """The forecast features (``features``) that moved the learnt correction most; the
        simple forecast alone until anything is learnt."""
        if not self.trained:
            return ["rate_extrapolation"]
        m = solve(self.a, self.b)
        effects = {name: abs(m[i] * x[name]) for i, name in enumerate(NAMES) if name != "bias"}
        ranked = sorted(effects.items(), key=lambda kv: -kv[1])
        return [name for name, effect in ranked if effect > 1e-3]

    def quality(self) -> ModelQuality:
        trained = self.trained > 0
        return ModelQuality(
            inputs=self.trained,
            drifts=0,
            mae=self.mae if trained else None,
            naive_mae=self.naive_mae if trained else None,
        )

    def learn_one(self, *, current: WindowCounts, previous: WindowCounts, next_plays: int) -> None:
        """One delayed label: a complete window ``current`` and the plays of the one after it."""
        x = features(current=current, previous=previous, elapsed=1.0)
        base = float(current.plays)
        forecast = self.predict_one(current=current, previous=previous, elapsed=1.0)
        n = min(self.trained + 1, QUALITY_WINDOW)
        self.mae = self.mae + (abs(forecast - next_plays) - self.mae) / n
        self.naive_mae = self.naive_mae + (abs(current.plays - next_plays) - self.naive_mae) / n
        scale = (current.plays + 1.0) ** 0.25
        target = (_log1p(next_plays) - _log1p(base)) * scale
        weighted = [x[name] * scale for name in NAMES]
        for i in range(N):
            for j in range(i, N):
                self.a[_at(i, j)] = self.forgetting * self.a[_at(i, j)] + weighted[i] * weighted[j]
            self.b[i] = self.forgetting * self.b[i] + weighted[i] * target
        self.trained += 1
