"""A listener's and a track's features, from their state (pure; ``lua/features.lua`` is the
same in the store). Each feature is oriented so that higher looks more artificial, and
belongs to a group of features that measure the same behaviour (docs/models.md).

>>> from workers.core.listening_state import UserState
>>> x = listener_features(UserState(plays=10, near30=9, first_ts=0, last_ts=3_600_000,
...                                 hours=(10,) + (0,) * 23, distinct_tracks=3),
...                       ListenerEvidence(k=10.0, r=9.0))
>>> x["near30"], x["repeat"], x["few_skips"]
(0.9, 0.7777777777777778, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from workers.core.listening_state import UserState
from workers.core.models.evidence import ListenerEvidence, TrackEvidence
from workers.core.models.verdict import Feature

__all__ = [
    "LISTENER_FEATURES",
    "TRACK_FEATURES",
    "listener_features",
    "shrink",
    "track_features",
]

#: what a listener is judged on, in the store's order (docs/models.md)
LISTENER_FEATURES: tuple[Feature, ...] = (
    Feature("near30", "royalty"),
    Feature("track_near30", "farm", prior=2.0),
    Feature("track_concentration", "farm", prior=2.0),
    Feature("track_thin", "farm", prior=2.0),
    Feature("track_suspicion", "association", support=True, prior=2.0),
    Feature("sync", "sync", prior=2.0),
    Feature("hour_spread", "no-sleep"),
    Feature("volume", "volume", support=True),
    Feature("repeat", "repetition", support=True),
    Feature("top_share", "repetition", support=True),
    Feature("few_skips", "engagement", support=True),
    Feature("no_likes", "engagement", support=True),
)
#: the features measured over the listener's tracks (their evidence count is ``k``)
TRACK_DERIVED = frozenset(f.name for f in LISTENER_FEATURES if f.prior == 2.0)

#: what a track is judged on
TRACK_FEATURES: tuple[Feature, ...] = (
    Feature("near30", "royalty"),
    Feature("concentration", "farm"),
    Feature("thin", "farm"),
    Feature("suspicion", "suspicion"),
    Feature("sync", "sync"),
)


def _hour_spread(hours: tuple[int, ...]) -> float:
    total = sum(hours)
    if not total:
        return 0.0
    entropy = 0.0
    for h in hours:
        if h:
            entropy -= (h / total) * math.log(h / total)
    return entropy / math.log(24)


def listener_features(user: UserState, e: ListenerEvidence) -> dict[str, float]:
    """The listener's features, as measured (not yet shrunk)."""
    n = user.plays + user.skips
    span_h = max(1.0, (user.last_ts - user.first_ts) / 3_600_000)
    w = e.w if e.w > 0 else 1.0

    def share(count: float) -> float:
        return count / n if n > 0 else 0.0

    return {
        "near30": e.r / e.k if e.k > 0 else 0.0,
        "track_near30": e.n / w,
        "track_concentration": e.c / w,
        "track_thin": e.t / w,
        "track_suspicion": e.s / w,
        "sync": e.y / w,
        "hour_spread": _hour_spread(user.hours),
        "volume": n / span_h,
        "repeat": max(0, n - user.distinct_tracks) / max(1, n - 1),
        "top_share": share(user.top_track),
        "few_skips": 1.0 - share(user.skips),
        "no_likes": 1.0 - min(1.0, (user.likes + user.shares) / max(1, n)),
    }


def track_features(t: TrackEvidence) -> dict[str, float]:
    p = t.p if t.p > 0 else 1.0
    q = t.q if t.q > 0 else 1.0
    return {
        "near30": t.n / p,
        "concentration": math.log(max(1.0, t.p / max(t.arrivals, 1e-9))),
        "thin": t.t / q,
        "suspicion": t.h / q,
        "sync": t.y / p,
    }


def shrink(
    x: Mapping[str, float],
    means: Mapping[str, float],
    spec: tuple[Feature, ...],
    *,
    observed: Mapping[str, float],
) -> dict[str, float]:
    """Each value pulled toward the reference mean by its feature's prior, in pseudo-
    observations: ``(n x + prior mean) / (n + prior)``, ``n`` from ``observed``."""
    out = {}
    for f in spec:
        n = observed[f.name]
        out[f.name] = (n * x[f.name] + f.prior * means[f.name]) / (n + f.prior)
    return out
