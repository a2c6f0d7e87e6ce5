"""The state store protocol, its data, and the in-memory implementation.

The Redis implementation (``redis_store.py``) and this one obey the same contract,
checked by one test suite that runs over both.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from workers.core.models.popularity import WindowCounts
from workers.state.keys import key

SEEN_TTL_S = 7 * 24 * 3600
STREAM_TTL_S = 24 * 3600
#: Chunks per stream whose outputs are kept, to re-emit a chunk re-read after a crash. Only
#: chunks processed but maybe not yet published when a worker died need it: a few per stream.
RECENT_CHUNKS = 32
_USER_FIELDS = (
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
_COUNTS = ("plays", "skips", "likes", "shares", "listeners", "near30")


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


class StateStore(Protocol):
    async def apply_listening(
        self, updates: Sequence[ListeningUpdate]
    ) -> list[ListeningState | None]:
        """Apply events atomically, each once; None marks an event_id already applied."""

    async def load_stream(self, tenant: str, stream: str) -> bytes | None:
        """The state saved after the stream's latest chunk, if any."""

    async def save_stream(
        self, tenant: str, stream: str, seq: int, state: bytes, *, position: str, outputs: bytes
    ) -> tuple[bool, int]:
        """Save state after chunk ``seq`` with the chunk's record position and outputs, in one
        atomic step: (accepted, previous seq or -1). A seq not above the stored one is refused
        (a repeat, a replay, or another worker got there first)."""

    async def recent_chunk(self, tenant: str, stream: str, seq: int) -> tuple[str, bytes] | None:
        """(position, outputs) saved with chunk ``seq``, if it is among the last kept."""

    async def load_snapshot(self, tenant: str, kind: str) -> bytes | None: ...

    async def save_snapshots(self, snapshots: Mapping[tuple[str, str], bytes]) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def decode_listening(reply: Sequence[int]) -> ListeningState | None:
    """Turn the Lua script's flat reply (see listening.lua) into a ListeningState."""
    if not reply or int(reply[0]) == 0:
        return None
    replay = int(reply[0]) == 2
    values = [int(v) for v in reply[1:]]
    user_values, values = values[: len(_USER_FIELDS)], values[len(_USER_FIELDS) :]
    hours, values = tuple(values[:24]), values[24:]
    distinct, rolled, values = values[0], values[1], values[2:]
    width = len(_COUNTS)
    counts = [WindowCounts(*values[i : i + width]) for i in range(0, 5 * width, width)]
    counters: dict[str, Any] = dict(zip(_USER_FIELDS, user_values, strict=True))
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


@dataclass
class MemoryStore:
    """In-process store with the Redis store's semantics (exact sets instead of HyperLogLog)."""

    seen: dict[str, str] = field(default_factory=dict)
    hashes: dict[str, dict[str, int | str]] = field(default_factory=lambda: defaultdict(dict))
    sets: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    blobs: dict[str, bytes] = field(default_factory=dict)
    recent: dict[str, list[tuple[int, str, bytes]]] = field(default_factory=dict)

    async def apply_listening(
        self, updates: Sequence[ListeningUpdate]
    ) -> list[ListeningState | None]:
        return [self._apply(update) for update in updates]

    def _apply(self, u: ListeningUpdate) -> ListeningState | None:
        seen_key = key(u.tenant, "seen", u.event_id)
        status = 1
        if seen_key in self.seen:
            if self.seen[seen_key] != u.position:
                return None
            status = 2  # the same record again: report, change nothing
        else:
            self.seen[seen_key] = u.position
        user = self.hashes[key(u.tenant, "user", u.user_id)]
        tracks = self.sets[key(u.tenant, "user", u.user_id, "tracks")]
        meta = self.hashes[key(u.tenant, "track", u.track_id)]
        rolled = self._mutate(u, user, tracks, meta) if status == 1 else -1

        def counts(window: int) -> list[int]:
            return [int(meta.get(f"{window}:{c}", 0)) for c in _COUNTS]

        reply = [
            status,
            *(int(user.get(f, 0)) for f in _USER_FIELDS),
            *(int(user.get(f"h{h}", 0)) for h in range(24)),
            len(tracks),
            rolled,
        ]
        for window in (u.window, u.window - 1, rolled, rolled - 1, rolled - 2):
            reply.extend(counts(window))
        return decode_listening(reply)

    def _mutate(
        self,
        u: ListeningUpdate,
        user: dict[str, int | str],
        tracks: set[str],
        meta: dict[str, int | str],
    ) -> int:
        """Apply one event's increments (listening.lua's status-1 branch); returns rolled."""
        listeners = self.sets[key(u.tenant, "track", u.track_id, "listeners", u.window)]

        def incr(h: dict[str, int | str], name: str, by: int = 1) -> None:
            h[name] = int(h.get(name, 0)) + by

        plural = u.type + "s"
        incr(user, "events")
        incr(user, plural)
        if u.type in ("play", "skip"):
            incr(user, "ms_played", u.ms_played)
            incr(user, "near30", int(u.near_30s))
            incr(user, f"h{u.hour}")
            if user.get("last_track") == u.track_id:
                incr(user, "repeats")
            user["last_track"] = u.track_id
            tracks.add(u.track_id)
            per_track = self.hashes[key(u.tenant, "user", u.user_id, "plays")]
            incr(per_track, u.track_id)
            user["top_track"] = max(int(user.get("top_track", 0)), int(per_track[u.track_id]))
        user["first_ts"] = min(int(user.get("first_ts", u.ts)), u.ts)
        user["last_ts"] = max(int(user.get("last_ts", u.ts)), u.ts)
        incr(meta, f"{u.window}:{plural}")
        if u.completed:
            incr(meta, f"{u.window}:completions")
        if u.near_30s:
            incr(meta, f"{u.window}:near30")
        if u.type == "play":
            listeners.add(u.user_id)
            meta[f"{u.window}:listeners"] = len(listeners)
        rolled = -1
        maxw = int(meta.get("maxw", -1))
        if u.window > maxw:
            meta["maxw"] = u.window
            rolled = maxw
            for name in [n for n in meta if n != "maxw" and int(n.split(":")[0]) < u.window - 4]:
                del meta[name]
        return rolled

    async def load_stream(self, tenant: str, stream: str) -> bytes | None:
        return self.blobs.get(key(tenant, "stream", stream))

    async def save_stream(
        self, tenant: str, stream: str, seq: int, state: bytes, *, position: str, outputs: bytes
    ) -> tuple[bool, int]:
        meta = self.hashes[key(tenant, "stream", stream)]
        previous = int(meta.get("seq", -1))
        if seq <= previous:
            return False, previous
        meta["seq"] = seq
        self.blobs[key(tenant, "stream", stream)] = state
        recent = self.recent.setdefault(key(tenant, "recent", stream), [])
        recent.insert(0, (seq, position, outputs))
        del recent[RECENT_CHUNKS:]
        return True, previous

    async def recent_chunk(self, tenant: str, stream: str, seq: int) -> tuple[str, bytes] | None:
        for kept, position, outputs in self.recent.get(key(tenant, "recent", stream), []):
            if kept == seq:
                return position, outputs
        return None

    async def load_snapshot(self, tenant: str, kind: str) -> bytes | None:
        return self.blobs.get(key(tenant, "model", kind))

    async def save_snapshots(self, snapshots: Mapping[tuple[str, str], bytes]) -> None:
        for (tenant, kind), blob in snapshots.items():
            self.blobs[key(tenant, "model", kind)] = blob

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
