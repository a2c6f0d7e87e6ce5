"""The listening script's reply (``listening.lua``) as a ``ListeningState``; the in-memory
store builds the same reply, so both are decoded by one function."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from workers.core.listening_state import ListeningState, UserState, WindowCounts

__all__ = ["COUNTS", "USER_FIELDS", "decode_listening"]

USER_FIELDS = (
    "events",
    "plays",
    "skips",
    "likes",
    "shares",
    "near30",
    "repeats",
    "ms_played",
    "first_ts",
    "last_ts",
    "top_track",
)
COUNTS = ("plays", "skips", "likes", "shares", "listeners", "near30")


def decode_listening(reply: Sequence[int]) -> ListeningState | None:
    """Turn the Lua script's flat reply (see listening.lua) into a ListeningState."""
    if not reply or int(reply[0]) == 0:
        return None
    replay = int(reply[0]) == 2
    values = [int(v) for v in reply[1:]]
    user_values, values = values[: len(USER_FIELDS)], values[len(USER_FIELDS) :]
    hours, values = tuple(values[:24]), values[24:]
    distinct, rolled, values = values[0], values[1], values[2:]
    width = len(COUNTS)
    counts = [WindowCounts(*values[i : i + width]) for i in range(0, 5 * width, width)]
    counters: dict[str, Any] = dict(zip(USER_FIELDS, user_values, strict=True))
    user = replace(UserState(hours=hours, distinct_tracks=distinct), **counters)
    closed = (counts[2], counts[3], counts[4]) if rolled >= 0 else None
    return ListeningState(
        user=user,
        current=counts[0],
        previous=counts[1],
        rolled_from=rolled,
        closed=closed,
        replay=replay,
    )
