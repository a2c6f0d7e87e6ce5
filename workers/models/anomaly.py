"""Online anomaly detection with a calibrated, adaptive threshold.

Scores come from River's ``HalfSpaceTrees`` on min-max scaled features (0..1, higher
is more anomalous). The alarm threshold is a running quantile of the tenant's own
past scores, and no alarm is raised during a warm-up period: a fixed threshold is
either silent or noisy depending on the data (River's own HST example shows it).

>>> detector = AnomalyDetector.create(seed=1)
>>> verdicts = [detector.step({"a": i % 7 / 7, "b": 0.5}) for i in range(300)]
>>> verdicts[0].warming_up, verdicts[-1].warming_up
(True, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from river import anomaly, compose, preprocessing, stats

#: Sized for storage and restore time (see BENCHMARKS.md): ~30 µs per step, ~170 KB pickled.
N_TREES = 10
HEIGHT = 8
WINDOW = 250


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float
    threshold: float
    is_anomaly: bool
    warming_up: bool


@dataclass
class AnomalyDetector:
    """Score-then-learn detector for one tenant and one kind of input."""

    model: compose.Pipeline
    threshold: stats.Quantile
    quantile: float
    warmup: int
    seen: int = 0
    version: str = f"hst{N_TREES}x{HEIGHT}-v1"

    @classmethod
    def create(
        cls, *, quantile: float = 0.99, warmup: int = 200, seed: int = 42
    ) -> AnomalyDetector:
        model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
            n_trees=N_TREES, height=HEIGHT, window_size=WINDOW, seed=seed
        )
        return cls(
            model=model, threshold=stats.Quantile(quantile), quantile=quantile, warmup=warmup
        )

    def score(self, x: Mapping[str, float]) -> float:
        raw = float(self.model.score_one(dict(x)))
        return min(1.0, max(0.0, raw)) if math.isfinite(raw) else 1.0

    def step(self, x: Mapping[str, float], *, learn: bool = True) -> Verdict:
        """Score ``x`` against what was learnt so far, then learn it (prequential)."""
        score = self.score(x)
        warming_up = self.seen < self.warmup
        threshold = self.threshold.get()
        threshold = 1.0 if threshold is None else float(threshold)
        is_anomaly = (not warming_up) and score > threshold
        if learn:
            self.threshold.update(score)
            self.model.learn_one(dict(x))
            self.seen += 1
        return Verdict(
            score=score, threshold=threshold, is_anomaly=is_anomaly, warming_up=warming_up
        )
