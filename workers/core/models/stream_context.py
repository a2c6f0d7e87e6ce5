"""An audio stream judged against its own recent past: the audio anomaly model.

What is anomalous in audio depends on the stream: dead air in the middle of a loud live set
is, a quiet intro is not, and a jazz stream and a techno stream have nothing to learn from
each other's spectra. So each stream keeps its own model, in its own state: exponentially
weighted means and variances of its features (a span of ``SPAN`` chunks, exact running
moments before that), and the recent scores that set its alarm threshold. The state is
saved with the stream's framing state after every chunk, atomically with the chunk's
outputs (``save_stream``), so it follows the stream's partition from worker to worker and
every chunk is learnt exactly once.

A chunk's score: each feature's deviation from the stream's recent mean, in recent standard
deviations (a floor keeps a flat feature from dividing by zero); the mean of the ``TOP_K``
largest deviations, squashed into 0..1. The alarm threshold is the stream's own adaptive
quantile, after a warm-up of ``WARMUP`` chunks, and never below ``ALARM_FLOOR``.

>>> import numpy as np
>>> context = StreamContext.empty(3)
>>> for i in range(40):
...     x = np.array([1.0, 2.0, 3.0]) + 0.01 * (i % 5)
...     context.learn_one(x, context.judge(x).score)
>>> context.judge(np.array([1.02, 2.02, 3.02])).is_anomaly
False
>>> context.judge(np.array([1.02, 9.0, 3.02])).is_anomaly
True
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from workers.core.models.protocol import ModelQuality

__all__ = [
    "SCORES_KEPT",
    "SPAN",
    "TOP_K",
    "WARMUP",
    "ContextVerdict",
    "StreamContext",
    "dump_context",
    "load_context",
]

Floats = npt.NDArray[np.float64]

#: chunks the moments remember (about 30 s of 0.5 s chunks)
SPAN = 64
#: the most deviant features that make the score
TOP_K = 3
#: chunks learnt before the stream may alarm
WARMUP = 20
#: recent scores the threshold is taken from
SCORES_KEPT = 128
#: deviations are counted in standard deviations of at least this share of the feature's
#: recent magnitude (plus an absolute floor): a feature that never moved does not make a
#: tiny wobble look like an alarm
RELATIVE_FLOOR = 0.05
ABSOLUTE_FLOOR = 1e-3
#: a deviation of this many standard deviations scores 1 - 1/e (0.63)
SCALE = 4.0
#: no alarm below this score (top deviations of ~2.8 standard deviations), however steady
#: the stream: its own quantile alone would flag the top ``alarm_rate`` of a perfect stream
ALARM_FLOOR = 0.5
VERSION = "stream-context-v2"


@dataclass(frozen=True, slots=True)
class ContextVerdict:
    score: float
    percentile: float
    threshold: float
    is_anomaly: bool
    warming_up: bool
    #: each feature's deviation, in standard deviations
    deviations: Floats


@dataclass
class StreamContext:
    """The moments of a stream's features and its recent scores (≈2.5 KB serialised)."""

    n: int
    mean: Floats
    var: Floats
    scores: Floats  # the last SCORES_KEPT scores
    alarms: int = 0
    alarm_rate: float = 0.02
    #: the features' names, in the order of ``mean`` (not stored: the code knows them)
    names: tuple[str, ...] = ()
    version: str = VERSION

    @classmethod
    def empty(
        cls, width: int, *, alarm_rate: float = 0.02, names: tuple[str, ...] = ()
    ) -> StreamContext:
        return cls(
            n=0,
            mean=np.zeros(width),
            var=np.zeros(width),
            scores=np.zeros(0),
            alarm_rate=alarm_rate,
            names=names or tuple(f"x{i}" for i in range(width)),
        )

    def deviations(self, x: Floats) -> Floats:
        spread = np.sqrt(self.var) + RELATIVE_FLOOR * np.abs(self.mean) + ABSOLUTE_FLOOR
        out: Floats = np.abs(np.asarray(x, dtype=np.float64) - self.mean) / spread
        return out

    def judge(self, x: Floats) -> ContextVerdict:
        warming = self.n < WARMUP
        if self.n == 0:
            deviations = np.zeros(len(self.mean))
            score = 0.0
        else:
            deviations = self.deviations(x)
            top = np.sort(deviations)[-TOP_K:]
            score = 1.0 - math.exp(-float(top.mean()) / SCALE)
        if self.scores.size:
            ordered = np.sort(self.scores)
            index = min(ordered.size - 1, int((1.0 - self.alarm_rate) * ordered.size))
            threshold = float(ordered[index])
            below = np.searchsorted(ordered, score, side="left")
            ties = np.searchsorted(ordered, score, side="right") - below
            percentile = float((below + 0.5 * ties) / ordered.size)
        else:
            threshold, percentile = 1.0, 0.0
        return ContextVerdict(
            score=score,
            percentile=percentile,
            threshold=threshold,
            is_anomaly=(not warming) and score > max(threshold, ALARM_FLOOR),
            warming_up=warming,
            deviations=deviations,
        )

    def learn_one(self, x: Floats, score: float) -> None:
        """Learn a chunk without a measured fault (and the score it had)."""
        x = np.asarray(x, dtype=np.float64)
        self.n += 1
        weight = 1.0 / min(self.n, SPAN)
        delta = x - self.mean
        self.mean = self.mean + weight * delta
        self.var = (1.0 - weight) * (self.var + weight * delta * delta)
        if self.n > 1:
            self.scores = np.append(self.scores, score)[-SCORES_KEPT:]

    def explain_one(self, x: Floats) -> list[str]:
        """The features at least 3 standard deviations from the stream's recent mean."""
        if self.n == 0:
            return []
        deviations = self.deviations(x)
        order = np.argsort(-deviations, kind="stable")
        return [self.names[i] for i in order if deviations[i] >= 3.0]

    def quality(self) -> ModelQuality:
        threshold = self.judge(self.mean).threshold if self.scores.size else None
        return ModelQuality(
            inputs=self.n,
            drifts=0,
            alarms=self.alarms,
            threshold=threshold,
            warming_up=self.n < WARMUP,
        )


_HEADER = struct.Struct("<B q q i i d")  # format, n, alarms, width, scores kept, alarm rate
_FORMAT = 1


def dump_context(context: StreamContext) -> bytes:
    width, kept = len(context.mean), context.scores.size
    header = _HEADER.pack(_FORMAT, context.n, context.alarms, width, kept, context.alarm_rate)
    arrays = (context.mean, context.var, context.scores)
    return header + b"".join(np.asarray(a, dtype="<f8").tobytes() for a in arrays)


def load_context(blob: bytes, *, names: tuple[str, ...] = ()) -> StreamContext:
    fmt, n, alarms, width, kept, alarm_rate = _HEADER.unpack_from(blob)
    if fmt != _FORMAT:
        raise ValueError(f"stream context format {fmt} is not {_FORMAT}")
    offset = _HEADER.size
    arrays = []
    for size in (width, width, kept):
        arrays.append(np.frombuffer(blob, dtype="<f8", count=size, offset=offset).copy())
        offset += size * 8
    mean, var, scores = arrays
    if names and width != len(names):  # saved before the features changed: learn anew
        return StreamContext.empty(len(names), alarm_rate=alarm_rate, names=names)
    return StreamContext(
        n=n,
        mean=mean,
        var=var,
        scores=scores,
        alarms=alarms,
        alarm_rate=alarm_rate,
        names=names or tuple(f"x{i}" for i in range(width)),
    )
