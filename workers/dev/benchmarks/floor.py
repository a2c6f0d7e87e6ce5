"""Saturated throughput from a backlog, for ``bench latency`` and ``bench scale``: a system
(the floor, this worker, a peer; ``systems.py``) started on a pre-loaded backlog of
listening events, timed from its first output to its last (start-up and group joins are
not processing time), with the CPU it and the broker spent in that window."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rich.console import Console

from workers.core.records import ANOMALY, LISTENING_EVENTS
from workers.dev.benchmarks.common import cpu_seconds
from workers.dev.benchmarks.load import TENANTS, listening_payloads
from workers.dev.benchmarks.systems import running
from workers.dev.stack import Stack

__all__ = ["forwarder_throughput", "new_outputs_reader", "preload", "saturation"]


async def new_outputs_reader(bootstrap: str) -> Any:
    """A started consumer of ANOMALY positioned at its end: it reads only what comes next."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        ANOMALY,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    await consumer.seek_to_end()
    for tp in consumer.assignment():
        await consumer.position(tp)
    return consumer


async def preload(bootstrap: str, n: int) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks=1)
    await producer.start()
    for key, value in listening_payloads(n, "flood"):
        await producer.send(LISTENING_EVENTS, value, key=key)
    await producer.flush()
    await producer.stop()


async def _count(consumer: Any, n: int, pids: dict[str, int]) -> dict[str, Any]:
    seen, first, last = 0, 0.0, 0.0
    cpu_first: dict[str, float] = {}
    cpu_last: dict[str, float] = {}
    deadline = time.time() + 600
    while seen < n and time.time() < deadline:
        batches = await consumer.getmany(timeout_ms=200, max_records=5000)
        got = sum(len(messages) for messages in batches.values())
        if not got:
            continue
        now = {name: cpu_seconds(pid) for name, pid in pids.items()}
        if not first:
            first, cpu_first = time.time(), now
        seen += got
        last, cpu_last = time.time(), now
    seconds = max(last - first, 1e-9)
    return {
        "records": seen,
        "seconds": seconds,
        "per_second": seen / seconds,
        "cpu_ms_per_record": {
            name: round(1000 * (cpu_last[name] - cpu_first[name]) / max(seen, 1), 4)
            for name in cpu_last
        },
    }


def saturation(name: str, stack: Stack, n: int, console: Console) -> dict[str, Any]:
    """``name`` (a system of ``systems.py``) through a backlog of ``n`` events it finds
    pre-loaded on ``stack``'s fresh broker."""
    bootstrap = stack.broker.bootstrap
    with console.status(f"{name}: pre-loading {n:,} events…"):
        asyncio.run(preload(bootstrap, n))
    assert stack.broker.process is not None
    assert stack.redis.process is not None

    async def measure() -> dict[str, Any]:
        consumer = await new_outputs_reader(bootstrap)
        try:
            with running(name, stack, tenants=TENANTS, backlog=True, group=f"flood-{name}") as r:
                pids = {
                    name: r.pid,
                    "broker": stack.broker.process.pid,  # type: ignore[union-attr]
                    "redis": stack.redis.process.pid,  # type: ignore[union-attr]
                }
                return await _count(consumer, n, pids)
        finally:
            await consumer.stop()

    with console.status(f"{name}: draining a backlog of {n:,} events…"):
        return asyncio.run(measure())


def forwarder_throughput(stack: Stack, n: int, console: Console) -> dict[str, Any]:
    """Saturated throughput of the do-nothing floor from a backlog of ``n`` events."""
    return saturation("floor", stack, n, console)
