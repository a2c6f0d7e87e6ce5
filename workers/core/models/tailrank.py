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

__all__ = ["TailRankScorer"]


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
