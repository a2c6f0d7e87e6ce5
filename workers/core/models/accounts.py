"""Account verdicts: is a listener a bot? Decided per account, stable, explained (pure).

The listener's features (``behaviour.listener_features``: their own behaviour and what the
tracks they play look like, over 24 h) are shrunk toward the tenant's typical listener and
ranked against the tenant's reference of established listeners (``reference.Reference``),
all in the store's atomic step; here the ranks become a verdict
(``verdict.combine``: one extreme signal or two moderate ones convict, support evidence
never does; docs/models.md).

A listener in a *group* (a canonical target track shared with other accounts that play it
in bursts) is also judged through it: when a third or more of their listening is in bursts,
the group track's own verdict joins the convicting evidence, so a member with few plays of
their own is judged by their group.

The verdict has hysteresis (on at ``ON``, off under ``OFF``) and needs ``MIN_LISTENS``
listens; it is published when it changes, when the score moved by ``MOVE`` since the last
one published, when the segment of a settled listener changed, and at least once per
listener, and when the group it shows changes. It is remembered as published
("score|is_bot|segment|group") only once the broker acknowledged it.

>>> from workers.core.models.reference import Rank
>>> calm = {f.name: Rank(300, 1000, 0.1) for f in LISTENER_FEATURES}
>>> x = {f.name: 0.1 for f in LISTENER_FEATURES}
>>> judge_account(AccountEvidence(listens=40), x, calm).is_bot
False
>>> blatant = {**calm, "near30": Rank(0, 1000, 0.05, threshold=0.2, excess=0.04)}
>>> v = judge_account(AccountEvidence(listens=40), {**x, "near30": 0.95}, blatant)
>>> v.is_bot, v.evidence  # the same few tracks left just past 30 s, again and again
(True, ['near30'])
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from workers.core.behaviour import LISTENER_FEATURES
from workers.core.models.evidence import AccountEvidence
from workers.core.models.reference import Rank, warming
from workers.core.models.verdict import combine, p_of_score

__all__ = [
    "ACCOUNT_VERSION",
    "MIN_REFERENCE",
    "AccountVerdict",
    "judge_account",
    "member_hash",
    "track_hash",
]

ACCOUNT_VERSION = "accounts-v3"
#: the verdict turns on at ON, off under OFF; never before MIN_LISTENS listens
ON, OFF, MIN_LISTENS = 0.75, 0.7, 5
#: a score this far from the last one published is published again
MOVE = 0.05
#: no verdict until the tenant's reference holds this many listeners
MIN_REFERENCE = 50
#: the share of a listener's listening in bursts from which their group judges them too
GROUP_SHARE = 1 / 3


def member_hash(text: str) -> int:
    """A stable 52-bit hash (exact in a double: a sorted set's score): the reference's
    bottom-k sampling and a group's canonical target."""
    return int(hashlib.blake2b(text.encode(), digest_size=8).hexdigest(), 16) >> 12


def track_hash(track_id: str) -> int:
    """The hash that picks a group's canonical target (stable across processes)."""
    return member_hash(track_id)


@dataclass(frozen=True, slots=True)
class AccountVerdict:
    score: float
    is_bot: bool
    #: the evidence that drove it, strongest first
    evidence: list[str]
    #: the listener's group (its canonical target track), when they play in bursts
    group: str | None
    #: publish this verdict (it changed, moved, or none was published yet)
    publish: bool
    #: what to store as the last published verdict when it is published
    marker: str
    #: p-value per feature (1 - it is the feature's percentile among the reference)
    p: dict[str, float]
    warming: bool
    segment: int = -1


def judge_account(
    e: AccountEvidence,
    x: Mapping[str, float],
    ranks: Mapping[str, Rank],
    *,
    sync: float = 0.0,
    segment: int = -1,
) -> AccountVerdict:
    """The listener's verdict from their shrunk features ``x`` ranked as ``ranks``;
    ``sync``: the share of their listening in bursts (their group's say)."""
    cold = warming(ranks, MIN_REFERENCE)
    extra: dict[str, float] = {}
    group_score = _score(e.group_marker)
    if e.group and group_score is not None and sync >= GROUP_SHARE:
        extra["group"] = p_of_score(group_score)
    combined = combine(LISTENER_FEATURES, x, ranks, extra=extra)
    score = 0.0 if cold else combined.score
    was_score, was_bot, was_segment, was_group = (e.published.split("|", 3) + [""] * 4)[:4]
    before = was_bot == "1"
    eligible = e.listens >= MIN_LISTENS and not cold
    is_bot = eligible and (score >= ON or (before and score >= OFF))
    group = e.group if (is_bot or sync >= GROUP_SHARE) else ""
    publish = (
        not e.published
        or is_bot != before
        or abs(score - _number(was_score)) >= MOVE
        or group != was_group
        or (was_segment != str(segment) and e.listens >= 20)  # settled: no churn
    )
    return AccountVerdict(
        score=score,
        is_bot=is_bot,
        evidence=combined.evidence,
        group=group or None,
        publish=publish,
        marker=f"{score}|{int(is_bot)}|{segment}|{group}",
        p=combined.per_feature,
        warming=cold,
        segment=segment,
    )


def _number(text: str) -> float:
    try:
        return float(text) if text else 0.0
    except ValueError:
        return 0.0


def _score(marker: str) -> float | None:
    head = marker.partition("|")[0]
    try:
        return float(head) if head else None
    except ValueError:
        return None
