"""Backlogs are normal: a worker that starts on a backlog (after an outage, a deploy, a new
tenant's history) must give the answers live traffic gives, and one tenant's flood must not
take the others' share. Real broker, Redis and worker; records from the topics."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator

import orjson
import pytest

from tests.helpers import event_body
from tests.integration.conftest import start_worker
from workers.core.records import LISTENING_EVENTS, POPULARITY, RECOMMEND_REQUESTS, RECOMMENDATIONS
from workers.dev.client import Collector, start_producer
from workers.dev.stack import Stack
from workers.dev.testing import WorkerProcess, metric_value

HOUR = 3_600_000
SPAN = 48 * HOUR
N = 6_000
#: where the 48 h begin: two days ago, on the hour (the same for every tenant and call)
START = int(time.time() * 1000) // HOUR * HOUR - SPAN - 2 * HOUR


def _events(tenant: str, seed: int) -> list[tuple[int, dict[str, object]]]:
    """(partition, event) for ``N`` plays over 48 h of event time, in time order. Most
    listeners live on partition 0, so that partition holds more records for the same hours
    and drains slower in event time, as real partitions do."""
    rng = random.Random(seed)
    out = []
    for i in range(N):
        user = rng.randrange(200)
        partition = 0 if user < 120 else 1 + user % 3
        body = event_body(
            tenant,
            f"bl-u{user}",
            f"bl-{tenant}-{i}",
            track=f"bl-t{rng.randrange(30)}",
            ts=START + i * SPAN // N,
        )
        out.append((partition, body))
    return out


def _truth(events: list[tuple[int, dict[str, object]]]) -> Counter[tuple[str, int]]:
    return Counter(
        (str(body["track_id"]), int(body["ts"]) // HOUR * HOUR)  # type: ignore[call-overload]
        for _, body in events
    )


async def _publish(stack: Stack, events: list[tuple[int, dict[str, object]]]) -> None:
    producer = await start_producer(stack.broker.bootstrap)
    try:
        for partition, body in events:
            await producer.send(
                LISTENING_EVENTS,
                orjson.dumps(body),
                key=f"{body['tenant']}/{body['user_id']}".encode(),
                partition=partition,
            )
        await producer.flush()
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def backlogged(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """Tenant beats' 48 h of plays published before any worker runs; then a worker that
    degrades when it is a second behind its input (it will be, for the whole backlog)."""
    asyncio.run(_publish(stack, _events("beats", seed=1)))
    worker = start_worker(
        stack,
        tmp_path_factory.mktemp("backlog") / "worker.log",
        WORKERS_GROUP_ID="backlog",
        WORKERS_OVERLOAD_LAG_ENTER_S="1",
        WORKERS_OVERLOAD_LAG_LEAVE_S="0.5",
        WORKERS_RECOMMEND_RATE_PER_TENANT="50",
    )
    yield worker
    worker.terminate()


def _window_plays(collector: Collector, tenant: str) -> Counter[tuple[str, int]]:
    """The most plays each (track, window) reached in the tenant's popularity outputs."""
    best: Counter[tuple[str, int]] = Counter()
    for m in collector.matching(lambda r: r.topic == POPULARITY):
        value = m.json()
        if value["tenant"] != tenant or not str(value["track_id"]).startswith("bl-t"):
            continue
        key = (str(value["track_id"]), int(value["window_start"]))  # type: ignore[call-overload]
        best[key] = max(best[key], int(value["plays"]))  # type: ignore[call-overload]
    return best


