"""Listening events: parsing and validation, and the state update each one makes (pure).

>>> event = parse_event(b'{"event_id":"e1","tenant":"acme","user_id":"u1","track_id":"t1",'
...                     b'"type":"play","ts":1764000000000,"ms_played":31000}', key=b"acme/u1")
>>> update = to_update(event, window_s=3600, position=Position("listening.events", 0, 7),
...                    record_time_ms=1764000000000, now_ms=1764000000000)
>>> update.near_30s, update.early
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.core.errors import Reason, Rejected
from workers.core.eventtime import check_ts
from workers.core.eventtime import now_ms as clock_ms
from workers.core.listening_state import ListeningUpdate
from workers.core.position import Position
from workers.core.schemas import json_input
from workers.core.tenants import is_valid_id

__all__ = [
    "COMPLETION_SHARE",
    "INTEGER_FIELDS",
    "MAX_EVENT_BYTES",
    "MAX_SKEW_MS",
    "NEAR_30S_BAND_MS",
    "ROYALTY_MS",
    "ListeningEvent",
    "parse_event",
    "to_update",
    "window_of",
]

MAX_EVENT_BYTES = 64 * 1024
#: Royalty threshold and the band just past it that bot farms aim for.
ROYALTY_MS = 30_000
NEAR_30S_BAND_MS = 10_000
COMPLETION_SHARE = 0.9
#: The body's integer fields (whole-number floats are accepted and made integers).
INTEGER_FIELDS = ("ts", "ms_played", "track_ms")
#: How far ahead of the worker's clock a producer's clock may be before an event is early.
MAX_SKEW_MS = 5 * 60 * 1000


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
    body = json_input(
        value, schema="listening.event", max_bytes=MAX_EVENT_BYTES, what="listening event"
    )
    # JSON Schema counts 31000.0 as an integer: make it one, once, here at the boundary
    for field in INTEGER_FIELDS:
        if isinstance(body.get(field), float):
            body[field] = int(body[field])
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


def to_update(
    event: ListeningEvent,
    *,
    window_s: int,
    position: Position,
    record_time_ms: int,
    now_ms: int,
    skew_ms: int = MAX_SKEW_MS,
    read_time_ms: int | None = None,
) -> ListeningUpdate:
    """What ``event`` changes; ``now_ms - skew_ms`` and ``now_ms + skew_ms`` bound the
    clocks of the producers: an event from further ahead is held out of the live window."""
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
        record_time_ms=record_time_ms,
        early=event.ts > now_ms + skew_ms,
        listener_ts=min(event.ts, now_ms + skew_ms),
        read_time_ms=now_ms if read_time_ms is None else read_time_ms,
        completed=event.type == "play"
        and event.track_ms is not None
        and played >= COMPLETION_SHARE * event.track_ms,
    )
