"""The Redis state store: Lua scripts (atomic, one round trip) and pipelined batches.

Works the same on one server and on Redis Cluster: every multi-key script touches one
tenant's keys only, all under the tenant's hash tag (one slot).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Callable, Coroutine, Mapping, Sequence
from importlib import resources
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as rx

from workers.core.errors import Reason
from workers.core.listening_state import ListeningState, ListeningUpdate
from workers.core.records import Position
from workers.state import keys
from workers.state.listening_reply import decode_listening
from workers.state.protocol import (
    DAY_S,
    KeptChunk,
    Refused,
    StateLimits,
    StateUnavailable,
    StreamSaved,
)

__all__ = ["RedisStore", "is_transient"]

P = ParamSpec("P")
T = TypeVar("T")

#: Replies Redis gives while it cannot serve for now: loading, busy with a script, a replica
#: not yet promoted, a cluster reconfiguring. Waiting fixes them; nothing about the call does.
_TRANSIENT_REPLIES = ("BUSY", "LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")


def is_transient(exc: BaseException) -> bool:
    """True for failures a retry can fix: the connection, a timeout, a server loading or
    failing over, out of memory, a missing permission (an operator fixes those)."""
    if isinstance(
        exc,
        rx.ConnectionError
        | rx.TimeoutError
        | rx.ClusterDownError
        | rx.TryAgainError
        | rx.ReadOnlyError
        | rx.OutOfMemoryError
        | rx.NoPermissionError
        | OSError,
    ):
        return True
    return isinstance(exc, rx.ResponseError) and str(exc).startswith(_TRANSIENT_REPLIES)


def _translated(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Transient failures leave as ``StateUnavailable``; the rest as they are."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except Exception as exc:
            if is_transient(exc):
                raise StateUnavailable(f"{type(exc).__name__}: {exc}") from exc
            raise

    return call


def _script(name: str) -> str:
    return resources.files("workers.state").joinpath(name).read_text()


class _Script:
    """A Lua script called by SHA. redis-py's registered scripts send SCRIPT EXISTS before
    every pipeline: a second round trip per event (measured). Here the script is loaded
    once, and again only when Redis answers NOSCRIPT (it restarted or was flushed)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def load(self, client: aioredis.Redis) -> None:
        await client.script_load(self.source)


