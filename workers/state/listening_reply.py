"""The listening script's reply (``listening.lua``) as a ``ListeningState`` or a ``Refused``;
the in-memory store builds the same reply, so both are read by one function."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workers.core.behaviour import LISTENER_FEATURES, TRACK_FEATURES
from workers.core.errors import Reason
from workers.core.listening_state import (
    ForecasterStats,
    ListeningState,
    ModelsAfter,
    Ranked,
    UserState,
    WindowCounts,
)
from workers.core.models.evidence import AccountEvidence
from workers.core.models.popularity import EXPERTS
from workers.core.models.reference import Rank
from workers.state.protocol import Refused

LISTENER_NAMES = [f.name for f in LISTENER_FEATURES]
TRACK_NAMES = [f.name for f in TRACK_FEATURES]

__all__ = [
    "APPLIED",
    "COUNTS",
    "OWN_RETRY",
    "REPLAY",
    "USER_FIELDS",
    "decode_listening",
    "decode_models",
]

USER_FIELDS = (
    "events",
    "plays",
    "skips",
    "likes",
    "shares",
    "near30",
    "ms_played",
    "first_ts",
    "last_ts",
    "top_track",
)
COUNTS = ("plays", "skips", "likes", "shares", "listeners", "near30")
#: statuses of an accepted reply
APPLIED, REPLAY, OWN_RETRY = 1, 2, 3
LATE, EARLY = 1, 2
_REFUSALS = {
    "duplicate": Reason.DUPLICATE_EVENT,
    "erased": Reason.SUBJECT_ERASED,
    "quota": Reason.QUOTA_EXCEEDED,
    "state": Reason.STATE_ERROR,
}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def decode_listening(reply: Sequence[Any]) -> ListeningState | Refused:
    """Turn the script's flat reply into the state after the event, or its refusal."""
    status = int(reply[0])
    if status == 0:
        why = _text(reply[1])
        return Refused(_REFUSALS.get(why, Reason.STATE_ERROR), _text(reply[2]))
    flags = int(reply[1])
    width, n_user = len(COUNTS), len(USER_FIELDS)
    ints = [int(v) for v in reply[2 : 2 + n_user + 24 + 2 + 2 * width]]
    user_values, rest = ints[:n_user], ints[n_user:]
    hours, rest = tuple(rest[:24]), rest[24:]
    distinct, rolled, rest = rest[0], rest[1], rest[2:]
    counts = [WindowCounts(*rest[i : i + width]) for i in range(0, 2 * width, width)]
    counters: dict[str, Any] = dict(zip(USER_FIELDS, user_values, strict=True))
    user = UserState(hours=hours, distinct_tracks=distinct, **counters)
    models = reply[2 + n_user + 24 + 2 + 2 * width :]
    return ListeningState(
        user=user,
        current=counts[0],
        previous=counts[1],
        rolled_from=rolled,
        replay=status == REPLAY,
        late=bool(flags & LATE),
        early=bool(flags & EARLY),
        models=decode_models(models) if models else None,
    )


def _ranked(reply: Sequence[Any], names: Sequence[str]) -> tuple[Ranked, int]:
    """A reference size and the most members it has held, then per feature (value, at or
    above it, mean, the tail's threshold and mean excess)."""
    size, peak = int(reply[0]), int(reply[1])
    end = 2 + 5 * len(names)
    v = [float(item) for item in reply[2:end]]
    x = {name: v[5 * i] for i, name in enumerate(names)}
    ranks = {
        name: Rank(int(v[5 * i + 1]), size, v[5 * i + 2], v[5 * i + 3], v[5 * i + 4], peak)
        for i, name in enumerate(names)
    }
    return Ranked(x, ranks), end


def decode_models(reply: Sequence[Any]) -> ModelsAfter:
    """The models' part of the reply: the listener and the track ranked against the
    tenant's references, the forecaster, the account fields, the segment."""
    inputs = int(reply[0])
    listener, used = _ranked(reply[1:], LISTENER_NAMES)
    rest = reply[1 + used :]
    sync, rest = float(rest[0]), rest[1:]
    track, used = _ranked(rest, TRACK_NAMES)
    rest = rest[used:]
    track_listens, track_suspicion, track_published = float(rest[0]), float(rest[1]), rest[2]
    groups = tuple(g for g in _text(rest[3]).split(",") if g)
    rest = rest[4:]
    trained = int(rest[0])
    mae, naive, seasonal = (float(v) for v in rest[1:4])
    n = len(EXPERTS)
    forecast = tuple(float(v) for v in rest[4 : 4 + n])
    weights = tuple(float(v) for v in rest[4 + n : 4 + 2 * n])
    listens, group, group_hash, published, group_marker, segment = rest[4 + 2 * n : 10 + 2 * n]
    return ModelsAfter(
        listener=listener,
        track=track,
        forecaster=ForecasterStats(
            trained=trained,
            mae=mae,
            naive_mae=naive,
            seasonal_mae=seasonal,
            forecast=forecast,
            weights=weights,
        ),
        account=AccountEvidence(
            listens=int(listens),
            group=_text(group),
            group_hash=int(group_hash),
            published=_text(published),
            group_marker=_text(group_marker),
        ),
        sync=sync,
        track_listens=track_listens,
        track_suspicion=track_suspicion,
        track_published=_text(track_published),
        track_groups=groups,
        segment=int(segment),
        inputs=inputs,
    )