async def test_a_backlog_counts_every_play_live_traffic_counts(
    backlogged: WorkerProcess, stack: Stack, collector: Collector
) -> None:
    backlog, live = _events("beats", seed=1), _events("acme", seed=1)
    truth_backlog, truth_live = _truth(backlog), _truth(live)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 180
    while loop.time() < deadline and sum(_window_plays(collector, "beats").values()) < N:  # noqa: ASYNC110
        await asyncio.sleep(0.5)
    # the same plays for another tenant, live: a batch at a time, in time order
    for start in range(0, N, 500):
        await _publish(stack, live[start : start + 500])
        while sum(_window_plays(collector, "acme").values()) < 0.9 * (start + 500):
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.2)
    while loop.time() < deadline and _window_plays(collector, "acme") != truth_live:  # noqa: ASYNC110
        await asyncio.sleep(0.5)
    metrics = backlogged.metrics()
    degraded = metric_value(metrics, "workers_degraded_records_total", topic=LISTENING_EVENTS)
    learnt = metric_value(
        metrics, "workers_model_inputs", tenant="beats", model="listening-anomaly"
    )
    got_backlog, got_live = _window_plays(collector, "beats"), _window_plays(collector, "acme")
    lost = sum((truth_backlog - got_backlog).values())
    print(
        f"\nbacklog of {N} plays over 48 h: windows {len(truth_backlog)}, plays lost "
        f"{lost}; {degraded:.0f} records processed degraded, {learnt:.0f} learnt"
    )
    assert got_live == truth_live, "live, every play reached its window"
    assert got_backlog == truth_backlog, "as a backlog, every play reached its window too"
    assert degraded > 0, "the worker was behind its input: the test did what it says"
    assert learnt >= N, "every event was learnt, degraded or not"


async def test_one_tenants_flood_of_requests_leaves_the_others_their_share(
    backlogged: WorkerProcess, stack: Stack, collector: Collector
) -> None:
    """acme sends 10,000 recommendation requests at once; beats, meanwhile, plays and asks.
    beats' requests get full answers while the flood drains, its models learn all its plays,
    and acme's requests past its share are answered at once from what is popular."""
    producer = await start_producer(stack.broker.bootstrap)
    metrics = backlogged.metrics()
    learnt_before = metric_value(
        metrics, "workers_model_inputs", tenant="beats", model="listening-anomaly"
    )
    now = int(time.time() * 1000)
    try:
        for i in range(10_000):
            body = {"request_id": f"fl-{i}", "tenant": "acme", "track_id": f"bl-t{i % 30}"}
            await producer.send(RECOMMEND_REQUESTS, orjson.dumps(body), key=f"acme/fl-{i}".encode())
        sent_at = time.monotonic()
        for i in range(200):
            body = event_body("beats", f"fl-u{i % 10}", f"fl-e{i}", track=f"bl-t{i % 30}", ts=now)
            await producer.send(
                LISTENING_EVENTS, orjson.dumps(body), key=f"beats/fl-u{i % 10}".encode()
            )
        for i in range(20):
            body = {"request_id": f"quiet-{i}", "tenant": "beats", "track_id": f"bl-t{i}"}
            await producer.send(
                RECOMMEND_REQUESTS, orjson.dumps(body), key=f"beats/quiet-{i}".encode()
            )
        await producer.flush()

        quiet = await collector.wait_for(
            lambda r: r.topic == RECOMMENDATIONS and b"beats/quiet-" in (r.key or b""),
            20,
            timeout=120,
        )
        quiet_s = time.monotonic() - sent_at
        flood = await collector.wait_for(
            lambda r: r.topic == RECOMMENDATIONS and b"acme/fl-" in (r.key or b""),
            10_000,
            timeout=240,
        )
        flood_s = time.monotonic() - sent_at
        learnt = metric_value(
            backlogged.metrics(), "workers_model_inputs", tenant="beats", model="listening-anomaly"
        )
    finally:
        await producer.stop()
    limited = sum(bool(m.json().get("rate_limited")) for m in flood)
    print(
        f"\nflood of 10,000 requests from one tenant: all answered in {flood_s:.1f} s, "
        f"{limited} past its share (popular, at once); the other tenant's 20 requests "
        f"answered in full within {quiet_s:.1f} s, its 200 plays learnt"
    )
    assert len({m.json()["request_id"] for m in flood}) == 10_000
    assert len(quiet) == 20 and not any(m.json().get("rate_limited") for m in quiet)
    assert limited > 5_000, "the flood went past its share"
    assert learnt - learnt_before >= 200, "the quiet tenant's models learnt all its plays"