class RedisStore:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        limits: StateLimits | None = None,
        incarnation: str | None = None,
    ) -> None:
        self._client = client
        self.limits = limits or StateLimits()
        self.incarnation = incarnation or secrets.token_hex(4)
        self._listening = _Script(_script("listening.lua"))
        self._stream = _Script(_script("stream.lua"))

    @classmethod
    def from_url(cls, url: str, *, limits: StateLimits | None = None, **options: Any) -> RedisStore:
        """``options``: ACL user and TLS files (``security.redis_options``)."""
        client = aioredis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=10, **options
        )
        return cls(client, limits=limits)

    @_translated
    async def apply_listening(
        self, updates: Sequence[ListeningUpdate], *, now_ms: int
    ) -> list[ListeningState | Refused]:
        if not updates:
            return []
        replies = await self._apply_listening(updates, now_ms)
        if any(isinstance(reply, rx.NoScriptError) for reply in replies):
            await self._listening.load(self._client)  # Redis restarted or was flushed
            replies = await self._apply_listening(updates, now_ms)
        results: list[ListeningState | Refused] = []
        for reply in replies:
            if isinstance(reply, Exception):
                if is_transient(reply):  # the whole batch again: what went through is known
                    raise reply
                results.append(Refused(Reason.STATE_ERROR, f"{type(reply).__name__}: {reply}"))
            else:
                results.append(decode_listening(reply))
        return results

    async def _apply_listening(self, updates: Sequence[ListeningUpdate], now_ms: int) -> list[Any]:
        limits, today = self.limits, now_ms // (DAY_S * 1000)
        other_days = [today + 1, *(today - i for i in range(1, limits.replay_days))]
        # One pipeline for the whole batch: one round trip however many events. Errors come
        # back per event, so one bad event does not hide the others' results.
        async with self._client.pipeline(transaction=False) as pipe:
            for u in updates:
                t, uid = u.tenant, u.user_id
                event_keys = [
                    keys.seen(t, today, uid),
                    keys.user(t, uid),
                    keys.user_tracks(t, uid),
                    keys.user_plays(t, uid),
                    keys.track(t, u.track_id),
                    keys.track_listeners(t, u.window, u.track_id),
                    keys.erased(t, uid),
                    keys.quota(t, today),
                    *(keys.seen(t, day, uid) for day in other_days),
                ]
                args: list[str | int] = [
                    u.type,
                    u.ms_played,
                    u.track_id,
                    u.hour,
                    u.ts,
                    uid,
                    u.window,
                    limits.replay_memory_s + DAY_S,
                    limits.window_s * 6,
                    int(u.near_30s),
                    int(u.completed),
                    str(u.position),
                    self.incarnation,
                    limits.state_ttl_s,
                    u.record_time_ms,
                    limits.lateness_ms,
                    int(u.early),
                    limits.new_ids_per_day,
                    2 * DAY_S,
                    limits.tracks_per_user,
                    u.event_id,
                ]
                pipe.evalsha(self._listening.sha, len(event_keys), *event_keys, *args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    @_translated
    async def load_stream(self, tenant: str, stream: str) -> bytes | None:
        state = await self._client.hget(keys.stream(tenant, stream), "state")
        if state is None:
            return None
        return state.encode() if isinstance(state, str) else bytes(state)

    @_translated
    async def save_stream(
        self,
        tenant: str,
        stream: str,
        seq: int,
        state: bytes,
        *,
        position: Position,
        outputs: bytes,
        now_ms: int,
    ) -> StreamSaved | Refused:
        limits = self.limits
        stream_keys = (
            keys.stream(tenant, stream),
            keys.stream_outputs(tenant, position.partition, stream),
            keys.quota(tenant, now_ms // (DAY_S * 1000)),
        )
        args = (
            seq,
            state,
            limits.stream_ttl_s,
            str(position),
            outputs,
            position.offset,
            position.committed,
            limits.outputs_per_stream,
            self.incarnation,
            limits.new_ids_per_day,
            2 * DAY_S,
        )
        try:
            reply = await self._client.evalsha(self._stream.sha, 3, *stream_keys, *args)
        except rx.NoScriptError:
            await self._stream.load(self._client)
            reply = await self._client.evalsha(self._stream.sha, 3, *stream_keys, *args)
        except rx.ResponseError as exc:
            if is_transient(exc):
                raise
            return Refused(Reason.STATE_ERROR, f"{type(exc).__name__}: {exc}")
        if int(reply[0]) < 0:
            reason = Reason.QUOTA_EXCEEDED if _text(reply[1]) == "quota" else Reason.STATE_ERROR
            return Refused(reason, _text(reply[2]))
        return StreamSaved(accepted=int(reply[0]) == 1, previous=int(reply[1]))

    @_translated
    async def kept_chunk(self, tenant: str, stream: str, position: Position) -> KeptChunk | None:
        key = keys.stream_outputs(tenant, position.partition, stream)
        try:
            entries = await self._client.zrangebyscore(key, position.offset, position.offset)
        except rx.ResponseError as exc:  # a key of another type: nothing was kept there
            if is_transient(exc):
                raise
            return None
        wanted = f"{position}|".encode()
        for entry in entries:
            raw = entry.encode() if isinstance(entry, str) else entry
            if isinstance(raw, bytes) and raw.startswith(wanted):
                incarnation, _, rest = raw[len(wanted) :].partition(b"|")
                _seq, _, outputs = rest.partition(b"|")
                return KeptChunk(outputs=outputs, own=incarnation.decode() == self.incarnation)
        return None

    @_translated
    async def note_dead_letters(self, letters: Sequence[tuple[str | None, Position]]) -> list[bool]:
        if not letters:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for owner, position in letters:
                key = keys.deadletter_ledger(owner, position.topic, position.partition)
                pipe.zadd(key, {str(position.offset): position.offset}, nx=True)
                if position.committed >= 0:
                    pipe.zremrangebyscore(key, "-inf", f"({position.committed}")
                pipe.expire(key, self.limits.replay_memory_s)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        noted, i = [], 0
        for _, position in letters:
            reply = replies[i]
            i += 3 if position.committed >= 0 else 2
            if isinstance(reply, Exception):
                if is_transient(reply):
                    raise reply
                noted.append(True)  # a ledger key of another type: say first, never hide one
            else:
                noted.append(int(reply) == 1)
        return noted

    @_translated
    async def load_snapshot(self, tenant: str, kind: str) -> bytes | None:
        blob = await self._client.get(keys.model(tenant, kind))
        if blob is None:
            return None
        return blob.encode() if isinstance(blob, str) else bytes(blob)

    @_translated
    async def save_snapshots(self, snapshots: Mapping[tuple[str, str], bytes]) -> None:
        if not snapshots:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for (tenant, kind), blob in snapshots.items():
                pipe.set(keys.model(tenant, kind), blob)
            await pipe.execute()

    @_translated
    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def close(self) -> None:
        await self._client.aclose()


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
