"""Account verdicts: is a listener a bot? Decided per account, stable, explained (pure).

Fraud is decided per account, not per event. Each listening event the store applies folds
what the played track's audience looks like into the listener's *account evidence*
(``fold_evidence``; ``listening.lua`` does the same, atomically, with the event):

- **concentration**: the track's plays per distinct listener in its window. A farm's
  accounts replay a small set of target tracks, so those tracks' audiences are a few
  listeners playing them over and over; a human's tracks are mostly heard once by many.
- **track near-30 s share**: the share of the track's plays (by everyone) that stopped just
  past the 30 s royalty threshold: the mark a farm leaves on the tracks it streams.
- **group**: among the concentrated tracks the listener played, the one with the smallest
  hash, a canonical target (as in MinHash): accounts sharing a target set converge to the
  same one, so a farm is reported as a group.

``judge_account`` combines that evidence with the listener's behaviour ranked against the
tenant's recent listeners (the detector's tail ranks: near-30 s share, round-the-clock
hours, volume, skips, likes, diversity) into a score from 0 to 1. The verdict has
hysteresis (it turns on at ``ON`` and off only under ``OFF``) and needs ``MIN_LISTENS``
listens, so it does not flicker event to event; it is published when it changes, when the
score moved by ``MOVE`` since the last one published, when the segment of a listener with
``MIN_LISTENS`` listens changed (``models/segments.py``), and at least once per listener.

>>> e = AccountEvidence()
>>> for _ in range(3):
...     e = fold_evidence(e, WindowCounts(plays=40, listeners=4, near30=30), "t9", 7)
>>> round(e.concentration, 2), round(e.track_near30, 2), e.group
(10.0, 0.75, 't9')
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace

from workers.core.listening_state import WindowCounts

__all__ = [
    "ACCOUNT_VERSION",
    "AccountEvidence",
    "AccountVerdict",
    "fold_evidence",
    "judge_account",
    "track_hash",
]

ACCOUNT_VERSION = "accounts-v1"
#: weight of a new listen in the evidence averages once a listener has 1/ALPHA listens
#: (before that: the plain mean); listening.lua has the same constants
ALPHA = 0.05
#: a track is concentrated (a candidate farm target) from this many plays per listener...
GROUP_CONCENTRATION = 3.0
#: ...heard by at least this many listeners in its window
GROUP_LISTENERS = 3
#: the verdict turns on at ON, off under OFF; never before MIN_LISTENS listens
ON, OFF, MIN_LISTENS = 0.9, 0.85, 20
#: a score this far from the last one published is published again
MOVE = 0.05
#: evidence a farm cannot hide and people rarely show: plays stopped just past 30 s (its
#: own and its tracks'), target tracks replayed by a few accounts, no sleep. Each on its own
#: can make a verdict.
SPECIFIC = ("near_30s_share", "hour_spread", "farm_concentration", "farm_tracks_near_30s")
#: evidence heavy people show too (fans looping an album, sleep music, power listeners):
#: volume, repeats, few skips, no likes. It adds to specific evidence, never replaces it.
GENERAL = (
    "plays_per_hour",
    "skip_rate",
    "engagement",
    "distinct_ratio",
    "top_track_share",
    "repeat_ratio",
)
BEHAVIOUR = tuple(name for name in (*SPECIFIC, *GENERAL) if not name.startswith("farm_"))
#: a piece of evidence is named in ``evidence`` from this level
EXPLAIN = 0.9


def track_hash(track_id: str) -> int:
    """The hash that picks a group's canonical target (stable across processes)."""
    return zlib.crc32(track_id.encode())


@dataclass(frozen=True, slots=True)
class AccountEvidence:
    """What the store keeps per listener for the verdict (fields ``an`` ... ``ap``)."""

    listens: int = 0
    concentration: float = 0.0
    track_near30: float = 0.0
    group: str = ""
    group_hash: int = -1
    #: the verdict last published, "score|is_bot|segment" ("" before the first)
    published: str = ""


