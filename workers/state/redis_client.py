"""Talking to Redis: which failures a retry fixes, commands packed in C, Lua scripts by SHA.

Connection-level concerns of ``RedisStore`` (``redis_store.py``), apart from what the
store keeps and how.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Coroutine
from importlib import resources
from typing import Any, ParamSpec, TypeVar

import hiredis
import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster

from workers.state.protocol import StateUnavailable

__all__ = ["Script", "is_transient", "pack_with_hiredis", "script_source", "translated"]

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


def translated(
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


class _HiredisPacking:
    """Commands packed by hiredis (C) instead of redis-py's Python packer, which re-joins
    its buffer once per argument: 49 µs against 5 µs for one listening event's EVALSHA of
    ~60 arguments (measured), the largest cost of a batch in the worker after the socket."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " in args[0]:  # "SCRIPT LOAD": two words
            args = (*args[0].split(), *args[1:])
        return [hiredis.pack_command(args)]


_PACKING: dict[type, type] = {}


def _packing(base: type[Any]) -> type[Any]:
    """``base`` with the C packer (one class per base, however many clients)."""
    if issubclass(base, _HiredisPacking):
        return base
    if base not in _PACKING:
        _PACKING[base] = type(f"Hiredis{base.__name__}", (_HiredisPacking, base), {})
    return _PACKING[base]


def pack_with_hiredis(client: aioredis.Redis | RedisCluster) -> None:
    """Give ``client``'s connections (TLS ones too; every node's, on a cluster) the C packer."""
    if isinstance(client, RedisCluster):
        kwargs = client.nodes_manager.connection_kwargs
        kwargs["connection_class"] = _packing(kwargs.get("connection_class", aioredis.Connection))
        for node in client.nodes_manager.startup_nodes.values():
            node.connection_class = _packing(node.connection_class)
    else:
        pool = client.connection_pool
        pool.connection_class = _packing(pool.connection_class)


def script_source(*names: str) -> str:
    """Lua sources under ``state/lua``, joined into one script (helpers first)."""
    folder = resources.files("workers.state").joinpath("lua")
    return "\n".join(folder.joinpath(name).read_text() for name in names)


class Script:
    """A Lua script called by SHA. redis-py's registered scripts send SCRIPT EXISTS before
    every pipeline: a second round trip per event (measured). Here the script is loaded
    once, and again only when Redis answers NOSCRIPT (it restarted or was flushed)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def load(self, client: aioredis.Redis | RedisCluster) -> None:
        await client.script_load(self.source)
