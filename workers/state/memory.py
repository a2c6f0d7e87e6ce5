"""The in-memory state store: the Redis store's semantics in one process (tests, benchmarks)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from workers.core.listening_state import ListeningState, ListeningUpdate
from workers.state.keys import key
from workers.state.listening_reply import COUNTS, USER_FIELDS, decode_listening
from workers.state.protocol import RECENT_CHUNKS

__all__ = ["MemoryStore"]


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
            return [int(meta.get(f"{window}:{c}", 0)) for c in COUNTS]

        reply = [
            status,
            *(int(user.get(f, 0)) for f in USER_FIELDS),
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
