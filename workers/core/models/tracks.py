"""Track verdicts: is a track being pushed by artificial streams? (pure)

What farms cannot hide when each account looks human is what they do to their targets: a
target's listens end just past 30 s, come from a few listeners playing it over and over
(concentration) or for whom it is most of what they play (a thin audience), from listeners
judged suspicious, and in bursts. A track's features (``behaviour.track_features``, 24 h
decayed) are ranked against the tenant's reference of established tracks and combined like
a listener's (``verdict.combine``). ``artificial_share`` estimates the share of its listens
that are artificial: its listens' suspicion (each weighted by its listener's score above
0.5) over its listens.

It is flagged (``is_suspicious``) from a score of ``ON`` when at least ``MIN_SHARE`` of its
listens come from accounts judged bots (a farm's camouflage tracks are played artificially
too, but they are not what it pushes). Published on ``predictions.tracks`` (a changelog
keyed by track) when the verdict changes or moves by ``MOVE``, and once per track with
``MIN_LISTENS`` listens.

>>> from workers.core.models.reference import Rank
>>> calm = {f.name: Rank(300, 1000, 0.1) for f in TRACK_FEATURES}
>>> x = {f.name: 0.1 for f in TRACK_FEATURES}
>>> judge_track("", x, calm, listens=50.0, suspicion=0.0).is_suspicious
False
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from workers.core.behaviour import TRACK_FEATURES
from workers.core.models.reference import Rank, warming
from workers.core.models.verdict import combine

__all__ = ["TRACK_VERSION", "TrackVerdict", "judge_track"]

TRACK_VERSION = "tracks-v1"
ON, OFF, MIN_LISTENS, MOVE = 0.75, 0.7, 5.0, 0.05
#: a track is judged pushed only when this share of its listens comes from accounts judged
#: bots: a farm's camouflage tracks get artificial plays too, without being its targets
MIN_SHARE = 0.25
MIN_REFERENCE = 30


@dataclass(frozen=True, slots=True)
class TrackVerdict:
    score: float
    is_suspicious: bool
    artificial_share: float
    evidence: list[str]
    publish: bool
    marker: str
    warming: bool


def judge_track(
    published: str,
    x: Mapping[str, float],
    ranks: Mapping[str, Rank],
    *,
    listens: float,
    suspicion: float,
) -> TrackVerdict:
    """``published``: the verdict last published ("score|flag", "" before the first);
    ``listens`` and ``suspicion``: the track's decayed listens and suspicion mass."""
    cold = warming(ranks, MIN_REFERENCE)
    combined = combine(TRACK_FEATURES, x, ranks)
    score = 0.0 if cold else combined.score
    was_score, _, was_flag = published.partition("|")
    before = was_flag == "1"
    share = round(min(1.0, suspicion / listens), 4) if listens > 0 else 0.0
    eligible = listens >= MIN_LISTENS and not cold and share >= MIN_SHARE
    flag = eligible and (score >= ON or (before and score >= OFF))
    publish = (
        listens >= MIN_LISTENS
        and not cold
        and (not published or flag != before or abs(score - float(was_score or 0)) >= MOVE)
    )
    return TrackVerdict(
        score=score,
        is_suspicious=flag,
        artificial_share=share,
        evidence=combined.evidence,
        publish=publish,
        marker=f"{score}|{int(flag)}",
        warming=cold,
    )
