"""The in-memory state store: the Redis store's semantics in one process (tests, benchmarks).

It follows ``listening.lua`` and ``stream.lua`` step by step, with exact sets where Redis
keeps HyperLogLogs; the store contract tests run the same cases over both. Nothing expires
here, and no other writer can put a key of the wrong type in its way.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from workers.core import colisten
from workers.core.errors import Reason
from workers.core.eventtime import PartitionClocks
from workers.core.listening_state import (
    ForecasterStats,
    ListeningState,
    ListeningUpdate,
)
from workers.core.models.evidence import AccountEvidence
from workers.core.models.popularity import Profile, Series
from workers.core.position import Position
from workers.core.records import LISTENING_EVENTS
from workers.state import keys
from workers.state.hll import HyperLogLog
from workers.state.listening_reply import (
    APPLIED,
    COUNTS,
    EARLY,
    LATE,
    OWN_RETRY,
    REPLAY,
    USER_FIELDS,
    decode_listening,
)
from workers.state.memory_mirrors import advance_clock, co_listen, forecast_popularity
from workers.state.memory_models import TenantModels
from workers.state.protocol import (
    DAY_S,
    GONE_FOR_MS,
    Embedding,
    KeptChunk,
    Refused,
    StateLimits,
    StreamSaved,
)
from workers.state.shelf import Shelf

__all__ = ["MemoryStore"]

KEPT_WINDOWS = 4
_WINDOW_FIELD = re.compile(r"^(-?\d+):")


def _window_of(name: str) -> int | None:
    """A track hash field's window ("{window}:{count}"), as listening.lua reads it, or None."""
    found = _WINDOW_FIELD.match(name)
    return int(found.group(1)) if found else None