def fold_evidence(
    e: AccountEvidence, track: WindowCounts, track_id: str, hashed: int
) -> AccountEvidence:
    """The evidence after one more play or skip of ``track_id`` (its window after it)."""
    n = e.listens + 1
    alpha = max(ALPHA, 1.0 / n)
    concentration = track.plays / track.listeners if track.listeners > 0 else 1.0
    listens = track.plays + track.skips
    near30 = track.near30 / listens if listens > 0 else 0.0
    group, group_hash = e.group, e.group_hash
    if (
        track.listeners >= GROUP_LISTENERS
        and concentration >= GROUP_CONCENTRATION
        and (group_hash < 0 or hashed < group_hash)
    ):
        group, group_hash = track_id, hashed
    return replace(
        e,
        listens=n,
        concentration=e.concentration + alpha * (concentration - e.concentration),
        track_near30=e.track_near30 + alpha * (near30 - e.track_near30),
        group=group,
        group_hash=group_hash,
    )


@dataclass(frozen=True, slots=True)
class AccountVerdict:
    score: float
    is_bot: bool
    #: the evidence at or past ``EXPLAIN``, strongest first
    evidence: list[str]
    #: the farm's canonical target track, when the listener played concentrated tracks
    group: str | None
    #: publish this verdict (it changed, moved, or none was published yet)
    publish: bool
    #: what to store as the last published verdict when it is published
    marker: str
    #: the listener's segment among the tenant's (-1: unknown)
    segment: int = -1


def _farm_evidence(e: AccountEvidence) -> dict[str, float]:
    return {
        # 1.5 plays per listener is an ordinary audience; 5 is a handful replaying it
        "farm_concentration": min(1.0, max(0.0, (e.concentration - 1.5) / 3.5)),
        # ordinary tracks: a few % of plays stop 30-40 s in (skips); a farm's: most of them
        "farm_tracks_near_30s": min(1.0, max(0.0, (e.track_near30 - 0.1) / 0.4)),
    }


def _top_mean(values: list[float], k: int) -> float:
    top = sorted(values, reverse=True)[:k]
    return sum(top) / len(top) if top else 0.0


def judge_account(
    e: AccountEvidence,
    ranks: Mapping[str, float],
    *,
    listens: int,
    warming: bool,
    segment: int = -1,
) -> AccountVerdict:
    """The listener's verdict from its evidence and the detector's tail ``ranks`` of its
    behaviour (``warming``: the detector has not seen enough of the tenant to rank)."""
    evidence = {name: ranks[name] for name in BEHAVIOUR if name in ranks and not warming}
    evidence.update(_farm_evidence(e))
    strongest = sorted(evidence.items(), key=lambda kv: kv[1], reverse=True)
    specific = _top_mean([evidence.get(name, 0.0) for name in SPECIFIC], 2)
    general = _top_mean([evidence.get(name, 0.0) for name in GENERAL], 3)
    raw = max(specific, (specific + general) / 2)
    # little evidence, little confidence: the score leans to the middle until it grows
    confidence = listens / (listens + 3)
    score = round(0.5 + (raw - 0.5) * confidence, 4)
    was_score, _, rest = e.published.partition("|")
    was_bot, _, was_segment = rest.partition("|")
    before = was_bot == "1"
    eligible = listens >= MIN_LISTENS and not warming
    is_bot = eligible and (score >= ON or (before and score >= OFF))
    publish = (
        not e.published
        or is_bot != before
        or abs(score - float(was_score or 0)) >= MOVE
        or (was_segment != str(segment) and listens >= MIN_LISTENS)  # settled: no churn
    )
    return AccountVerdict(
        score=score,
        is_bot=is_bot,
        evidence=[name for name, value in strongest if value >= EXPLAIN],
        group=e.group or None,
        publish=publish,
        marker=f"{score}|{int(is_bot)}|{segment}",
        segment=segment,
    )
