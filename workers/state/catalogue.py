"""What music understanding reads and writes beside the listening state: audio embeddings
per track, co-listening, listeners' recent plays and what is popular now.

``Catalogue`` is the protocol; ``RedisCatalogue`` and ``MemoryCatalogue`` implement it
side by side (the memory one reads the sets ``MemoryStore`` keeps as ``listening.lua``
does). Co-listening, recent plays and popularity are *written* by the listening step's
atomic script (exactly once per event); this reads them. Embeddings are written by the
tagger: each write bumps the tenant's version and stamps the item with it, so a reader
holding version ``v`` fetches only what changed since.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster

from workers.core import colisten
from workers.state import keys, scripts
from workers.state.memory import MemoryStore
from workers.state.redis_client import translated

__all__ = ["Catalogue", "Changed", "MemoryCatalogue", "RedisCatalogue"]

Ranked = list[tuple[str, float]]


@dataclass(frozen=True)
class Changed:
    """Embeddings written after a reader's version: ids and their unit vectors (n, d)."""

    version: int
    ids: tuple[str, ...]
    vectors: npt.NDArray[np.float32]


def _unit(vector: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    v = np.asarray(vector, np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


class Catalogue(Protocol):
    async def save_embedding(self, tenant: str, item: str, vector: npt.NDArray[np.floating]) -> int:
        """Store ``item``'s embedding (scaled to unit length); the tenant's new version."""

    async def embeddings_since(self, tenant: str, version: int) -> Changed:
        """The embeddings written after ``version`` (all of them for 0)."""

    async def reads(
        self, tenant: str, *, user: str | None, tracks: Sequence[str], now_ms: int, n: int
    ) -> tuple[list[str], list[Ranked], Ranked, int]:
        """One round trip for a recommendation: the listener's recent tracks (newest first),
        the co-listened tracks of each of ``tracks`` (best first), the tenant's popular
        tracks now, and the tenant's embeddings version."""


def _ranked(flat: Sequence[Any]) -> Ranked:
    out: Ranked = []
    for member, score in flat:
        name = member.decode() if isinstance(member, bytes) else str(member)
        out.append((name, float(score)))
    return out


class RedisCatalogue:
    def __init__(self, client: aioredis.Redis | RedisCluster, *, ttl_s: int) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._save = scripts.SAVE_EMBEDDING

    @translated
    async def save_embedding(self, tenant: str, item: str, vector: npt.NDArray[np.floating]) -> int:
        command = self._save.command(
            scripts.EmbeddingKeys(
                embeddings=keys.embeddings(tenant),
                version=keys.embeddings_version(tenant),
                stamps=keys.embedding_stamps(tenant),
            ),
            scripts.EmbeddingArgs(
                item=item, vector=_unit(vector).astype("<f4").tobytes(), ttl=self._ttl_s
            ),
        )
        try:
            return int(await self._client.execute_command(*command))
        except rx.NoScriptError:
            await self._save.load(self._client)
            return int(await self._client.execute_command(*command))

    @translated
    async def embeddings_since(self, tenant: str, version: int) -> Changed:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.get(keys.embeddings_version(tenant))
            pipe.zrangebyscore(keys.embedding_stamps(tenant), f"({version}", "+inf")
            current, names = await pipe.execute()
        ids = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
        if not ids:
            return Changed(int(current or 0), (), np.zeros((0, 0), np.float32))
        blobs = await self._client.hmget(keys.embeddings(tenant), list(ids))
        found = [(i, _bytes(b)) for i, b in zip(ids, blobs, strict=True) if b]
        vectors = np.stack([np.frombuffer(b, "<f4") for _, b in found]) if found else None
        return Changed(
            int(current or 0),
            tuple(i for i, _ in found),
            vectors.astype(np.float32) if vectors is not None else np.zeros((0, 0), np.float32),
        )

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
            pipe.get(keys.embeddings_version(tenant))
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
    """The same over a ``MemoryStore`` (tests, benchmarks)."""

    store: MemoryStore
    vectors: dict[str, dict[str, npt.NDArray[np.float32]]] = field(default_factory=dict)
    stamps: dict[str, dict[str, int]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)

    async def save_embedding(self, tenant: str, item: str, vector: npt.NDArray[np.floating]) -> int:
        version = self.versions.get(tenant, 0) + 1
        self.versions[tenant] = version
        self.vectors.setdefault(tenant, {})[item] = _unit(vector)
        self.stamps.setdefault(tenant, {})[item] = version
        return version

    async def embeddings_since(self, tenant: str, version: int) -> Changed:
        stamps = self.stamps.get(tenant, {})
        ids = tuple(sorted((i for i, v in stamps.items() if v > version), key=stamps.__getitem__))
        vectors = (
            np.stack([self.vectors[tenant][i] for i in ids])
            if ids
            else np.zeros((0, 0), np.float32)
        )
        return Changed(self.versions.get(tenant, 0), ids, vectors)

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
        return recent, co, popular, self.versions.get(tenant, 0)