@dataclass
class MemoryStore:
    limits: StateLimits = field(default_factory=StateLimits)
    incarnation: str = field(default_factory=lambda: secrets.token_hex(4))
    seen: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    hashes: dict[str, dict[str, int | str]] = field(default_factory=lambda: defaultdict(dict))
    #: HyperLogLogs, as Redis counts them (``PFADD``/``PFCOUNT``)
    sets: dict[str, HyperLogLog] = field(default_factory=lambda: defaultdict(HyperLogLog))
    blobs: dict[str, bytes] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    erasures: dict[str, int] = field(default_factory=dict)
    #: stream outputs: key -> offset -> (position, incarnation, outputs)
    kept: dict[str, dict[int, tuple[str, str, bytes]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    ledgers: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    #: listeners' recent plays (lists, newest first) and the co-listen and popular sets
    lists: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    zsets: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    #: per tenant and input topic: clock.lua's hash (partition times, the low watermark)
    clocks: dict[str, dict[str, int]] = field(default_factory=dict)
    #: per (tenant, tagger model): its catalogue (lua/catalogue.lua)
    shelves: dict[tuple[str, str], Shelf] = field(default_factory=dict)
    _clocks: PartitionClocks = field(default_factory=PartitionClocks)

    #: per tenant: its listening models and popularity forecaster (what Redis keeps)
    models: dict[str, TenantModels] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)
    #: per track key: its level and seasonal ring (fields of the track's hash in Redis)
    series: dict[str, Series] = field(default_factory=dict)

    async def apply_listening(
        self, updates: Sequence[ListeningUpdate], *, now_ms: int
    ) -> list[ListeningState | Refused]:
        due, horizons = self._clocks.read(
            [(u.tenant, u.position.partition, u.ts, u.early) for u in updates], now_ms=now_ms
        )
        for tenant, reported in due.items():
            self._advance(tenant, now_ms, times=reported)
        return [self._apply(u, now_ms, h) for u, h in zip(updates, horizons, strict=True)]

    async def report_waiting(self, tenant: str, waiting: Sequence[int], *, now_ms: int) -> None:
        self._advance(tenant, now_ms, waiting=waiting)

    def _advance(
        self,
        tenant: str,
        now_ms: int,
        *,
        times: Sequence[tuple[int, int]] = (),
        waiting: Sequence[int] = (),
    ) -> int:
        clock = self.clocks.setdefault(keys.event_time(tenant, LISTENING_EVENTS), {})
        return advance_clock(
            clock, now_ms, times=times, waiting=waiting, idle_ms=self.limits.watermark_idle_ms
        )

    def _seen_days(self, now_ms: int) -> list[int]:
        today = now_ms // (DAY_S * 1000)
        return [today, today + 1, *(today - i for i in range(1, self.limits.replay_days))]

    def _apply(self, u: ListeningUpdate, now_ms: int, horizon: int) -> ListeningState | Refused:
        t, uid, limits = u.tenant, u.user_id, self.limits
        days = self._seen_days(now_ms)
        marker = f"{u.position}|{self.incarnation}"
        digest = keys.event_digest(u.event_id)
        status = APPLIED
        for day in days:
            found = self.seen.get(keys.seen(t, day, digest), {}).get(digest)
            if found is not None:
                position, _, incarnation = found.rpartition("|")
                if position != str(u.position):
                    return Refused(
                        Reason.DUPLICATE_EVENT, f"event_id already applied from {position}"
                    )
                status = OWN_RETRY if incarnation == self.incarnation else REPLAY
                break
        erased_at = self.erasures.get(keys.erased(t, uid))
        published = min(u.record_time_ms, u.read_time_ms)
        if status == APPLIED and erased_at is not None and published <= erased_at:
            return Refused(Reason.SUBJECT_ERASED, f"listener erased at {erased_at}")
        user_key, meta_key = keys.user(t, uid), keys.track(t, u.track_id)
        meta = self.hashes[meta_key]
        maxw = int(meta.get("maxw", -1))
        low = int(self.clocks.get(keys.event_time(t, LISTENING_EVENTS), {}).get("low", -1))
        if low >= 0 and horizon >= 0:
            low = min(low, horizon)  # never past the record's own partition's time
        low_window = low // (limits.window_s * 1000) if low >= 0 else None
        late_track = (low_window is not None and u.window < low_window - KEPT_WINDOWS) or (
            maxw >= 0 and u.window < maxw - limits.max_windows
        )
        flags, rolled = 0, -1
        if status == APPLIED:
            quota_key = keys.quota(t, days[0])
            new_ids = int(user_key not in self.hashes or not self.hashes[user_key])
            if not late_track:
                new_ids += int(not meta)
            used = self.counters[quota_key]
            if limits.new_ids_per_day > 0 and new_ids and used + new_ids > limits.new_ids_per_day:
                return Refused(Reason.QUOTA_EXCEEDED, f"tenant created {used} ids today")
            self.counters[quota_key] += new_ids
            self.seen[keys.seen(t, days[0], digest)][digest] = marker
            flags, rolled = self._mutate(u, self.hashes[user_key], meta, late_track, low_window)
            if colisten.qualifies(u.type, u.ms_played):
                co_listen(self.lists, self.zsets, u)
        user = self.hashes[user_key]
        reply: list[int | str] = [
            status,
            flags,
            *(int(user.get(f, 0)) for f in USER_FIELDS),
            *(int(user.get(f"h{h}", 0)) for h in range(24)),
            self.sets[keys.user_tracks(t, uid)].count(),
            rolled,
        ]
        for window in (u.window, u.window - 1):
            reply.extend(int(meta.get(f"{window}:{c}", 0)) for c in COUNTS)
        state = decode_listening(reply)
        assert isinstance(state, ListeningState)
        listens = 0
        if status == APPLIED and u.type in ("play", "skip"):
            listens = int(self.hashes[keys.user_plays(t, uid)].get(u.track_id, 0))
        models = self.tenant_models(t).listen(
            u,
            state.user,
            user_key=user_key,
            track_key=meta_key,
            listens=listens,
            applied=status == APPLIED,
        )
        forecast = self._forecast(
            u, meta, state, applied=status == APPLIED, late=late_track, low_window=low_window
        )
        return replace(state, models=models.after(forecast))

    async def note_accounts(self, published: Sequence[tuple[str, str, str]]) -> None:
        # kept only while the listener's hash is (note.lua)
        for tenant, user_id, marker in published:
            accounts, user_key = self.tenant_models(tenant).accounts, keys.user(tenant, user_id)
            if self.hashes.get(user_key):
                accounts[user_key] = replace(
                    accounts.get(user_key, AccountEvidence()), published=marker
                )

    async def note_tracks(self, published: Sequence[tuple[str, str, str]]) -> None:
        for tenant, track_id, marker in published:
            models, track_key = self.tenant_models(tenant), keys.track(tenant, track_id)
            if self.hashes.get(track_key):
                models.track_markers[track_key] = marker

    def tenant_models(self, tenant: str) -> TenantModels:
        found = self.models.get(tenant)
        if found is None:
            found = self.models[tenant] = TenantModels(size=self.limits.models.reference_size)
        return found

    def _forecast(
        self,
        u: ListeningUpdate,
        meta: dict[str, int | str],
        state: ListeningState,
        *,
        applied: bool,
        late: bool,
        low_window: int | None,
    ) -> ForecasterStats:
        return forecast_popularity(
            self.profiles.setdefault(u.tenant, Profile()),
            self.series.setdefault(keys.track(u.tenant, u.track_id), Series()),
            meta,
            u,
            current=state.current.plays,
            previous=state.previous.plays,
            window_ms=self.limits.window_s * 1000,
            forgetting=self.limits.models.forgetting,
            learn=applied,
            teach=applied and not late and not u.early,
            low_window=low_window,
        )

    def _mutate(
        self,
        u: ListeningUpdate,
        user: dict[str, int | str],
        meta: dict[str, int | str],
        late_track: bool,
        low_window: int | None,
    ) -> tuple[int, int]:
        """One event's changes (listening.lua's status-1 branch); returns (flags, rolled)."""
        t, limits = u.tenant, self.limits

        def incr(h: dict[str, int | str], name: str, by: int = 1) -> int:
            h[name] = int(h.get(name, 0)) + by
            return int(h[name])

        plural = u.type + "s"
        incr(user, "events")
        incr(user, plural)
        if u.type in ("play", "skip"):
            incr(user, "ms_played", u.ms_played)
            incr(user, "near30", int(u.near_30s))
            incr(user, f"h{u.hour}")
            self.sets[keys.user_tracks(t, u.user_id)].add(u.track_id)
            per_track = self.hashes[keys.user_plays(t, u.user_id)]
            listens = 0
            if u.track_id in per_track or len(per_track) < limits.tracks_per_user:
                listens = incr(per_track, u.track_id)
            user["top_track"] = max(int(user.get("top_track", 0)), listens)
        flags = 0
        last = int(user.get("last_ts", u.listener_ts))
        effective = u.listener_ts
        if u.listener_ts < last - limits.lateness_ms:
            effective, flags = last - limits.lateness_ms, LATE
        user["first_ts"] = min(int(user.get("first_ts", effective)), effective)
        user["last_ts"] = max(last, u.listener_ts)
        if late_track:
            return LATE, -1
        incr(meta, f"{u.window}:{plural}")
        if u.completed:
            incr(meta, f"{u.window}:completions")
        if u.near_30s:
            incr(meta, f"{u.window}:near30")
        if u.type == "play":
            listeners = self.sets[keys.track_listeners(t, u.window, u.track_id)]
            listeners.add(u.user_id)
            meta[f"{u.window}:listeners"] = listeners.count()
        rolled = -1
        maxw = int(meta.get("maxw", -1))
        if u.early:
            flags |= EARLY
        elif u.window > maxw:
            meta["maxw"] = u.window
            rolled = maxw
            keep_from = u.window - limits.max_windows
            if low_window is not None:
                keep_from = max(keep_from, min(low_window, u.window) - KEPT_WINDOWS)
            old = [n for n in meta if (w := _window_of(n)) is not None and w < keep_from]
            for name in old:
                del meta[name]
        return flags, rolled

    async def load_stream(self, tenant: str, stream: str, lane: str = "audio") -> bytes | None:
        return self.blobs.get(keys.stream(tenant, stream, lane))

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
        meta = self.hashes[keys.stream(tenant, stream, lane)]
        previous = int(meta.get("seq", -1))
        if seq <= previous:
            return StreamSaved(accepted=False, previous=previous)
        quota_key = keys.quota(tenant, record_time_ms // (DAY_S * 1000))
        admitted_key = keys.stream_admitted(tenant, stream)
        first = self.counters.get(admitted_key)
        new = first is None or seq < first
        used, quota = self.counters[quota_key], self.limits.new_ids_per_day
        if quota > 0 and new and used + 1 > quota:
            return Refused(Reason.QUOTA_EXCEEDED, f"tenant created {used} ids that day")
        if first is None:
            self.counters[quota_key] += 1
            self.counters[admitted_key] = seq
        version, kept_item = 0, False
        if embedding is not None:
            version, kept_item = self.catalogue_write(
                tenant,
                embedding.model,
                embedding.item,
                embedding.vector,
                now_ms=int(time.time() * 1000),
                count_day=record_time_ms,
            )
        meta["seq"] = seq
        self.blobs[keys.stream(tenant, stream, lane)] = state
        kept = self.kept[keys.stream_outputs(tenant, position.partition, stream, lane)]
        kept[position.offset] = (str(position), self.incarnation, outputs)
        for offset in [o for o in kept if o < position.committed]:
            del kept[offset]
        while len(kept) > self.limits.outputs_per_stream:
            del kept[min(kept)]
        return StreamSaved(
            accepted=True, previous=previous, catalogue_version=version, item_kept=kept_item
        )

    def shelf(self, tenant: str, model: str) -> Shelf:
        return self.shelves.setdefault((tenant, model), Shelf())

    def catalogue_write(
        self, tenant: str, model: str, item: str, vector: bytes, *, now_ms: int, count_day: int
    ) -> tuple[int, bool]:
        """lua/catalogue.lua: the item written if the quota of ``count_day``'s day has room
        for a new one; (the catalogue's version, kept)."""
        shelf = self.shelf(tenant, model)
        quota_key = keys.quota(tenant, count_day // (DAY_S * 1000))
        limit = self.limits.new_ids_per_day
        if shelf.fresh(item):
            if limit > 0 and self.counters[quota_key] + 1 > limit:
                return 0, False
            self.counters[quota_key] += 1
        version = shelf.write(
            item, vector, now_ms=now_ms, ttl_s=self.limits.state_ttl_s, gone_for_ms=GONE_FOR_MS
        )
        return version, True

    async def kept_chunk(
        self, tenant: str, stream: str, position: Position, lane: str = "audio"
    ) -> KeptChunk | None:
        kept = self.kept.get(keys.stream_outputs(tenant, position.partition, stream, lane), {})
        found = kept.get(position.offset)
        if found is None or found[0] != str(position):
            return None
        return KeptChunk(outputs=found[2], own=found[1] == self.incarnation)

    async def note_dead_letters(self, letters: Sequence[tuple[str | None, Position]]) -> list[bool]:
        noted = []
        for owner, position in letters:
            ledger = self.ledgers[keys.deadletter_ledger(owner, position.topic, position.partition)]
            noted.append(position.offset not in ledger)
            ledger.add(position.offset)
            ledger.difference_update({o for o in ledger if o < position.committed})
        return noted

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
