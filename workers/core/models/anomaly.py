"""Online anomaly detection with 0-1 scores, an adaptive threshold and drift handling.

Scores come from a River-style detector: ``HalfSpaceTrees`` on min-max scaled features
(audio), or a tail-rank scorer (listening behaviour, ``tailrank.py``); both lie in 0..1,
higher is more anomalous. The alarm threshold is adaptive: the ``1 - alarm_rate``
quantile of the tenant's recent scores (``calibration.py``), so each tenant alarms on
its own outliers at a known rate whatever the scale of its scores, and ``percentile``
tells where a score stands among them. Ranking uses the score itself (a rank within a
rolling window is not comparable across time). No alarm is raised during a warm-up
period: a fresh model and an empty reference know nothing yet (River's own HST example
shows how poor a fixed threshold on raw scores is).

Drift policy: ADWIN watches the scores. When their distribution shifts, the reference
is cut to the ``rewarm`` most recent scores, so the threshold follows the new normal
within that many inputs instead of raising alarms on every input (or none) for the
length of the old window. Alarms are not suspended meanwhile: a warm-up after every drift
would blind the detector whenever the scores move (HalfSpaceTrees' scores step each time
its reference window rolls over). The models adapt by themselves (trees refresh their
mass profiles every ``WINDOW`` inputs; tail ranks are rolling).

>>> detector = AnomalyDetector.create(seed=1)
>>> verdicts = [detector.step({"a": i % 7 / 7, "b": 0.5}) for i in range(300)]
>>> verdicts[0].warming_up, verdicts[-1].warming_up
(True, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from river import anomaly, drift, preprocessing

from workers.core.models.calibration import ScoreCalibrator
from workers.core.models.protocol import ModelQuality
from workers.core.models.tailrank import TailRankScorer

__all__ = ["HEIGHT", "N_TREES", "WINDOW", "AnomalyDetector", "Verdict"]

#: Sized for storage and restore time (see BENCHMARKS.md): ~30 µs per step, ~170 KB pickled.
N_TREES = 10
HEIGHT = 8
WINDOW = 250


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float  # the model's score, 0..1
    percentile: float  # its rank among the tenant's recent scores, 0..1
    threshold: float  # the adaptive threshold the score was compared with
    is_anomaly: bool
    warming_up: bool
    drift: bool = False


@dataclass
class AnomalyDetector:
    """Score-then-learn detector for one tenant and one kind of input."""

    model: Any
    alarm_rate: float = 0.01
    warmup: int = 200
    rewarm: int = 100
    calibrator: ScoreCalibrator = field(default_factory=ScoreCalibrator)
    drift_detector: drift.ADWIN = field(default_factory=drift.ADWIN)
    seen: int = 0
    drifts: int = 0
    alarms: int = 0
    version: str = f"hst{N_TREES}x{HEIGHT}-cal-v2"

    @classmethod
    def create(
        cls, *, alarm_rate: float = 0.01, warmup: int = 200, seed: int = 42
    ) -> AnomalyDetector:
        model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
            n_trees=N_TREES, height=HEIGHT, window_size=WINDOW, seed=seed
        )
        return cls(model=model, alarm_rate=alarm_rate, warmup=warmup)

    @classmethod
    def create_tail_rank(
        cls,
        directions: Mapping[str, int],
        *,
        top_k: int = 6,
        alarm_rate: float = 0.01,
        warmup: int = 200,
    ) -> AnomalyDetector:
        """A detector on behaviour whose suspicious direction is known (see tailrank.py)."""
        return cls(
            model=TailRankScorer(directions, top_k=top_k),
            alarm_rate=alarm_rate,
            warmup=warmup,
            version=f"tailrank{top_k}-cal-v1",
        )

    def explain_one(self, x: Mapping[str, float], *, level: float = 0.95) -> list[str]:
        """The inputs that drove the score, when the model can tell."""
        explain_one = getattr(self.model, "explain_one", None)
        return list(explain_one(dict(x), level=level)) if explain_one is not None else []

    def quality(self) -> ModelQuality:
        return ModelQuality(
            inputs=self.seen,
            drifts=self.drifts,
            alarms=self.alarms,
            threshold=self.threshold,
            warming_up=self.seen < self.warmup,
        )

    @property
    def threshold(self) -> float:
        """The current alarm threshold on the score (1.0 before any score is known)."""
        value = self.calibrator.quantile(1.0 - self.alarm_rate)
        return 1.0 if value is None else value

    def score_one(self, x: Mapping[str, float]) -> float:
        """The model's score of ``x`` (0..1), without learning it."""
        raw = float(self.model.score_one(dict(x)))
        return min(1.0, max(0.0, raw)) if math.isfinite(raw) else 1.0

    def step(self, x: Mapping[str, float], *, learn: bool = True) -> Verdict:
        """Score ``x`` against what was learnt so far, then learn it (prequential)."""
        verdict = self.judge(x)
        if learn:
            return replace(verdict, drift=self.learn_one(x, verdict.score))
        return verdict

    def judge(self, x: Mapping[str, float]) -> Verdict:
        """Score and classify ``x`` without learning it (``learn`` may follow)."""
        score = self.score_one(x)
        warming_up = self.seen < self.warmup
        threshold = self.threshold
        is_anomaly = (not warming_up) and score > threshold
        self.alarms += int(is_anomaly)
        return Verdict(
            score=score,
            percentile=self.calibrator.rank(score),
            threshold=threshold,
            is_anomaly=is_anomaly,
            warming_up=warming_up,
            drift=False,
        )

    def learn_one(self, x: Mapping[str, float], score: float) -> bool:
        """Learn ``x`` (whose score ``judge`` gave); True when drift was detected."""
        self.calibrator.update(score)
        self.model.learn_one(dict(x))
        self.seen += 1
        self.drift_detector.update(score)
        if self.drift_detector.drift_detected and self.seen > self.warmup:
            self.drifts += 1
            self.calibrator.keep_recent(self.rewarm)
            return True
        return False
