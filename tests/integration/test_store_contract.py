"""One contract, two stores: the Redis store (Lua, pipelined) and the in-memory store agree."""

from __future__ import annotations

import random

import redis.asyncio as aioredis

from workers.core.listening import ListeningEvent, to_update
from workers.core.listening_state import ListeningUpdate
from workers.state import MemoryStore, RedisStore
from workers.state.keys import key
from workers.state.protocol import RECENT_CHUNKS

HOUR = 3_600_000


def scenario(tenant: str, n: int, seed: int) -> list[ListeningUpdate]:
    rng = random.Random(seed)
    updates = []
    for i in range(n):
        kind = rng.choice(["play", "play", "play", "skip", "like", "share"])
        event = ListeningEvent(
            event_id=f"e{rng.randint(0, n)}",  # some ids repeat: duplicates
            tenant=tenant,
            user_id=f"u{rng.randint(0, 4)}",
            track_id=f"t{rng.randint(0, 3)}",
            type=kind,
            ts=1_764_000_000_000 + i * 7 * 60_000 + rng.randint(-HOUR, HOUR),
            ms_played=rng.choice([5_000, 31_000, 200_000]) if kind in ("play", "skip") else None,
            track_ms=200_000,
        )
        # positions repeat sometimes too: a replayed record, not a duplicate
        position = f"listening.events:0:{rng.randint(0, n) if rng.random() < 0.3 else i}"
        updates.append(to_update(event, window_s=3600, position=position))
    return updates


async def test_redis_and_memory_stores_agree(redis_client: aioredis.Redis) -> None:
    memory = MemoryStore()
    store = RedisStore(redis_client, window_s=3600)
    updates = scenario("acme", 300, seed=1)
    for start in range(0, len(updates), 17):  # uneven batches, one pipeline each
        batch = updates[start : start + 17]
        assert await store.apply_listening(batch) == await memory.apply_listening(batch)


async def test_stream_sequence_contract(redis_client: aioredis.Redis) -> None:
    memory, store = MemoryStore(), RedisStore(redis_client, window_s=3600)
    assert await store.load_stream("acme", "s") is None
    for offset, seq in enumerate((0, 1, 1, 5, 3, 6, *range(7, 50))):
        blob = f"state-{seq}".encode() + bytes(range(256))
        saved = {"position": f"audio.chunks:0:{offset}", "outputs": b"out|" + blob}
        assert await store.save_stream("acme", "s", seq, blob, **saved) == (
            await memory.save_stream("acme", "s", seq, blob, **saved)
        )
        assert await store.load_stream("acme", "s") == await memory.load_stream("acme", "s")
    for seq in (0, 1, 3, 17, 18, 49, 50):  # only the last RECENT_CHUNKS are kept
        kept = await store.recent_chunk("acme", "s", seq)
        assert kept == await memory.recent_chunk("acme", "s", seq)
        assert (kept is not None) == (50 - RECENT_CHUNKS <= seq < 50)
    assert await store.recent_chunk("acme", "s", 1) is None
    assert (await store.recent_chunk("acme", "s", 49)) == (
        "audio.chunks:0:48",
        b"out|state-49" + bytes(range(256)),
    )


async def test_snapshots_round_trip(redis_client: aioredis.Redis) -> None:
    store = RedisStore(redis_client, window_s=3600)
    await store.save_snapshots({("acme", "m"): b"\x00blob", ("beats", "m"): b"other"})
    assert await store.load_snapshot("acme", "m") == b"\x00blob"
    assert await store.load_snapshot("beats", "m") == b"other"
    assert await store.load_snapshot("acme", "missing") is None
    assert await redis_client.exists(key("acme", "model", "m"))


async def _dump_tenant(client: aioredis.Redis, tenant: str) -> dict[bytes, bytes]:
    dumped = {}
    async for name in client.scan_iter(match=f"{{{tenant}}}:*"):
        dumped[name] = await client.dump(name)
    return dumped


async def test_one_tenant_never_touches_another(redis_client: aioredis.Redis) -> None:
    store = RedisStore(redis_client, window_s=3600)
    await store.apply_listening(scenario("beats", 50, seed=2))
    before = await _dump_tenant(redis_client, "beats")
    assert before
    for seed in range(5):
        await store.apply_listening(scenario("acme", 100, seed=seed))
        await store.save_stream("acme", "s", seed, b"state", position="p", outputs=b"[]")
    assert await _dump_tenant(redis_client, "beats") == before
    async for name in redis_client.scan_iter():
        assert name.startswith((b"{acme}:", b"{beats}:"))
