"""The listening script's reply (``listening.lua``) as a ``ListeningState`` or a ``Refused``;
the in-memory store builds the same reply, so both are read by one function."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from workers.core.errors import Reason
from workers.core.listening_state import ListeningState, UserState, WindowCounts
from workers.state.protocol import Refused

__all__ = ["APPLIED", "COUNTS", "OWN_RETRY", "REPLAY", "USER_FIELDS", "decode_listening"]

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
    values = [int(v) for v in reply[2:]]
    user_values, values = values[: len(USER_FIELDS)], values[len(USER_FIELDS) :]
    hours, values = tuple(values[:24]), values[24:]
    distinct, rolled, values = values[0], values[1], values[2:]
    width = len(COUNTS)
    counts = [WindowCounts(*values[i : i + width]) for i in range(0, 5 * width, width)]
    counters: dict[str, Any] = dict(zip(USER_FIELDS, user_values, strict=True))
    user = replace(UserState(hours=hours, distinct_tracks=distinct), **counters)
    return ListeningState(
        user=user,
        current=counts[0],
        previous=counts[1],
        rolled_from=rolled,
        closed=(counts[2], counts[3], counts[4]) if rolled >= 0 else None,
        replay=status == REPLAY,
        late=bool(flags & LATE),
        early=bool(flags & EARLY),
    )
