"""The state of listening: what one event changes, and what a user and a track look like
after it. Pure data, shared by the core (features, models) and the state store protocol."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ListeningState", "ListeningUpdate", "UserState", "WindowCounts"]


@dataclass(frozen=True, slots=True)
class WindowCounts:
    plays: int = 0
    skips: int = 0
    likes: int = 0
    shares: int = 0
    listeners: int = 0
    #: plays and skips that ended just past the 30 s royalty threshold
    near30: int = 0


@dataclass(frozen=True, slots=True)
class ListeningUpdate:
    """What one listening event changes (all fields already validated)."""

    tenant: str
    event_id: str
    user_id: str
    track_id: str
    type: str
    ts: int
    ms_played: int
    hour: int
    window: int
    near_30s: bool
    completed: bool
    #: where the record came from (topic:partition:offset): tells a replay from a duplicate
    position: str = ""


@dataclass(frozen=True, slots=True)
class UserState:
    events: int = 0
    plays: int = 0
    skips: int = 0
    likes: int = 0
    shares: int = 0
    near30: int = 0
    repeats: int = 0
    ms_played: int = 0
    first_ts: int = 0
    last_ts: int = 0
    #: listens of the user's most listened track (catalogue concentration)
    top_track: int = 0
    hours: tuple[int, ...] = (0,) * 24
    distinct_tracks: int = 0


@dataclass(frozen=True, slots=True)
class ListeningState:
    """The state after one event: the user's and the track's current and previous windows.

    ``rolled_from`` is the window the track had before this event opened a newer one
    (else -1); then ``closed`` holds that window and the two before it, the delayed
    label for the popularity model.
    """

    user: UserState
    current: WindowCounts
    previous: WindowCounts
    rolled_from: int
    closed: tuple[WindowCounts, WindowCounts, WindowCounts] | None
    #: the same record seen again (after a crash): nothing was applied twice
    replay: bool = False
