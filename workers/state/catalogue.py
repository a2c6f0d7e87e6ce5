"""What music understanding reads and writes beside the listening state: audio embeddings
per track, co-listening, listeners' recent plays and what is popular now.

``Catalogue`` is the protocol; ``RedisCatalogue`` and ``MemoryCatalogue`` implement it
side by side (the memory one reads the sets ``MemoryStore`` keeps as ``listening.lua``
does). Co-listening, recent plays and popularity are *written* by the listening step's
atomic script (exactly once per event); this reads them. Embeddings are written by the
tagger with its stream's state, in one step (``StateStore.save_stream``), into the tenant's
catalogue of the tagger's model (models never share a catalogue: their embedding spaces
differ); each write bumps the catalogue's version and stamps the item with it, so a reader
holding version ``v`` fetches only what changed since, removals included. Items count
against the tenant's quota of new ids and leave when unwritten for the state's time to
live (``lua/catalogue.lua``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster

from workers.core import colisten
from workers.state import keys, scripts
from workers.state.memory import MemoryStore
from workers.state.protocol import GONE_FOR_MS, StateLimits
from workers.state.redis_client import translated

__all__ = ["Catalogue", "Changed", "MemoryCatalogue", "RedisCatalogue", "unit_bytes"]

Ranked = list[tuple[str, float]]


@dataclass(frozen=True)
class Changed:
    """What changed in a catalogue after a reader's version: ids written and their unit
    vectors (n, d), ids removed (expired), and ``reset`` when the reader was too far behind
    to be told what was removed: it holds nothing but what comes with this answer."""

    version: int
    ids: tuple[str, ...]
    vectors: npt.NDArray[np.float32]
    removed: tuple[str, ...] = ()
    reset: bool = False


def unit_bytes(vector: npt.NDArray[np.floating]) -> bytes:
    """A vector as the catalogue keeps it: unit length, little-endian float32."""
    v = np.asarray(vector, np.float32)
    norm = float(np.linalg.norm(v))
    return (v / norm if norm > 0 else v).astype("<f4").tobytes()


class Catalogue(Protocol):
    """A tenant's audio catalogue (of one tagger model) and its listening signals."""

    async def save_embedding(
        self, tenant: str, item: str, vector: npt.NDArray[np.floating], *, now_ms: int
    ) -> int:
        """Store ``item``'s embedding outside the tagger (seeding, tests): counted against
        the tenant's quota like the tagger's; the catalogue's new version (0: not kept)."""

    async def embeddings_since(self, tenant: str, version: int) -> Changed:
        """What changed after ``version`` (everything for 0)."""

    async def reads(
        self, tenant: str, *, user: str | None, tracks: Sequence[str], now_ms: int, n: int
    ) -> tuple[list[str], list[Ranked], Ranked, int]:
        """One round trip for a recommendation: the listener's recent tracks (newest first),
        the co-listened tracks of each of ``tracks`` (best first), the tenant's popular
        tracks now, and the catalogue's version."""


def _ranked(flat: Sequence[Any]) -> Ranked:
    out: Ranked = []
    for member, score in flat:
        name = member.decode() if isinstance(member, bytes) else str(member)
        out.append((name, float(score)))
    return out


def _changed(
    version: int, reset: bool, stamped: Sequence[str], blobs: Sequence[bytes | None]
) -> Changed:
    found = [(i, b) for i, b in zip(stamped, blobs, strict=True) if b]
    vectors = (
        np.stack([np.frombuffer(b, "<f4") for _, b in found]).astype(np.float32)
        if found
        else np.zeros((0, 0), np.float32)
    )
    removed = tuple(i for i, b in zip(stamped, blobs, strict=True) if not b and not reset)
    return Changed(version, tuple(i for i, _ in found), vectors, removed, reset)


