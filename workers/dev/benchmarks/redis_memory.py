"""Redis memory per active listener and per track after a day of simulated traffic, and
what a catalogue flood can take.

A tenant's day: listeners with a heavy-tailed number of events (most a few dozen, some
hundreds), tracks with Zipf-like popularity, events spread over 24 h of event time and
applied through the production ``RedisStore`` (its Lua scripts, its TTLs) against a real
``redis-server``, with the worker's clock following the event time. Then ``MEMORY USAGE``
of every key, summed per kind of key: what a listener, a track and the replay memory cost.

The flood: one tenant writes five times its daily quota of new catalogue items (embeddings
of 200 numbers); the catalogue keeps the quota's worth, and a core process's similarity
index over the items kept is measured too (resident memory, before and after the graph).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from rich.console import Console
from rich.table import Table

from workers.core.listening import ListeningEvent, to_update
from workers.core.position import Position
from workers.core.similarity import SimilarityIndex
from workers.dev.benchmarks.common import write_results
from workers.dev.stack import RedisServer, stop_process
from workers.state import RedisStore
from workers.state.catalogue import RedisCatalogue
from workers.state.protocol import StateLimits

__all__ = ["run"]

DAY_MS = 24 * 3600 * 1000
START_MS = 1_764_000_000_000


def _day(listeners: int, tracks: int, seed: int) -> list[ListeningEvent]:
    rng = np.random.default_rng(seed)
    per_listener = np.minimum(rng.lognormal(3.2, 1.0, listeners).astype(int) + 1, 2000)
    popularity = 1.0 / np.arange(1, tracks + 1) ** 0.9
    popularity /= popularity.sum()
    events = []
    for user, count in enumerate(per_listener):
        picks = rng.choice(tracks, size=count, p=popularity)
        times = np.sort(rng.integers(0, DAY_MS, size=count))
        kinds = rng.choice(["play", "play", "play", "skip", "like"], size=count)
        for i, (track, at, kind) in enumerate(zip(picks, times, kinds, strict=True)):
            events.append(
                ListeningEvent(
                    event_id=f"u{user}-e{i}",
                    tenant="bench",
                    user_id=f"listener-{user}",
                    track_id=f"track-{track}",
                    type=str(kind),
                    ts=START_MS + int(at),
                    ms_played=int(rng.integers(5_000, 240_000)) if kind != "like" else None,
                    track_ms=240_000,
                )
            )
    events.sort(key=lambda e: e.ts)
    return events


def _kind(name: bytes) -> str:
    return name.split(b"}:", 1)[1].split(b":", 1)[0].decode()


async def _measure(url: str, listeners: int, tracks: int, seed: int) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    store = RedisStore(client, limits=StateLimits(new_ids_per_day=0))
    events = _day(listeners, tracks, seed)
    base = int((await client.info("memory"))["used_memory"])
    started = time.perf_counter()
    for i in range(0, len(events), 256):
        batch = events[i : i + 256]
        now = batch[-1].ts + 1000
        await store.apply_listening(
            [
                to_update(
                    e,
                    window_s=3600,
                    position=Position("listening.events", 0, i + j),
                    record_time_ms=e.ts,
                    now_ms=now,
                )
                for j, e in enumerate(batch)
            ],
            now_ms=now,
        )
    elapsed = time.perf_counter() - started
    used = int((await client.info("memory"))["used_memory"]) - base
    per_kind: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    async for name in client.scan_iter(count=1000):
        per_kind[_kind(name)] += int(await client.memory_usage(name, samples=0) or 0)
        counts[_kind(name)] += 1
    await client.aclose()
    listener_kinds = ("user", "user-tracks", "user-plays")
    track_kinds = ("track", "track-listeners")
    return {
        "events": len(events),
        "listeners": listeners,
        "tracks_seen": counts["track"],
        "events_per_second": len(events) / elapsed,
        "used_memory_bytes": used,
        "bytes_by_kind": dict(per_kind),
        "keys_by_kind": dict(counts),
        "bytes_per_listener": sum(per_kind[k] for k in listener_kinds) / listeners,
        "replay_memory_bytes_per_listener": per_kind["seen"] / listeners,
        "bytes_per_track": sum(per_kind[k] for k in track_kinds) / max(1, counts["track"]),
        "bytes_per_event_of_replay_memory": per_kind["seen"] / len(events),
    }


async def _flood(url: str, quota: int) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    limits = StateLimits(new_ids_per_day=quota)
    catalogue = RedisCatalogue(client, limits=limits, model="MSD_musicnn")
    rng = np.random.default_rng(3)
    base = int((await client.info("memory"))["used_memory"])
    kept = 0
    for i in range(5 * quota):
        vector = rng.standard_normal(200)
        kept += int(await catalogue.save_embedding("flood", f"t{i}", vector, now_ms=START_MS) > 0)
    used = int((await client.info("memory"))["used_memory"]) - base
    items = len((await catalogue.embeddings_since("flood", 0)).ids)
    await client.aclose()
    return {
        "quota_per_day": quota,
        "items_sent": 5 * quota,
        "items_kept": kept,
        "items_readable": items,
        "used_memory_bytes": used,
        "bytes_per_item": used / max(1, kept),
    }


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _index_memory(items: int) -> dict[str, Any]:
    """A core process's similarity index over ``items`` embeddings: resident memory while
    exact, and with its graph (half-precision vectors; the exact matrix let go)."""
    rng = np.random.default_rng(5)
    before = _rss_mb()
    index = SimilarityIndex(exact_limit=items // 2, max_items=items)
    for start in range(0, items, 10_000):
        n = min(10_000, items - start)
        block = rng.standard_normal((n, 200)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        index.upsert([f"t{i}" for i in range(start, start + n)], block)
    exact_mb = _rss_mb() - before
    began = time.perf_counter()
    index.build()
    build_s = time.perf_counter() - began
    return {
        "items": items,
        "exact_rss_mb": exact_mb,
        "graph_rss_mb": _rss_mb() - before,
        "graph_build_s": build_s,
        "index_nbytes_mb": index.nbytes() / 2**20,
    }


def run(*, quick: bool = False, out_dir: Path, console: Console | None = None) -> dict[str, Any]:
    console = console or Console()
    listeners, tracks = (500, 300) if quick else (5_000, 2_000)
    workdir = Path(tempfile.mkdtemp(prefix="workers-bench-redis-"))
    server = RedisServer()
    server.start(workdir / "redis.log", workdir)
    try:
        figures = asyncio.run(_measure(server.url, listeners, tracks, seed=7))
        flood = asyncio.run(_flood(server.url, quota=2_000 if quick else 20_000))
    finally:
        stop_process(server.process)
    index = _index_memory(20_000 if quick else 200_000)
    table = Table(title=f"Redis after a day: {figures['events']:,} events")
    table.add_column("what")
    table.add_column("bytes", justify="right")
    table.add_row(
        "per active listener (counters, track sets)", f"{figures['bytes_per_listener']:,.0f}"
    )
    table.add_row(
        "  + replay memory per listener (a day)",
        f"{figures['replay_memory_bytes_per_listener']:,.0f}",
    )
    table.add_row(
        "  replay memory per event", f"{figures['bytes_per_event_of_replay_memory']:,.1f}"
    )
    table.add_row("per track (window counts, listener sets)", f"{figures['bytes_per_track']:,.0f}")
    table.add_row("used_memory growth, all keys", f"{figures['used_memory_bytes']:,}")
    console.print(table)
    flooded = Table(title="A catalogue flood: five days' quota of new items in one day")
    for column in ("sent", "kept (quota)", "Redis bytes", "bytes per item"):
        flooded.add_column(column, justify="right")
    flooded.add_row(
        f"{flood['items_sent']:,}",
        f"{flood['items_kept']:,} ({flood['quota_per_day']:,})",
        f"{flood['used_memory_bytes']:,}",
        f"{flood['bytes_per_item']:,.0f}",
    )
    console.print(flooded)
    held = Table(title="A core process's similarity index (resident memory)")
    for column in ("items", "exact (MB)", "with its graph (MB)", "graph built in (s)"):
        held.add_column(column, justify="right")
    held.add_row(
        f"{index['items']:,}",
        f"{index['exact_rss_mb']:,.0f}",
        f"{index['graph_rss_mb']:,.0f}",
        f"{index['graph_build_s']:,.0f}",
    )
    console.print(held)
    results = {"redis_memory": figures, "catalogue_flood": flood, "similarity_index": index}
    write_results("redis-memory", results, out_dir)
    return results
