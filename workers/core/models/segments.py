"""Listener segments: an online k-means per tenant over the listeners' behaviour ranks.

River's ``cluster.KMeans`` rule (``learn_predict_one``): a listener joins the nearest of
``k`` centres (Euclidean), and that centre moves ``halflife`` of the way to them. Its
inputs are where the listener's features stand among the tenant's reference listeners
(``behaviour.LISTENER_FEATURES``: twelve numbers in 0..1, each the share of reference
listeners below them: stops just past 30 s, what their tracks look like, bursts, hour
spread, volume, repeats, skips, engagement), so the segments are behaviour profiles
relative to the tenant (heavy and light listeners, skippers, repeaters, round-the-clock
accounts…), learnt on the stream, one model per tenant.

The centres start at fixed, spread-out points (River draws them at random; a fixed start
lets every worker and the Redis script compute the same), and only the first event of a
record teaches them. ``listening.lua`` keeps this model in Redis (``lua/segments.lua``);
this class is its reference, checked against River's and against the script.

>>> s = Segmenter(k=3, halflife=0.5, dims=2)
>>> s.learn_predict_one([0.9, 0.9]), [round(v, 3) for v in s.centres[2]]
(2, [0.627, 0.834])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["HALFLIFE", "SEGMENTS", "Segmenter", "initial_centre"]

SEGMENTS = 6
HALFLIFE = 0.02
_GOLDEN = 0.6180339887498949
_SQRT2 = 0.4142135623730951


def initial_centre(i: int, dims: int) -> list[float]:
    """Centre ``i``'s starting point: a low-discrepancy sequence inside the unit cube.

    >>> [round(v, 3) for v in initial_centre(0, 3)]
    [0.118, 0.532, 0.946]
    """
    return [(0.5 + (i + 1) * _GOLDEN + f * _SQRT2) % 1.0 for f in range(dims)]


@dataclass
class Segmenter:
    k: int = SEGMENTS
    halflife: float = HALFLIFE
    dims: int = 10
    centres: list[list[float]] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.centres:
            self.centres = [initial_centre(i, self.dims) for i in range(self.k)]
            self.counts = [0] * self.k

    def predict_one(self, x: Sequence[float]) -> int:
        def distance(i: int) -> float:
            return sum((a - b) * (a - b) for a, b in zip(self.centres[i], x, strict=True))

        return min(range(self.k), key=distance)

    def learn_predict_one(self, x: Sequence[float]) -> int:
        closest = self.predict_one(x)
        centre = self.centres[closest]
        for f, value in enumerate(x):
            centre[f] += self.halflife * (value - centre[f])
        self.counts[closest] += 1
        return closest
