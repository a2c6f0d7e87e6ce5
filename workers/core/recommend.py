"""Recommendations: requests parsed at the boundary, and the hybrid ranking (pure).

Two sources rank candidates. *Content*: tracks whose audio embedding is closest (cosine)
to the subject's. *Collaborative*: tracks played next to the subject in listening
sessions (``core/colisten.py``). Each source's scores are scaled to 0–1 by its best
candidate. The ranking switches on evidence: a track with co-listening evidence is ranked
by it (its sound only breaks ties), a track without any by its sound, discounted by
``CONTENT_WEIGHT``; so content fills the places the listening data cannot (a track nobody
played yet, a weak co-listening tail) without pushing out what listeners actually play
together. An item's ``why`` names the sources that found it. A listener with no plays yet
gets what is popular now (``why: ["popular"]``).

On the recommendation benchmark this beat a linear blend of the two scores on both
generated tenants, and the weight tuned on one held on the other (BENCHMARKS.md).

For a listener, the seeds are their latest plays, newest first, each weighing
``RECENCY`` times the one after it; the seeds themselves are never recommended.

>>> [item.id for item in hybrid([("a", 0.9), ("b", 0.5)], [("b", 3.0), ("c", 1.0)], k=3)]
['b', 'c', 'a']
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from workers.core.errors import Reason, Rejected
from workers.core.schemas import json_input
from workers.core.tenants import is_valid_id

__all__ = [
    "CONTENT_WEIGHT",
    "MAX_REQUEST_BYTES",
    "RECENCY",
    "Item",
    "Request",
    "hybrid",
    "merge_seeds",
    "parse_request",
    "popular_items",
]

MAX_REQUEST_BYTES = 16 * 1024
DEFAULT_K = 10
#: what a track found by its sound alone is worth against co-listening evidence (tuned on
#: the recommendation benchmark's "sessions" tenant, reported on its "playlists" one)
CONTENT_WEIGHT = 0.3
#: how much sound counts among tracks with co-listening evidence (it breaks ties)
TIE_BREAK = 0.01
RECENCY = 0.85
#: seeds (latest plays) a listener's recommendations start from
SEEDS = 10

Ranked = Sequence[tuple[str, float]]


@dataclass(frozen=True, slots=True)
class Request:
    request_id: str
    tenant: str
    k: int
    #: "track", "stream" or "user"
    kind: str
    subject: str


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    score: float
    why: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "score": round(self.score, 4), "why": list(self.why)}


def parse_request(value: bytes | None, *, key: bytes | None) -> Request:
    """Decode and validate one request (dead-letter reasons as for any input)."""
    body = json_input(
        value, schema="recommend.request", max_bytes=MAX_REQUEST_BYTES, what="request"
    )
    kind, subject = next(
        (kind, body[field])
        for kind, field in (("track", "track_id"), ("stream", "stream"), ("user", "user_id"))
        if field in body
    )
    for field, text in (("request_id", body["request_id"]), (kind, subject)):
        if not is_valid_id(text):
            raise Rejected(Reason.SCHEMA_INVALID, f"{field}: {text!r} is not a valid id")
    expected_key = f"{body['tenant']}/{body['request_id']}"
    if key is None or key != expected_key.encode():
        raise Rejected(Reason.BAD_KEY, f"key must be {expected_key!r}")
    return Request(body["request_id"], body["tenant"], int(body.get("k", DEFAULT_K)), kind, subject)


def _scaled(ranked: Ranked) -> dict[str, float]:
    best = max((score for _, score in ranked), default=0.0)
    if best <= 0:
        return {}
    return {item: max(score, 0.0) / best for item, score in ranked if score > 0}


def merge_seeds(lists: Sequence[Ranked]) -> list[tuple[str, float]]:
    """Co-listened tracks of several seeds (newest first) as one ranking: each seed's
    list scaled by its best, weighted ``RECENCY^i``, summed.

    >>> merge_seeds([[("x", 4.0)], [("x", 1.0), ("y", 2.0)]])
    [('x', 1.425), ('y', 0.85)]
    """
    total: dict[str, float] = {}
    for i, ranked in enumerate(lists):
        weight = RECENCY**i
        for item, score in _scaled(ranked).items():
            total[item] = total.get(item, 0.0) + weight * score
    return sorted(((i, round(s, 6)) for i, s in total.items()), key=lambda kv: (-kv[1], kv[0]))


def hybrid(
    content: Ranked,
    collaborative: Ranked,
    *,
    k: int,
    exclude: Collection[str] = (),
    content_weight: float = CONTENT_WEIGHT,
) -> list[Item]:
    """The ``k`` best items of both sources, ``exclude`` left out: ranked by co-listening
    where there is any, by sound (times ``content_weight``) where there is none."""
    by_content, by_plays = _scaled(content), _scaled(collaborative)
    items = []
    for item in by_content.keys() | by_plays.keys():
        if item in exclude:
            continue
        c, g = by_content.get(item, 0.0), by_plays.get(item, 0.0)
        why = tuple(name for name, s in (("content", c), ("collaborative", g)) if s > 0)
        score = (1.0 - TIE_BREAK) * g + TIE_BREAK * c if g > 0 else content_weight * c
        items.append(Item(item, score, why))
    items.sort(key=lambda it: (-it.score, it.id))
    return items[:k]


def popular_items(popular: Ranked, *, k: int, exclude: Collection[str] = ()) -> list[Item]:
    """What is popular now, for a subject nothing is known of."""
    scaled = _scaled(popular)
    ranked = sorted(scaled.items(), key=lambda kv: (-kv[1], kv[0]))
    return [Item(i, s, ("popular",)) for i, s in ranked if i not in exclude][:k]
