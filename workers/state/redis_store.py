"""The Redis state store: Lua scripts (atomic, one round trip) and pipelined batches."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Coroutine, Mapping, Sequence
from importlib import resources
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as rx

from workers.core.listening_state import ListeningState, ListeningUpdate
from workers.state.keys import key
from workers.state.listening_reply import decode_listening
from workers.state.protocol import RECENT_CHUNKS, SEEN_TTL_S, STREAM_TTL_S, StateUnavailable

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
    def __init__(self, client: aioredis.Redis, *, window_s: int) -> None:
        self._client = client
        self._window_ttl_s = window_s * 6
        self._listening = _Script(_script("listening.lua"))
        self._stream = _Script(_script("stream.lua"))

    @classmethod
    def from_url(cls, url: str, *, window_s: int, **options: Any) -> RedisStore:
        """``options``: ACL user and TLS files (``security.redis_options``)."""
        client = aioredis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=10, **options
        )
        return cls(client, window_s=window_s)

    @_translated
    async def apply_listening(
        self, updates: Sequence[ListeningUpdate]
    ) -> list[ListeningState | None]:
        if not updates:
            return []
        try:
            replies = await self._apply_listening(updates)
        except rx.NoScriptError:
            await self._listening.load(self._client)
            replies = await self._apply_listening(updates)
        return [decode_listening(reply) for reply in replies]

    async def _apply_listening(self, updates: Sequence[ListeningUpdate]) -> list[list[int]]:
        # One pipeline for the whole batch: one round trip however many events.
        async with self._client.pipeline(transaction=False) as pipe:
            for u in updates:
                keys = [
                    key(u.tenant, "seen", u.event_id),
                    key(u.tenant, "user", u.user_id),
                    key(u.tenant, "user", u.user_id, "tracks"),
                    key(u.tenant, "track", u.track_id),
                    key(u.tenant, "track", u.track_id, "listeners", u.window),
                    key(u.tenant, "user", u.user_id, "plays"),
                ]
                args: list[str | int] = [
                    u.type,
                    u.ms_played,
                    u.track_id,
                    u.hour,
                    u.ts,
                    u.user_id,
                    u.window,
                    SEEN_TTL_S,
                    self._window_ttl_s,
                    int(u.near_30s),
                    int(u.completed),
                    u.position,
                ]
                pipe.evalsha(self._listening.sha, len(keys), *keys, *args)
            replies: list[list[int]] = await pipe.execute()
        return replies

    @_translated
    async def load_stream(self, tenant: str, stream: str) -> bytes | None:
        state = await self._client.hget(key(tenant, "stream", stream), "state")
        if state is None:
            return None
        return state.encode() if isinstance(state, str) else bytes(state)

    @_translated
    async def save_stream(
        self, tenant: str, stream: str, seq: int, state: bytes, *, position: str, outputs: bytes
    ) -> tuple[bool, int]:
        keys = (key(tenant, "stream", stream), key(tenant, "recent", stream))
        args = (seq, state, STREAM_TTL_S, position, outputs, RECENT_CHUNKS)
        try:
            accepted, previous = await self._client.evalsha(self._stream.sha, 2, *keys, *args)
        except rx.NoScriptError:
            await self._stream.load(self._client)
            accepted, previous = await self._client.evalsha(self._stream.sha, 2, *keys, *args)
        return bool(accepted), int(previous)

    @_translated
    async def recent_chunk(self, tenant: str, stream: str, seq: int) -> tuple[str, bytes] | None:
        wanted = f"{seq}|".encode()
        for entry in await self._client.lrange(key(tenant, "recent", stream), 0, -1):
            raw = entry.encode() if isinstance(entry, str) else bytes(entry)
            if raw.startswith(wanted):
                position, _, outputs = raw[len(wanted) :].partition(b"|")
                return position.decode(), outputs
        return None

    @_translated
    async def load_snapshot(self, tenant: str, kind: str) -> bytes | None:
        blob = await self._client.get(key(tenant, "model", kind))
        if blob is None:
            return None
        return blob.encode() if isinstance(blob, str) else bytes(blob)

    @_translated
    async def save_snapshots(self, snapshots: Mapping[tuple[str, str], bytes]) -> None:
        if not snapshots:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for (tenant, kind), blob in snapshots.items():
                pipe.set(key(tenant, "model", kind), blob)
            await pipe.execute()

    @_translated
    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def close(self) -> None:
        await self._client.aclose()
