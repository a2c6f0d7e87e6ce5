"""Recommendations on generated tenants with known taste clusters (``recommend_data``).

Quality: hit rate@10 of each listener's held-out next play, for the ``user_id`` request,
with the production listening step (co-listening kept as ``listening.lua`` keeps it, in
the in-memory store that mirrors it) and the production recommendation step: the hybrid
ranking against what is popular now, content only and collaborative only, all in the
same run. The content weight is tuned on the ``sessions`` tenant and reported on the
``playlists`` one, which was not looked at.

Latency: a real core worker on the embedded broker and Redis, its listening state built
from the ``sessions`` tenant's events sent through Kafka, its embeddings written as the
tagger writes them; requests published to ``recommend.requests`` at a steady rate, and
the time until each answer is read, beside the do-nothing floor fed the same requests.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from workers.core.recommend import CONTENT_WEIGHT, popular_items
from workers.core.records import LISTENING_EVENTS, RECOMMEND_REQUESTS, RECOMMENDATIONS, Record
from workers.core.tagging import TagModel
from workers.dev.benchmarks.common import percentiles, write_results
from workers.dev.benchmarks.recommend_data import (
    Catalogue,
    Listening,
    catalogue,
    playlists,
    sessions,
)
from workers.pipeline.listening import ListeningStep
from workers.pipeline.recommend import RecommendStep
from workers.state import MemoryStore
from workers.state.catalogue import MemoryCatalogue
from workers.state.protocol import StateLimits

__all__ = ["run"]

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
DAY_MS = 86_400_000


def _event(n: int, user: str, track: str, ts: int, played: int) -> bytes:
    return orjson.dumps(
        {"event_id": f"b{n}", "tenant": "eval", "user_id": user, "track_id": track,
         "type": "play", "ts": ts, "ms_played": played}
    )  # fmt: skip


async def _world(cat: Catalogue, data: Listening) -> tuple[MemoryStore, MemoryCatalogue]:
    store = MemoryStore()
    step = ListeningStep(tenants=["eval"], store=store, window_s=3600)
    ordered = sorted(data.plays, key=lambda p: p[2])
    for start in range(0, len(ordered), 256):
        records = [
            Record(
                LISTENING_EVENTS,
                0,
                start + i,
                f"eval/{u}".encode(),
                _event(start + i, u, t, ts, ms),
            )
            for i, (u, t, ts, ms) in enumerate(ordered[start : start + 256])
        ]
        await step.process_batch(records)
    shelf = MemoryCatalogue(store)
    for track, vector in cat.embeddings.items():  # new releases were tagged on upload
        await shelf.save_embedding("eval", track, vector, now_ms=int(time.time() * 1000))
    return store, shelf


async def hit_rates(cat: Catalogue, data: Listening, weights: tuple[float, ...]) -> dict[str, Any]:
    store, shelf = await _world(cat, data)
    played = {track for _, track, _, _ in data.plays}
    steps = {
        f"{w:.1f}": RecommendStep(tenants=["eval"], store=store, catalogue=shelf, content_weight=w)
        for w in weights
    }
    for only in ("content", "collaborative"):
        steps[f"{only} only"] = RecommendStep(
            tenants=["eval"], store=store, catalogue=shelf, sources=(only,)
        )
    hits: dict[str, list[bool]] = {name: [] for name in (*steps, "popular now")}
    cold: dict[str, list[bool]] = {name: [] for name in hits}
    now = int(time.time() * 1000)
    for n, (user, truth) in enumerate(sorted(data.held_out.items())):
        body = orjson.dumps({"request_id": f"r{n}", "tenant": "eval", "user_id": user, "k": 10})
        record = Record(RECOMMEND_REQUESTS, 0, n, f"eval/r{n}".encode(), body)
        is_cold = truth not in played  # a track nobody played yet
        for name, step in steps.items():
            (output,) = (await step.process(record)).outputs
            value = output.value
            assert isinstance(value, dict)
            found = truth in {item["id"] for item in value["items"]}  # type: ignore[typeddict-item]
            hits[name].append(found)
            if is_cold:
                cold[name].append(found)
        recent, _, popular, _ = await shelf.reads("eval", user=user, tracks=(), now_ms=now, n=30)
        found = truth in {i.id for i in popular_items(popular, k=10, exclude=set(recent))}
        hits["popular now"].append(found)
        if is_cold:
            cold["popular now"].append(found)
    return {
        "listeners": len(data.held_out),
        "plays": len(data.plays),
        "cold_held_out": len(next(iter(cold.values()))),
        "hit_rate_at_10": {k: float(np.mean(v)) for k, v in hits.items()},
        "cold_hit_rate_at_10": {k: float(np.mean(v)) if v else None for k, v in cold.items()},
    }


def latency(cat: Catalogue, data: Listening, *, requests: int, rate: float) -> dict[str, Any]:
    from workers.dev.forwarder import Forwarder
    from workers.dev.stack import Stack
    from workers.dev.testing import WorkerProcess
    from workers.runtime.admin import create_topics

    stack = Stack().start()
    worker = WorkerProcess(
        {**stack.env(), "WORKERS_TENANTS": "eval", "WORKERS_REBALANCE_TIMEOUT_S": "3",
         "WORKERS_LOG_LEVEL": "warning"},
        log=stack.workdir / "worker.log",
    )  # fmt: skip
    floor = ("floor.recommend.requests", "floor.out")
    try:
        asyncio.run(create_topics(stack.broker.bootstrap, list(floor), partitions=4))
        worker.start()
        worker.wait_ready(timeout=90)
        forwarder = Forwarder(stack.broker.bootstrap, [floor[0]], floor[1], "bench-floor").start()
        try:
            return asyncio.run(
                _drive(
                    stack=stack,
                    worker=worker,
                    cat=cat,
                    data=data,
                    floor=floor,
                    requests=requests,
                    rate=rate,
                )
            )
        finally:
            forwarder.stop()
    finally:
        worker.kill()
        stack.stop()


async def _drive(
    *,
    stack: Any,
    worker: Any,
    cat: Catalogue,
    data: Listening,
    floor: tuple[str, str],
    requests: int,
    rate: float,
) -> dict[str, Any]:
    """The tenant's listening state built through the worker, its embeddings written as the
    tagger writes them; then requests at ``rate``, to the worker and to the floor."""
    import redis.asyncio as aioredis

    from workers.dev.client import Collector, start_producer
    from workers.dev.testing import metric_value
    from workers.state.catalogue import RedisCatalogue

    floor_in, floor_out = floor
    producer = await start_producer(stack.broker.bootstrap)
    for n, (u, t, ts, ms) in enumerate(sorted(data.plays, key=lambda p: p[2])):
        await producer.send(LISTENING_EVENTS, _event(n, u, t, ts, ms), key=f"eval/{u}".encode())
    await producer.flush()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = metric_value(worker.metrics(), "workers_records_processed_total",
                            topic=LISTENING_EVENTS, outcome="ok")  # fmt: skip
        if done >= len(data.plays):
            break
        await asyncio.sleep(0.5)
    client = aioredis.Redis.from_url(stack.redis.url)
    shelf = RedisCatalogue(client, limits=StateLimits(), model="MSD_musicnn")
    for track, vector in cat.embeddings.items():
        await shelf.save_embedding("eval", track, vector, now_ms=int(time.time() * 1000))
    await client.aclose()
    collector = await Collector(stack.broker.bootstrap, (RECOMMENDATIONS, floor_out)).start()
    sent: dict[tuple[str, bytes], float] = {}
    users, tracks = sorted(data.held_out), sorted(cat.tracks)
    began = time.monotonic()
    for n in range(requests):
        subject = (
            {"user_id": users[n % len(users)]} if n % 2 else {"track_id": tracks[n % len(tracks)]}
        )
        body = orjson.dumps({"request_id": f"q{n}", "tenant": "eval", "k": 10, **subject})
        key = f"eval/q{n}".encode()
        for topic, out in ((RECOMMEND_REQUESTS, RECOMMENDATIONS), (floor_in, floor_out)):
            sent[(out, key)] = time.time()
            await producer.send(topic, body, key=key)
        await asyncio.sleep(max(0.0, began + (n + 1) / rate - time.monotonic()))
    await producer.flush()
    await collector.wait_for(lambda r: r.topic == RECOMMENDATIONS, requests, timeout=60)
    await collector.wait_for(lambda r: r.topic == floor_out, requests, timeout=60)
    e2e: dict[str, list[float]] = {RECOMMENDATIONS: [], floor_out: []}
    inside = []
    for r in collector.received:
        at = sent.get((r.topic, r.key or b""))
        if at is not None:
            e2e[r.topic].append(r.arrived - at)
        if r.topic == RECOMMENDATIONS:
            inside.append(float(r.json()["latency_ms"]) / 1000)  # type: ignore[arg-type]
    await collector.stop()
    await producer.stop()
    return {
        "requests": requests,
        "rate_per_s": rate,
        "answered": len(e2e[RECOMMENDATIONS]),
        "worker_end_to_end": percentiles(e2e[RECOMMENDATIONS]),
        "floor_end_to_end": percentiles(e2e[floor_out]),
        "in_worker": percentiles(inside),
    }


def run(
    *, quick: bool = False, out_dir: Path = Path("bench-results"), console: Console | None = None
) -> dict[str, Any]:
    console = console or Console()
    model = TagModel.load()
    with console.status("recommend: rendering and tagging the catalogue…"):
        cat = catalogue(8 if quick else 24, model)
    start_ts = int(time.time() * 1000) - 20 * DAY_MS
    users = 120 if quick else 600
    tenants = {
        "sessions (tuned on)": sessions(cat, users, start_ts=start_ts, seed=1),
        "playlists (held out)": playlists(cat, users, start_ts=start_ts, seed=2),
    }
    results: dict[str, Any] = {"tracks": len(cat.tracks), "new_releases": len(cat.new)}
    with console.status("recommend: hit rates…"):
        for name, data in tenants.items():
            results[name] = asyncio.run(hit_rates(cat, data, WEIGHTS))
    tuned = results["sessions (tuned on)"]["hit_rate_at_10"]  # the weights only
    best = max(WEIGHTS, key=lambda w: tuned[f"{w:.1f}"])
    results["tuned_content_weight"] = best
    results["shipped_content_weight"] = CONTENT_WEIGHT
    with console.status("recommend: latency through a real worker…"):
        results["latency"] = latency(
            cat, tenants["sessions (tuned on)"], requests=200 if quick else 1000, rate=50
        )
    write_results("recommend", results, out_dir)
    table = Table(title="Recommendations: hit rate@10 of held-out next plays", title_justify="left")
    table.add_column("tenant")
    for column in (
        "popular now",
        "content only",
        "collaborative only",
        f"hybrid ({CONTENT_WEIGHT})",
        "cold: hybrid / collab.",
    ):
        table.add_column(column, justify="right")
    for name in tenants:
        r = results[name]
        h, c = r["hit_rate_at_10"], r["cold_hit_rate_at_10"]
        cold = (
            f"{c[f'{CONTENT_WEIGHT:.1f}']:.2f} / {c['collaborative only']:.2f}"
            if r["cold_held_out"]
            else "-"
        )
        table.add_row(
            f"{name}: {r['listeners']} listeners",
            f"{h['popular now']:.3f}",
            f"{h['content only']:.3f}",
            f"{h['collaborative only']:.3f}",
            f"{h[f'{CONTENT_WEIGHT:.1f}']:.3f}",
            cold,
        )
    console.print(table)
    lat = results["latency"]
    console.print(
        f"tuned content weight: {best} (shipped {CONTENT_WEIGHT}); request → answer at "
        f"{lat['rate_per_s']:.0f}/s: worker p50/p99 {lat['worker_end_to_end']['p50_ms']:.1f} / "
        f"{lat['worker_end_to_end']['p99_ms']:.1f} ms, floor "
        f"{lat['floor_end_to_end']['p50_ms']:.1f} / {lat['floor_end_to_end']['p99_ms']:.1f} ms, "
        f"in the worker {lat['in_worker']['p50_ms']:.2f} / {lat['in_worker']['p99_ms']:.2f} ms"
    )
    return results
