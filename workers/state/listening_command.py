"""The listening script's commands (``listening.lua``, ``clock.lua``): an update in, its
keys and arguments by name (``scripts.py``) out; ``listening_reply.py`` reads the reply."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workers.core import colisten
from workers.core.behaviour import LISTENER_FEATURES, TRACK_FEATURES
from workers.core.colisten import epoch_of
from workers.core.eventtime import PartitionClocks
from workers.core.listening_state import ListeningUpdate
from workers.core.models.accounts import member_hash, track_hash
from workers.core.records import LISTENING_EVENTS
from workers.state import keys, scripts
from workers.state.protocol import DAY_S, StateLimits

__all__ = ["WAITING_FOR_MS", "ListeningCommands"]

LISTENER_NAMES = ",".join(f.name for f in LISTENER_FEATURES)
TRACK_NAMES = ",".join(f.name for f in TRACK_FEATURES)
#: a worker reports its partitions with records waiting every second; a report holds this
#: long (a few missed reports, a worker gone)
WAITING_FOR_MS = 5_000


class ListeningCommands:
    def __init__(self, limits: StateLimits, incarnation: str) -> None:
        self.limits = limits
        self.incarnation = incarnation
        self._tenant_key_cache: dict[tuple[str, int], tuple[str, ...]] = {}
        self._clocks = PartitionClocks()

    def batch(
        self, updates: Sequence[ListeningUpdate], now_ms: int
    ) -> tuple[list[tuple[Any, ...]], list[int]]:
        """The tenants' partitions whose event time is due to be reported (``clock.lua``,
        run ahead of the events in the same pipeline), and each update's horizon: its
        partition's newest event time as of it (``PartitionClocks.read``)."""
        due, horizons = self._clocks.read(
            [(u.tenant, u.position.partition, u.ts, u.early) for u in updates], now_ms=now_ms
        )
        return [self.clock(tenant, now_ms, times=times) for tenant, times in due.items()], horizons

    def clock(
        self,
        tenant: str,
        now_ms: int,
        *,
        times: Sequence[tuple[int, int]] = (),
        waiting: Sequence[int] = (),
    ) -> tuple[Any, ...]:
        """``clock.lua``: partitions' newest event times, and partitions with records
        waiting (their owner's report)."""
        return scripts.CLOCK.command(
            scripts.ClockKeys(clock=keys.event_time(tenant, LISTENING_EVENTS)),
            scripts.ClockArgs(
                now=now_ms,
                idle=self.limits.watermark_idle_ms,
                ttl=self.limits.state_ttl_s,
                waiting_for=WAITING_FOR_MS,
                waiting=",".join(str(p) for p in waiting),
                times=tuple(v for pair in times for v in pair),
            ),
        )

    def _tenant_keys(self, tenant: str, today: int) -> tuple[str, ...]:
        """The keys every event of a tenant names on ``today``: its quota, its forecaster,
        its listener segments, its event-time clock, its references and the prefixes their
        values and its tracks go by (built once a day per tenant)."""
        found = self._tenant_key_cache.get((tenant, today))
        if found is None:
            if len(self._tenant_key_cache) > 4096:
                self._tenant_key_cache.clear()
            found = (
                keys.quota(tenant, today),
                keys.model(tenant, "popularity"),
                keys.model(tenant, "segments"),
                keys.event_time(tenant, LISTENING_EVENTS),
                keys.reference_members(tenant, "listeners"),
                keys.reference_moments(tenant, "listeners"),
                keys.reference_members(tenant, "tracks"),
                keys.reference_moments(tenant, "tracks"),
                keys.reference_values(tenant, "listeners", ""),
                keys.reference_values(tenant, "tracks", ""),
                keys.track(tenant, ""),
            )
            self._tenant_key_cache[(tenant, today)] = found
        return found

    def event(self, u: ListeningUpdate, now_ms: int, horizon: int) -> tuple[Any, ...]:
        limits, params, today = self.limits, self.limits.models, now_ms // (DAY_S * 1000)
        t, uid = u.tenant, u.user_id
        (
            quota,
            forecaster,
            segments,
            clock,
            listener_members,
            listener_moments,
            track_members,
            track_moments,
            listener_prefix,
            track_reference_prefix,
            track_prefix,
        ) = self._tenant_keys(t, today)
        digest = keys.event_digest(u.event_id)
        named = scripts.ListeningKeys(
            user=keys.user(t, uid),
            user_tracks=keys.user_tracks(t, uid),
            user_plays=keys.user_plays(t, uid),
            track_windows=keys.track(t, u.track_id),
            track_listeners=keys.track_listeners(t, u.window, u.track_id),
            erased=keys.erased(t, uid),
            quota=quota,
            forecaster=forecaster,
            recent=keys.recent(t, uid),
            popular=keys.popular(t, epoch_of(u.listener_ts, colisten.POPULAR_HALF_LIFE_MS)),
            segments=segments,
            clock=clock,
            listener_members=listener_members,
            listener_moments=listener_moments,
            track_members=track_members,
            track_moments=track_moments,
            seen_today=keys.seen(t, today, digest),
            seen_days=(
                keys.seen(t, today + 1, digest),
                *(keys.seen(t, today - i, digest) for i in range(1, limits.replay_days)),
            ),
        )
        co = _co_listen(u)
        args = scripts.ListeningArgs(
            kind=u.type,
            ms_played=u.ms_played,
            track_id=u.track_id,
            hour=u.hour,
            ts=u.ts,
            user_id=uid,
            window=u.window,
            seen_ttl=limits.replay_memory_s + DAY_S,
            window_ttl=limits.window_s * 6,
            near30=int(u.near_30s),
            completed=int(u.completed),
            position=str(u.position),
            incarnation=self.incarnation,
            state_ttl=limits.state_ttl_s,
            record_time=u.record_time_ms,
            lateness=limits.lateness_ms,
            early=int(u.early),
            quota_limit=limits.new_ids_per_day,
            quota_ttl=2 * DAY_S,
            kept_tracks=limits.tracks_per_user,
            event_id=u.event_id,
            forgetting=params.forgetting,
            track_hash=track_hash(u.track_id),
            listener_hash=member_hash(uid),
            listener_names=LISTENER_NAMES,
            track_names=TRACK_NAMES,
            listener_prefix=listener_prefix,
            track_reference_prefix=track_reference_prefix,
            track_prefix=track_prefix,
            reference_size=params.reference_size,
            **co,
            event_key=digest,
            listener_ts=u.listener_ts,
            read_time=u.read_time_ms,
            window_ms=limits.window_s * 1000,
            max_windows=limits.max_windows,
            co_origin=colisten.epoch_origin(u.listener_ts, colisten.CO_LISTEN_HALF_LIFE_MS),
            co_half_life=colisten.CO_LISTEN_HALF_LIFE_MS,
            horizon=horizon,
        )
        return scripts.LISTENING.command(named, args)


def _co_listen(u: ListeningUpdate) -> dict[str, Any]:
    """The play's co-listening weights and keys (``ListeningArgs``' last fields)."""
    if not colisten.qualifies(u.type, u.ms_played):
        return {
            "qualifies": 0,
            "co_prefix": "",
            "pop_weight": "0",
            "pop_carry": "",
            "session_gap": 0,
            "co_top": 0,
            "pop_top": 0,
            "recent_kept": 0,
        }
    epoch = colisten.epoch_of(u.listener_ts, colisten.CO_LISTEN_HALF_LIFE_MS)
    pop_epoch, pop_weight = colisten.decayed(u.listener_ts, colisten.POPULAR_HALF_LIFE_MS)
    return {
        "qualifies": 1,
        "co_prefix": keys.co_listen(u.tenant, epoch, ""),
        "pop_weight": repr(pop_weight),
        "pop_carry": keys.popular(u.tenant, pop_epoch - 1),
        "session_gap": colisten.SESSION_GAP_MS,
        "co_top": colisten.CO_LISTEN_TOP,
        "pop_top": colisten.POPULAR_TOP,
        "recent_kept": colisten.RECENT_KEPT,
    }
