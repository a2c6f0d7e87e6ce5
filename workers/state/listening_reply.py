"""The listening script's reply (``listening.lua``) as a ``ListeningState`` or a ``Refused``;
the in-memory store builds the same reply, so both are read by one function."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workers.core.behaviour import BOT_DIRECTIONS
from workers.core.errors import Reason
from workers.core.listening_state import (
    ForecasterStats,
    ListeningState,
    ModelsAfter,
    UserState,
    WindowCounts,
)
from workers.core.models.accounts import AccountEvidence
from workers.core.models.tailrank import RankVerdict
from workers.state.protocol import Refused

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
    ints = [int(v) for v in reply[2 : 2 + n_user + 24 + 2 + 5 * width]]
    user_values, rest = ints[:n_user], ints[n_user:]
    hours, rest = tuple(rest[:24]), rest[24:]
    distinct, rolled, rest = rest[0], rest[1], rest[2:]
    counts = [WindowCounts(*rest[i : i + width]) for i in range(0, 5 * width, width)]
    counters: dict[str, Any] = dict(zip(USER_FIELDS, user_values, strict=True))
    user = UserState(hours=hours, distinct_tracks=distinct, **counters)
    models = reply[2 + n_user + 24 + 2 + 5 * width :]
    return ListeningState(
        user=user,
        current=counts[0],
        previous=counts[1],
        rolled_from=rolled,
        closed=(counts[2], counts[3], counts[4]) if rolled >= 0 else None,
        replay=status == REPLAY,
        late=bool(flags & LATE),
        early=bool(flags & EARLY),
        models=decode_models(models) if models else None,
    )


def decode_models(reply: Sequence[Any]) -> ModelsAfter:
    """The models' part of the reply: detector verdict, features and ranks, forecaster."""
    names = list(BOT_DIRECTIONS)
    n = len(names)
    # float() and int() read bytes (Redis) and str (the in-memory store) alike
    score, percentile, threshold = (float(v) for v in reply[:3])
    warming, alarm, seen, alarms = (int(v) for v in reply[3:7])
    x = [float(v) for v in reply[7 : 7 + n]]
    ranks = [float(v) for v in reply[7 + n : 7 + 2 * n]]
    rest = reply[7 + 2 * n :]
    trained, mae, naive = int(rest[0]), float(rest[1]), float(rest[2])
    stats = [float(v) for v in rest[3:17]]
    n, concentration, near30, group, group_hash, published, segment = rest[17:24]
    return ModelsAfter(
        features=dict(zip(names, x, strict=True)),
        verdict=RankVerdict(
            score=score,
            percentile=percentile,
            threshold=threshold,
            is_anomaly=bool(alarm),
            warming_up=bool(warming),
            ranks=dict(zip(names, ranks, strict=True)),
        ),
        forecaster=ForecasterStats(
            trained=trained, mae=mae, naive_mae=naive, a=tuple(stats[:10]), b=tuple(stats[10:14])
        ),
        detector_inputs=seen,
        detector_alarms=alarms,
        account=AccountEvidence(
            listens=int(n),
            concentration=float(concentration),
            track_near30=float(near30),
            group=_text(group),
            group_hash=int(group_hash),
            published=_text(published),
        ),
        segment=int(segment),
    )
