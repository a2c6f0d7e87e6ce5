"""The state of listening: what one event changes, and what a user and a track look like
after it. Pure data, shared by the core (features, models) and the state store protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from workers.core.position import Position

if TYPE_CHECKING:
    from workers.core.models.evidence import AccountEvidence
    from workers.core.models.reference import Rank

__all__ = [
    "ForecasterStats",
    "ListeningState",
    "ListeningUpdate",
    "ModelsAfter",
    "Ranked",
    "UserState",
    "WindowCounts",
]


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
    #: where the record came from: tells a replay from a duplicate
    position: Position
    #: the record's Kafka timestamp (ms): an erasure refuses events published before it
    record_time_ms: int
    #: ``ts`` is further ahead of the worker's clock than the allowed skew: the event is
    #: counted in its own window but cannot open it (nor close the live one)
    early: bool = False
    #: the time the event counts at for its listener (their span, lateness, recent plays,
    #: co-listening, popularity): ``ts``, or the clock plus the allowed skew when ahead
    listener_ts: int = 0
    #: when the worker read the record (ms): an erasure after it refuses the event too
    read_time_ms: int = 0


@dataclass(frozen=True, slots=True)
class UserState:
    events: int = 0
    plays: int = 0
    skips: int = 0
    likes: int = 0
    shares: int = 0
    near30: int = 0
    ms_played: int = 0
    first_ts: int = 0
    last_ts: int = 0
    #: listens of the user's most listened track (catalogue concentration)
    top_track: int = 0
    hours: tuple[int, ...] = (0,) * 24
    distinct_tracks: int = 0


@dataclass(frozen=True, slots=True)
class ForecasterStats:
    """The tenant's popularity forecaster as the store returned it with an event
    (``models/popularity.py``): the labels learnt and their quality, the three experts'
    forecasts of the event's track's next window and their Hedge weights."""

    trained: int
    mae: float
    naive_mae: float
    seasonal_mae: float
    forecast: tuple[float, ...]
    weights: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Ranked:
    """Features as the store ranked them against the tenant's reference: each value
    (shrunk toward the reference mean) and where it stands."""

    x: dict[str, float]
    ranks: dict[str, Rank]


@dataclass(frozen=True, slots=True)
class ModelsAfter:
    """What the tenant's models made of an event, in the store, in the same atomic step:
    the listener and the track ranked against the tenant's references, the forecaster
    after any label, the listener's account fields."""

    listener: Ranked
    track: Ranked
    forecaster: ForecasterStats
    account: AccountEvidence
    #: the share of the listener's listening in bursts (as measured, not shrunk)
    sync: float = 0.0
    #: the track's decayed listens and suspicion mass, and its verdict last published
    track_listens: float = 0.0
    track_suspicion: float = 0.0
    track_published: str = ""
    #: the groups of the listeners judged bots that push the track (the latest three)
    track_groups: tuple[str, ...] = ()
    #: the listener's segment among the tenant's (``models/segments.py``), -1: unknown
    segment: int = -1
    #: events the tenant's listening models have learnt
    inputs: int = 0


@dataclass(frozen=True, slots=True)
class ListeningState:
    """The state after one event: the user's and the track's current and previous windows.

    ``rolled_from`` is the window the track had before this event opened a newer one
    (else -1).
    """

    user: UserState
    current: WindowCounts
    previous: WindowCounts
    rolled_from: int
    #: the same record seen again (after a crash): nothing was applied twice
    replay: bool = False
    #: the event was later than the lateness bound (its track window was already gone, or
    #: it could not move the listener's first event time back): counted, handled as stated
    late: bool = False
    #: the event was ahead of the clock: kept out of the track's live window
    early: bool = False
    #: the models' view of the event (None only in tests that build states by hand)
    models: ModelsAfter | None = None