class RedisCatalogue:
    def __init__(
        self, client: aioredis.Redis | RedisCluster, *, limits: StateLimits, model: str
    ) -> None:
        self._client = client
        self._limits = limits
        self.model = model
        self._save = scripts.EMBEDDING

    @translated
    async def save_embedding(
        self, tenant: str, item: str, vector: npt.NDArray[np.floating], *, now_ms: int
    ) -> int:
        m, limits = self.model, self._limits
        command = self._save.command(
            scripts.EmbeddingKeys(
                embeddings=keys.embeddings(tenant, m),
                catalogue=keys.catalogue(tenant, m),
                stamps=keys.embedding_stamps(tenant, m),
                written=keys.embedding_written(tenant, m),
                gone=keys.embedding_gone(tenant, m),
                quota=keys.quota(tenant, now_ms // 86_400_000),
            ),
            scripts.EmbeddingArgs(
                item=item,
                vector=unit_bytes(vector),
                now=now_ms,
                catalogue_ttl=limits.state_ttl_s,
                gone_for=GONE_FOR_MS,
                quota_limit=limits.new_ids_per_day,
                quota_ttl=2 * 86_400,
            ),
        )
        try:
            reply = await self._client.execute_command(*command)
        except rx.NoScriptError:
            await self._save.load(self._client)
            reply = await self._client.execute_command(*command)
        if int(reply[0]) < 0:
            raise ValueError(f"embedding not saved: {reply[2]!r}")
        return int(reply[0])

    @translated
    async def embeddings_since(self, tenant: str, version: int) -> Changed:
        m = self.model
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.catalogue(tenant, m), ["version", "floor"])
            pipe.zrangebyscore(keys.embedding_stamps(tenant, m), f"({version}", "+inf")
            (current, floor), names = await pipe.execute()
        reset = version > 0 and version < int(floor or 0)
        if reset:
            names = await self._client.zrange(keys.embedding_stamps(tenant, m), 0, -1)
        ids = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        blobs = await self._client.hmget(keys.embeddings(tenant, m), ids) if ids else []
        return _changed(int(current or 0), reset, ids, [_bytes(b) if b else None for b in blobs])

    @translated
    async def reads(
        self, tenant: str, *, user: str | None, tracks: Sequence[str], now_ms: int, n: int
    ) -> tuple[list[str], list[Ranked], Ranked, int]:
        co_epoch = colisten.epoch_of(now_ms, colisten.CO_LISTEN_HALF_LIFE_MS)
        pop_epoch = colisten.epoch_of(now_ms, colisten.POPULAR_HALF_LIFE_MS)
        async with self._client.pipeline(transaction=False) as pipe:
            for track in tracks:
                pipe.zrevrange(keys.co_listen(tenant, co_epoch, track), 0, n - 1, withscores=True)
            pipe.zrevrange(keys.popular(tenant, pop_epoch), 0, n - 1, withscores=True)
            pipe.zrevrange(keys.popular(tenant, pop_epoch - 1), 0, n - 1, withscores=True)
            pipe.hget(keys.catalogue(tenant, self.model), "version")
            if user is not None:
                pipe.lrange(keys.recent(tenant, user), 0, -1)
            replies = await pipe.execute()
        if user is not None:
            *replies, recent = replies
        co = [_ranked(r) for r in replies[: len(tracks)]]
        # a new epoch's set fills from its first play: until then, the last epoch's
        popular = _ranked(replies[-3]) or _ranked(replies[-2])
        version = int(replies[-1] or 0)
        return (_recent(recent) if user is not None else []), co, popular, version


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def _recent(items: Sequence[Any]) -> list[str]:
    out: list[str] = []
    for item in items:
        text = item.decode() if isinstance(item, bytes) else str(item)
        track = text.rpartition("|")[0]
        if track and track not in out:
            out.append(track)
    return out


@dataclass
class MemoryCatalogue:
    """The same over a ``MemoryStore`` (tests, benchmarks): the store keeps the catalogue."""

    store: MemoryStore
    model: str = "MSD_musicnn"

    async def save_embedding(
        self, tenant: str, item: str, vector: npt.NDArray[np.floating], *, now_ms: int
    ) -> int:
        version, kept = self.store.catalogue_write(
            tenant, self.model, item, unit_bytes(vector), now_ms=now_ms, count_day=now_ms
        )
        return version if kept else 0

    async def embeddings_since(self, tenant: str, version: int) -> Changed:
        shelf = self.store.shelf(tenant, self.model)
        reset = 0 < version < shelf.floor
        stamped = sorted(
            (i for i, v in shelf.stamps.items() if reset or v > version),
            key=shelf.stamps.__getitem__,
        )
        return _changed(shelf.version, reset, stamped, [shelf.vectors.get(i) for i in stamped])

    async def reads(
        self, tenant: str, *, user: str | None, tracks: Sequence[str], now_ms: int, n: int
    ) -> tuple[list[str], list[Ranked], Ranked, int]:
        co_epoch = colisten.epoch_of(now_ms, colisten.CO_LISTEN_HALF_LIFE_MS)
        pop_epoch = colisten.epoch_of(now_ms, colisten.POPULAR_HALF_LIFE_MS)
        recent = _recent(self.store.lists.get(keys.recent(tenant, user), [])) if user else []

        def best(key: str) -> Ranked:
            scores = self.store.zsets.get(key, {})
            return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

        co = [best(keys.co_listen(tenant, co_epoch, t)) for t in tracks]
        popular = best(keys.popular(tenant, pop_epoch)) or best(keys.popular(tenant, pop_epoch - 1))
        return recent, co, popular, self.store.shelf(tenant, self.model).version
