"""A River-style anomaly detector for behaviour whose suspicious direction is known.

Each feature is ranked among the tenant's recent values in the direction that looks
like abuse (more plays per hour, fewer skips, fewer distinct tracks, ...). The score is
the mean of the ``top_k`` most extreme ranks: one odd habit is common among people, six
at once are not. Unlike a density model (HalfSpaceTrees), it is not fooled when a bot
farm is big enough to be a dense cluster of its own, and it explains itself: the reasons
are the features ranked most extreme (BENCHMARKS.md compares both).

>>> scorer = TailRankScorer({"a": 1, "b": -1}, top_k=2, window=100)
>>> for i in range(100):
...     scorer.learn_one({"a": i / 100, "b": i / 100})
>>> scorer.score_one({"a": 0.995, "b": 0.0})  # past every recent a, and b as low as any
0.9975
>>> scorer.explain_one({"a": 0.995, "b": 0.5}, level=0.9)
['a']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from workers.core.models.calibration import ScoreCalibrator
from workers.core.models.protocol import ModelQuality

__all__ = ["RankDetector", "RankVerdict", "TailRankScorer"]


@dataclass
class TailRankScorer:
    directions: Mapping[str, int]
    top_k: int = 6
    window: int = 1000
    ranks: dict[str, ScoreCalibrator] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.directions = dict(self.directions)
        for name in self.directions:
            self.ranks.setdefault(name, ScoreCalibrator(window=self.window))

    def _tail_ranks(self, x: Mapping[str, float]) -> dict[str, float]:
        return {
            name: self.ranks[name].rank(sign * float(x[name]))
            for name, sign in self.directions.items()
            if name in x
        }

    def score_one(self, x: Mapping[str, float]) -> float:
        ranks = sorted(self._tail_ranks(x).values(), reverse=True)[: self.top_k]
        return sum(ranks) / len(ranks) if ranks else 0.0

    def learn_one(self, x: Mapping[str, float]) -> None:
        for name, sign in self.directions.items():
            if name in x:
                self.ranks[name].update(sign * float(x[name]))

    def explain_one(self, x: Mapping[str, float], *, level: float = 0.95) -> list[str]:
        """The features at or past ``level`` in their suspicious tail, most extreme first."""
        ranked = sorted(self._tail_ranks(x).items(), key=lambda item: item[1], reverse=True)
        return [name for name, rank in ranked if rank >= level]


@dataclass(frozen=True, slots=True)
class RankVerdict:
    """A listener judged against the tenant's recent listeners."""

    score: float
    percentile: float
    threshold: float
    is_anomaly: bool
    warming_up: bool
    #: each feature's rank in its suspicious tail (0..1), in ``directions`` order
    ranks: dict[str, float]


@dataclass
class RankDetector:
    """Tail-rank scoring with an adaptive threshold: what the store keeps per tenant.

    The rank windows of every feature and of the scores, a warm-up count and the alarms;
    ``state/lua/detector.lua`` is the same computation in Lua, run by the listening script
    against windows kept in Redis, so the tenant has one detector whichever worker scores.
    No drift detector: the rolling windows follow a change within ``window`` inputs.
    """

    directions: Mapping[str, int]
    top_k: int = 6
    window: int = 1000
    alarm_rate: float = 0.05
    warmup: int = 200
    scorer: TailRankScorer = field(init=False)
    calibrator: ScoreCalibrator = field(init=False)
    seen: int = 0
    alarms: int = 0
    version: str = "tailrank6-store-v2"

    def __post_init__(self) -> None:
        self.directions = dict(self.directions)
        self.scorer = TailRankScorer(self.directions, top_k=self.top_k, window=self.window)
        self.calibrator = ScoreCalibrator(window=self.window)

    def judge(self, x: Mapping[str, float]) -> RankVerdict:
        ranks = self.scorer._tail_ranks(x)
        score = self.scorer.score_one(x)
        threshold = self.calibrator.quantile(1.0 - self.alarm_rate)
        warming = self.seen < self.warmup
        limit = 1.0 if threshold is None else threshold
        return RankVerdict(
            score=score,
            percentile=self.calibrator.rank(score),
            threshold=limit,
            is_anomaly=(not warming) and score > limit,
            warming_up=warming,
            ranks=ranks,
        )

    def learn_one(self, x: Mapping[str, float], verdict: RankVerdict) -> None:
        self.calibrator.update(verdict.score)
        self.scorer.learn_one(x)
        self.seen += 1
        self.alarms += int(verdict.is_anomaly)

    def explain_one(self, x: Mapping[str, float], *, level: float = 0.95) -> list[str]:
        return self.scorer.explain_one(x, level=level)

    def quality(self) -> ModelQuality:
        return ModelQuality(
            inputs=self.seen,
            drifts=0,
            alarms=self.alarms,
            threshold=self.judge({}).threshold,
            warming_up=self.seen < self.warmup,
        )
