"""The floor of ``bench latency``: saturated throughput from a backlog, the worker against a
plain aiokafka consume-and-forward loop on the same broker, each timed from its first
output to its last (start-up and group joins are not processing time)."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from typing import Any

import orjson
from rich.console import Console

from workers.core.records import ANOMALY, LISTENING_EVENTS
from workers.dev.benchmarks.latency import TENANTS, _listening_payloads
from workers.dev.stack import Stack
from workers.dev.testing import WorkerProcess
from workers.runtime.admin import create_topics

__all__ = ["forwarder_throughput", "new_outputs_reader", "start_live_forwarder", "throughput"]


def _forward(
    bootstrap: str, source: str, target: str, group: str, ready: Any, *, live: bool = False
) -> None:
    """The floor: a plain consume-and-forward loop, one output per input. ``live``: start
    at the end of the topic and emit what ``bench latency`` reads (ref, subject)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def main() -> None:
        consumer = AIOKafkaConsumer(
            source,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="latest" if live else "earliest",
            fetch_max_wait_ms=10,
            enable_auto_commit=True,
            rebalance_timeout_ms=3000,
        )
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1)
        await consumer.start()
        await producer.start()
        ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            for messages in batches.values():
                for m in messages:
                    if live:
                        event = orjson.loads(m.value)
                        out = {"ref": event["event_id"], "subject": event["user_id"]}
                        value = orjson.dumps({**out, "latency_ms": 0.0})
                    else:
                        value = orjson.dumps({"ref": m.offset, "v": len(m.value)})
                    await producer.send(target, value, key=m.key)

    asyncio.run(main())


async def _count(
    bootstrap: str, topic: str, until: int, timeout: float
) -> tuple[int, float, float]:
    """Records on ``topic``: how many, when the first and the last arrived (start-up and
    group joins are not counted as processing time)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    seen, first, last = 0, 0.0, time.time()
    deadline = time.time() + timeout
    while seen < until and time.time() < deadline:
        batches = await consumer.getmany(timeout_ms=200, max_records=5000)
        for messages in batches.values():
            if messages and not first:
                first = time.time()
            seen += len(messages)
            if messages:
                last = time.time()
    await consumer.stop()
    return seen, first, last


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


async def _count_new_outputs(
    bootstrap: str, worker: WorkerProcess, n: int
) -> tuple[int, float, float]:
    """Start reading ANOMALY at its end, then start ``worker``: count what it produces."""
    consumer = await new_outputs_reader(bootstrap)
    worker.start()
    seen, first, last = 0, 0.0, 0.0
    deadline = time.time() + 600
    while seen < n and time.time() < deadline:
        batches = await consumer.getmany(timeout_ms=200, max_records=5000)
        for messages in batches.values():
            if messages:
                first = first or time.time()
                last = time.time()
            seen += len(messages)
    await consumer.stop()
    return seen, first, last


async def _preload(bootstrap: str, n: int) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks=1)
    await producer.start()
    for key, value in _listening_payloads(n, "flood"):
        await producer.send(LISTENING_EVENTS, value, key=key)
    await producer.flush()
    await producer.stop()


def start_live_forwarder(stack: Stack) -> Any:
    """The floor for the open-loop sweep: listening events forwarded to the topic the
    measuring consumer reads, by the plain loop; returns the process (terminate it)."""
    ready = mp.get_context("spawn").Event()
    forwarder = mp.get_context("spawn").Process(
        target=_forward,
        args=(stack.broker.bootstrap, LISTENING_EVENTS, ANOMALY, "floor-live", ready),
        kwargs={"live": True},
    )
    forwarder.start()
    ready.wait(60)
    time.sleep(4.0)  # the group join completes after the rebalance timeout on this broker
    return forwarder


def forwarder_throughput(stack: Stack, n: int, console: Console) -> dict[str, Any]:
    """Saturated throughput of the plain consume-and-forward loop from a backlog of ``n``
    events it pre-loads."""
    bootstrap = stack.broker.bootstrap
    with console.status(f"floor: pre-loading {n} events, then a plain consume-and-forward loop…"):
        asyncio.run(_preload(bootstrap, n))
        asyncio.run(create_topics(bootstrap, ["floor.out"], partitions=4))
        ready = mp.get_context("spawn").Event()
        forwarder = mp.get_context("spawn").Process(
            target=_forward, args=(bootstrap, LISTENING_EVENTS, "floor.out", "floor", ready)
        )
        forwarder.start()
        ready.wait(60)
        seen, first, last = asyncio.run(_count(bootstrap, "floor.out", n, timeout=300))
        forwarder.terminate()
        return {"records": seen, "seconds": last - first, "per_second": seen / (last - first)}


def throughput(stack: Stack, n: int, console: Console) -> dict[str, Any]:
    """Saturated throughput from a backlog of ``n`` events: the worker against the floor."""
    bootstrap = stack.broker.bootstrap
    floor = forwarder_throughput(stack, n, console)
    with console.status("worker: the same backlog through a fresh worker group…"):
        worker = WorkerProcess(
            {
                **stack.env(),
                "WORKERS_TENANTS": ",".join(TENANTS),
                "WORKERS_GROUP_ID": "flood",
                "WORKERS_REBALANCE_TIMEOUT_S": "3",
                "WORKERS_LOG_LEVEL": "warning",
            },
            log=stack.workdir / "flood.log",
        )
        try:
            seen, first, last = asyncio.run(_count_new_outputs(bootstrap, worker, n))
        finally:
            worker.terminate()
        ours = {"records": seen, "seconds": last - first, "per_second": seen / (last - first)}
    return {"floor": floor, "worker": ours, "ratio": ours["per_second"] / floor["per_second"]}
