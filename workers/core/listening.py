"""Listening events: parsing, validation, and behavioural features (pure).

>>> event = parse_event(b'{"event_id":"e1","tenant":"acme","user_id":"u1","track_id":"t1",'
...                     b'"type":"play","ts":1764000000000,"ms_played":31000}', key=b"acme/u1")
>>> to_update(event, window_s=3600).near_30s
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import orjson

from workers.core.errors import Reason, Rejected
from workers.core.eventtime import check_ts
from workers.core.eventtime import now_ms as clock_ms
from workers.core.models.popularity import WindowCounts
from workers.core.schemas import SCHEMAS
from workers.core.tenants import is_valid_id
from workers.state.store import ListeningUpdate, UserState

MAX_EVENT_BYTES = 64 * 1024
#: Royalty threshold and the band just past it that bot farms aim for.
ROYALTY_MS = 30_000
NEAR_30S_BAND_MS = 10_000
COMPLETION_SHARE = 0.9


@dataclass(frozen=True, slots=True)
class ListeningEvent:
    event_id: str
    tenant: str
    user_id: str
    track_id: str
    type: str
    ts: int
    ms_played: int | None = None
    track_ms: int | None = None


def parse_event(
    value: bytes | None, *, key: bytes | None, now_ms: int | None = None
) -> ListeningEvent:
    """Decode and validate one event; ``now_ms`` (default: the clock) bounds future ``ts``."""
    if not value:
        raise Rejected(Reason.EMPTY_VALUE, "listening event has no value")
    if len(value) > MAX_EVENT_BYTES:
        raise Rejected(Reason.OVERSIZED, f"{len(value)} bytes exceeds {MAX_EVENT_BYTES}")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise Rejected(Reason.MALFORMED_JSON, str(exc)) from exc
    error = SCHEMAS.first_error("listening.event", body)
    if error is not None:
        raise Rejected(Reason.SCHEMA_INVALID, error)
    check_ts(body["ts"], now_ms=clock_ms() if now_ms is None else now_ms)
    for field in ("event_id", "user_id", "track_id"):
        # JSON Schema's "$" lets a trailing newline through in Python's re: ids become keys
        if not is_valid_id(body[field]):
            raise Rejected(Reason.SCHEMA_INVALID, f"{field}: {body[field]!r} is not a valid id")
    expected_key = f"{body['tenant']}/{body['user_id']}"
    if key is None or key != expected_key.encode():
        raise Rejected(Reason.BAD_KEY, f"key must be {expected_key!r}")
    return ListeningEvent(
        event_id=body["event_id"],
        tenant=body["tenant"],
        user_id=body["user_id"],
        track_id=body["track_id"],
        type=body["type"],
        ts=body["ts"],
        ms_played=body.get("ms_played"),
        track_ms=body.get("track_ms"),
    )


def window_of(ts_ms: int, *, window_s: int) -> int:
    return ts_ms // (window_s * 1000)


def to_update(event: ListeningEvent, *, window_s: int, position: str = "") -> ListeningUpdate:
    played = event.ms_played or 0
    is_listen = event.type in ("play", "skip")
    return ListeningUpdate(
        tenant=event.tenant,
        event_id=event.event_id,
        user_id=event.user_id,
        track_id=event.track_id,
        type=event.type,
        ts=event.ts,
        ms_played=played,
        hour=(event.ts // 3_600_000) % 24,
        window=window_of(event.ts, window_s=window_s),
        near_30s=is_listen and ROYALTY_MS <= played < ROYALTY_MS + NEAR_30S_BAND_MS,
        position=position,
        completed=event.type == "play"
        and event.track_ms is not None
        and played >= COMPLETION_SHARE * event.track_ms,
    )


def behaviour(user: UserState, track: WindowCounts | None = None) -> dict[str, float]:
    """A user's behavioural features, each scaled to roughly 0..1.

    ``track`` is the played track's current window: how many of *all* its listeners'
    plays ended just past 30 s, the trace a farm of many accounts leaves on its tracks.
    """
    listens = user.plays + user.skips
    track_listens = (track.plays + track.skips) if track is not None else 0
    span_h = max(1.0, (user.last_ts - user.first_ts) / 3_600_000)
    hours = [h for h in user.hours if h]
    total = sum(hours)
    entropy = -sum(h / total * math.log(h / total) for h in hours) / math.log(24) if total else 0.0
    return {
        "plays_per_hour": min(1.0, listens / span_h / 60.0),
        "near_30s_share": user.near30 / listens if listens else 0.0,
        "repeat_ratio": user.repeats / max(1, listens - 1),
        "distinct_ratio": min(1.0, user.distinct_tracks / listens) if listens else 1.0,
        "skip_rate": user.skips / listens if listens else 0.0,
        "hour_spread": entropy,
        "engagement": min(1.0, (user.likes + user.shares) / max(1, listens)),
        "log_listens": min(1.0, math.log1p(listens) / 10.0),
        "top_track_share": user.top_track / listens if listens else 0.0,
        "track_near_30s_share": track.near30 / track_listens if track and track_listens else 0.0,
    }


#: The direction in which each behavioural feature looks like artificial streaming.
BOT_DIRECTIONS: dict[str, int] = {
    "plays_per_hour": 1,  # plays around the clock, back to back
    "near_30s_share": 1,  # stops just past the royalty threshold
    "repeat_ratio": 1,  # loops the same track
    "distinct_ratio": -1,  # a handful of tracks
    "skip_rate": -1,  # never skips
    "hour_spread": 1,  # no sleep
    "engagement": -1,  # never likes or shares
    "log_listens": 1,  # sheer volume
    "top_track_share": 1,  # catalogue concentration
    "track_near_30s_share": 1,  # the track's other listeners also stop at 30 s: a farm
}
