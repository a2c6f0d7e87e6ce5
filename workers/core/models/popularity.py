"""Popularity outlook: plays in the next event-time window, predicted online per tenant.

The model learns a correction, in log space, to a simple forecast (this window's plays so
far, the unseen rest of it at the last window's pace), so an untrained model *is* that
forecast and learning can only refine it. Features are the track's trend (this window
against the last, in log plays), how much that trend can be trusted (the trend scaled by
volume: small counts are noisy), and volume itself.

The regressor is River's ``BayesianLinearRegression``: an exact online least-squares fit
with no learning rate to tune (SGD diverged or lagged on this data, see BENCHMARKS.md).
Samples are weighted by √plays (x and y scaled by the square root of the weight), since
forecast errors are counted in plays, where big tracks weigh most.

Training uses delayed labels: when a window closes, the complete window before it is
paired with the plays the closed window got (predict-then-learn). The model scores
itself on each label: its error and the naive forecast's ("next = this window"), as
rolling means.

Drift policy (champion/challenger): ADWIN watches the model's log error. On drift a fresh
challenger regressor starts learning beside the current one; after ``CHALLENGE_MIN``
labels it replaces the champion as soon as its recent error is lower, and it is dropped
if it has not won after ``CHALLENGE_MAX`` labels. A false alarm costs nothing, a real
change of regime is absorbed; resetting outright lost 4-6 points of MAE gain on the
benchmark data; a 2,000-label trial keeps all but ~2 (BENCHMARKS.md).

>>> from workers.core.listening_state import WindowCounts
>>> model = PopularityModel.create()
>>> counts = WindowCounts(plays=10, skips=1, likes=2, shares=0, listeners=8)
>>> round(model.predict_one(current=counts, previous=counts, elapsed=0.5), 6)
15.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from river import drift, linear_model, utils
from river import stats as river_stats

from workers.core.listening_state import WindowCounts
from workers.core.models.protocol import ModelQuality

__all__ = [
    "CHALLENGE_MAX",
    "CHALLENGE_MIN",
    "MAX_CORRECTION",
    "QUALITY_WINDOW",
    "Challenger",
    "PopularityModel",
    "features",
    "rate_extrapolation",
]

#: Largest correction, in log space, the model may apply to the simple forecast (x20).
MAX_CORRECTION = 3.0
QUALITY_WINDOW = 1000
CHALLENGE_MIN = 2000
CHALLENGE_MAX = 5000


def rate_extrapolation(*, current: WindowCounts, previous: WindowCounts, elapsed: float) -> float:
    """The simple forecast: this window so far, the rest of it at the previous window's pace.

    A full window's worth of plays, expected to carry over to the next window.
    """
    elapsed = min(1.0, max(elapsed, 0.0))
    return current.plays + previous.plays * (1.0 - elapsed)


def features(*, current: WindowCounts, previous: WindowCounts, elapsed: float) -> dict[str, float]:
    base = rate_extrapolation(current=current, previous=previous, elapsed=elapsed)
    trend = math.log1p(base) - math.log1p(previous.plays)
    volume = math.log1p(min(base, previous.plays)) / 10.0
    return {"bias": 1.0, "trend": trend, "trend_volume": trend * volume, "volume": volume}


def _rolling_mean() -> utils.Rolling:
    return utils.Rolling(river_stats.Mean(), window_size=QUALITY_WINDOW)


def _regressor() -> linear_model.BayesianLinearRegression:
    return linear_model.BayesianLinearRegression(alpha=1.0, beta=1.0)


def _correction(model: linear_model.BayesianLinearRegression, x: dict[str, float]) -> float:
    correction = float(model.predict_one(x))
    if not math.isfinite(correction):
        return 0.0
    return max(-MAX_CORRECTION, min(MAX_CORRECTION, correction))


@dataclass
class Challenger:
    model: linear_model.BayesianLinearRegression = field(default_factory=_regressor)
    labels: int = 0
    error: Any = field(default_factory=lambda: utils.Rolling(river_stats.Mean(), 500))
    champion_error: Any = field(default_factory=lambda: utils.Rolling(river_stats.Mean(), 500))


@dataclass
class PopularityModel:
    model: linear_model.BayesianLinearRegression
    drift_detector: drift.ADWIN = field(default_factory=drift.ADWIN)
    mae: Any = field(default_factory=_rolling_mean)
    naive_mae: Any = field(default_factory=_rolling_mean)
    challenger: Challenger | None = None
    trained: int = 0
    drifts: int = 0
    promotions: int = 0
    version: str = "blr-residual-v2"

    @classmethod
    def create(cls) -> PopularityModel:
        return cls(model=_regressor())

    def predict_one(
        self, *, current: WindowCounts, previous: WindowCounts, elapsed: float
    ) -> float:
        base = rate_extrapolation(current=current, previous=previous, elapsed=elapsed)
        x = features(current=current, previous=previous, elapsed=elapsed)
        correction = _correction(self.model, x) if self.trained else 0.0
        return max(0.0, math.expm1(math.log1p(base) + correction))

    def explain_one(self, x: Mapping[str, float]) -> list[str]:
        """The forecast features (``features``) that moved the learnt correction most; the
        simple forecast alone until anything is learnt."""
        if not self.trained:
            return ["rate_extrapolation"]
        point = dict(x)
        base = _correction(self.model, point)
        effects = {
            name: abs(base - _correction(self.model, {**point, name: 0.0}))
            for name in point
            if name != "bias"
        }
        return [
            name for name, effect in sorted(effects.items(), key=lambda kv: -kv[1]) if effect > 1e-3
        ]

    def quality(self) -> ModelQuality:
        mae, naive = self.mae.get(), self.naive_mae.get()
        return ModelQuality(
            inputs=self.trained,
            drifts=self.drifts,
            mae=None if mae is None else float(mae),
            naive_mae=None if naive is None else float(naive),
        )

    def learn_one(self, *, current: WindowCounts, previous: WindowCounts, next_plays: int) -> None:
        """One delayed label: a complete window ``current`` and the plays of the one after it."""
        x = features(current=current, previous=previous, elapsed=1.0)
        log_base, log_actual = math.log1p(current.plays), math.log1p(next_plays)
        forecast = self.predict_one(current=current, previous=previous, elapsed=1.0)
        self.mae.update(abs(forecast - next_plays))
        self.naive_mae.update(abs(current.plays - next_plays))
        log_error = abs(math.log1p(forecast) - log_actual)
        self._challenge(x, log_base, log_actual, log_error)
        self.drift_detector.update(log_error)
        if self.drift_detector.drift_detected and self.trained > QUALITY_WINDOW:
            self.drifts += 1
            if self.challenger is None:
                self.challenger = Challenger()
        scale = (current.plays + 1.0) ** 0.25  # sqrt of the weight sqrt(plays + 1)
        weighted = {k: v * scale for k, v in x.items()}
        target = (log_actual - log_base) * scale
        self.model.learn_one(weighted, target)
        if self.challenger is not None:
            self.challenger.model.learn_one(weighted, target)
        self.trained += 1

    def _challenge(
        self, x: dict[str, float], log_base: float, log_actual: float, champion_error: float
    ) -> None:
        challenger = self.challenger
        if challenger is None:
            return
        predicted = log_base + (_correction(challenger.model, x) if challenger.labels else 0.0)
        challenger.error.update(abs(predicted - log_actual))
        challenger.champion_error.update(champion_error)
        challenger.labels += 1
        if challenger.labels >= CHALLENGE_MIN and (
            challenger.error.get() < challenger.champion_error.get()
        ):
            self.model, self.challenger = challenger.model, None
            self.promotions += 1
        elif challenger.labels >= CHALLENGE_MAX:
            self.challenger = None
