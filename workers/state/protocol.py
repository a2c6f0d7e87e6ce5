"""The state store protocol: what the pipeline asks of per-tenant state.

Two implementations obey it, checked by one test suite that runs over both: ``RedisStore``
(``redis_store.py``, production) and ``MemoryStore`` (``memory.py``, tests and benchmarks).

Failures come in two kinds. ``StateUnavailable`` is raised for what waiting fixes (the
connection, a timeout, a server loading or failing over): the caller retries the whole
call. A change the store refuses for good (a key of another type, a bad value, a duplicate,
an exhausted quota) is returned as ``Refused`` for that one item, and nothing of that item
was written: every change is applied entirely or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from workers.core.errors import Reason
from workers.core.listening_state import ListeningState, ListeningUpdate
from workers.core.position import Position

__all__ = [
    "GONE_FOR_MS",
    "Embedding",
    "KeptChunk",
    "ModelParams",
    "Refused",
    "StateLimits",
    "StateStore",
    "StateUnavailable",
    "StreamSaved",
]

DAY_S = 24 * 3600


class StateUnavailable(Exception):
    """The store cannot answer now (connection, timeout, loading, failover): retry later."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A change the store will not make, for a reason a retry cannot change."""

    reason: Reason
    detail: str


@dataclass(frozen=True, slots=True)
class StreamSaved:
    #: False when the stream already holds this ``seq`` or a later one
    accepted: bool
    #: the stream's ``seq`` before this call (-1 for a new stream)
    previous: int
    #: with an embedding: the catalogue's version after it (0: none written), and whether
    #: the item was kept (a new item past the tenant's quota is not)
    catalogue_version: int = 0
    item_kept: bool = False


#: how long a removed catalogue item's tombstone is kept for readers (a reader further behind
#: reads the whole catalogue again)
GONE_FOR_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Embedding:
    """A stream's mean embedding, saved with the tagger's state in one step: under ``item``
    (its track, else the stream) in the tenant's catalogue of ``model``."""

    item: str
    #: float32 bytes, unit length
    vector: bytes
    model: str


@dataclass(frozen=True, slots=True)
class KeptChunk:
    """The outputs saved with a chunk's record, to emit again when it is read again."""

    outputs: bytes
    #: saved by this very process (a retry whose reply was lost), not by an earlier reader
    own: bool


@dataclass(frozen=True, slots=True)
class ModelParams:
    """How the tenants' store-kept models are set (docs/models.md)."""

    #: listeners (and tracks) in a tenant's reference sample (bottom-k by hash)
    reference_size: int = 1000
    #: the forecaster's forgetting factor per label
    forgetting: float = 1.0 - 1.0 / 2000


@dataclass(frozen=True, slots=True)
class StateLimits:
    """Retention and quotas: how long each kind of state lives and how much a tenant gets.

    Every key the worker writes has a time to live (docs/contract.md, "State"), so Redis
    holds what the traffic of the last ``state_ttl_s`` needs and no more.
    """

    #: popularity window, in event time
    window_s: int = 3600
    #: how long a record is recognised when read again (replays and duplicates): longer
    #: than the input topics' retention and the group's offsets retention (Kafka: 7 days)
    replay_memory_s: int = 8 * DAY_S
    #: a listener's or a track's state is dropped after this long without an event
    state_ttl_s: int = 30 * DAY_S
    #: an audio stream's state and kept outputs, after its last chunk
    stream_ttl_s: int = DAY_S
    #: events later than this (behind the listener's latest, or before the track's kept
    #: windows) are counted in a metric and cannot move first-seen times back
    lateness_ms: int = 3 * 3600 * 1000
    #: new listeners, tracks and streams a tenant may create a day (0: no limit)
    new_ids_per_day: int = 1_000_000
    #: tracks counted one by one per listener (catalogue concentration); beyond, only the
    #: distinct count grows
    tracks_per_user: int = 500
    #: chunk outputs kept per stream and partition until their offsets are committed
    outputs_per_stream: int = 5000
    #: a partition silent this long does not hold a tenant's low watermark back (and for
    #: this long after a tenant's clock starts the watermark is unknown)
    watermark_idle_ms: int = 60_000
    #: the most popularity windows a track keeps, however far apart its partitions drift
    #: in a backlog (beyond, the slowest partition's plays of it count as late)
    max_windows: int = 7 * 24
    #: the store-kept models
    models: ModelParams = field(default_factory=ModelParams)

    @property
    def replay_days(self) -> int:
        """Arrival days whose seen-markers are looked up (a day of clock skew each side)."""
        return self.replay_memory_s // DAY_S + 2


class StateStore(Protocol):
    #: this process's id in the markers it writes: a retry of its own is not a replay
    incarnation: str

    async def apply_listening(
        self, updates: Sequence[ListeningUpdate], *, now_ms: int
    ) -> list[ListeningState | Refused]:
        """Apply events, each atomically and once, and let the tenant's models judge each
        one and learn it in the same step. A record
        applied before is answered with the state as it is (``replay`` set unless this
        process applied it) and learnt nothing; the same ``event_id`` from another record is
        ``Refused(DUPLICATE_EVENT)``."""

    async def report_waiting(self, tenant: str, waiting: Sequence[int], *, now_ms: int) -> None:
        """Tell the tenant's event-time clock which partitions of ``listening.events`` this
        worker owns with records waiting (every second): they hold the tenant's low
        watermark back, however slowly they are read."""

    async def note_accounts(self, published: Sequence[tuple[str, str, str]]) -> None:
        """Remember each ``(tenant, user_id, marker)`` as the listener's verdict last
        published (``AccountEvidence.published``); an erased listener stays erased."""

    async def note_tracks(self, published: Sequence[tuple[str, str, str]]) -> None:
        """Remember each ``(tenant, track_id, marker)`` as the track's verdict last
        published (``"score|flag"``)."""

    async def load_stream(self, tenant: str, stream: str, lane: str = "audio") -> bytes | None:
        """The state saved after the stream's latest chunk, if any. ``lane``: whose state,
        of the consumers of ``audio.chunks`` (``audio``: features and anomalies; ``tags``:
        the tagger), each with its own keys."""

    async def save_stream(
        self,
        tenant: str,
        stream: str,
        seq: int,
        state: bytes,
        *,
        position: Position,
        outputs: bytes,
        record_time_ms: int,
        lane: str = "audio",
        embedding: Embedding | None = None,
    ) -> StreamSaved | Refused:
        """Save state after chunk ``seq`` with the chunk's record position and outputs (and
        the tagger's ``embedding`` of the stream into its tenant's catalogue), in one
        atomic step. A seq not above the stored one is not saved (a repeat, a replay, or
        another worker got there first). A stream is admitted once for both lanes, against
        the quota of the day of the chunk's record (``record_time_ms``): a chunk one lane
        refuses for the quota, the other refuses too."""

    async def kept_chunk(
        self, tenant: str, stream: str, position: Position, lane: str = "audio"
    ) -> KeptChunk | None:
        """The outputs saved with the chunk read at ``position``, if its offset is not yet
        committed (a re-read)."""

    async def note_dead_letters(self, letters: Sequence[tuple[str | None, Position]]) -> list[bool]:
        """Remember that the records at these positions (of topics owned by the given tenant,
        or shared) became dead letters; True for each one noted for the first time."""

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
