"""A listener's behavioural features, from their state (pure)."""

from __future__ import annotations

import math

from workers.core.listening_state import UserState, WindowCounts

__all__ = ["BOT_DIRECTIONS", "behaviour"]


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
        # listens beyond the first of each track: order-free, unlike "same as the last one"
        "repeat_ratio": max(0, listens - user.distinct_tracks) / max(1, listens - 1),
        "distinct_ratio": min(1.0, user.distinct_tracks / listens) if listens else 1.0,
        "skip_rate": user.skips / listens if listens else 0.0,
        "hour_spread": entropy,
        "engagement": min(1.0, (user.likes + user.shares) / max(1, listens)),
        # log(1 + n), not log1p: the store computes the same in Lua, which has no log1p
        "log_listens": min(1.0, math.log(1 + listens) / 10.0),
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
