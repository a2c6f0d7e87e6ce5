"""The do-nothing floor: a plain consume → produce loop, one output per input.

What the broker and one Python hop with the worker's client cost, measured on the same
stack, in the same run, as the worker: ``make demo`` and ``bench latency`` print the worker
beside it, so the worker's own share of a latency is what is left above the floor.

It uses the worker's consumer and producer settings (fetch wait, linger, acks) and answers
each input with a record shaped like the worker's anomaly output (``kind``, ``tenant``,
``subject``, ``ref``, ``latency_ms``), so the same reader times both. It validates nothing,
keeps no state and runs no model.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from collections.abc import Sequence
from typing import Any

import orjson

from workers.runtime.settings import Settings

__all__ = ["RDKAFKA_GROUP", "Forwarder", "echo"]

#: librdkafka's rebalance timeout is its max.poll.interval.ms (5 min by default), and a join
#: on the embedded broker completes only after it (measured: 23 s with the defaults, 3 s with
#: these): the bench's librdkafka clients use 6 s, like the worker's short rebalance timeout
RDKAFKA_GROUP = {"session.timeout.ms": 6000, "max.poll.interval.ms": 6000}


def echo(topic: str, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> dict[str, Any]:
    """The output the floor gives for one input: who it was about, nothing computed."""
    if topic.endswith("audio.chunks"):
        h = {name: raw.decode(errors="replace") for name, raw in headers}
        return {
            "kind": "audio",
            "tenant": h.get("tenant"),
            "subject": h.get("stream"),
            "ref": int(h["seq"]) if h.get("seq", "").isdigit() else h.get("seq"),
            "is_anomaly": False,
        }
    try:
        event = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        event = {}
    if not isinstance(event, dict):
        event = {}
    return {
        "kind": "listening",
        "tenant": event.get("tenant"),
        "subject": event.get("user_id"),
        "ref": event.get("event_id"),
        "is_anomaly": False,
    }


def _run_aiokafka(
    bootstrap: str, sources: list[str], target: str, group: str, ready: Any, *, from_start: bool
) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    s = Settings()

    async def main() -> None:
        consumer = AIOKafkaConsumer(
            *sources,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest" if from_start else "latest",
            enable_auto_commit=True,
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            max_poll_records=s.batch_max,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            rebalance_timeout_ms=3000,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            linger_ms=s.producer_linger_ms,
            acks="all",
            max_request_size=8 * 1024 * 1024,
        )
        await consumer.start()
        await producer.start()
        while not consumer.assignment():  # joined: the group's assignment is in
            await consumer.getmany(timeout_ms=100)
        for tp in consumer.assignment():  # "latest" resolved now: nothing sent later is missed
            await consumer.position(tp)
        ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=s.batch_max)
            for messages in batches.values():
                for m in messages:
                    received = time.perf_counter()
                    out = echo(m.topic, m.value, m.headers or ())
                    out["latency_ms"] = round((time.perf_counter() - received) * 1000.0, 3)
                    await producer.send(target, orjson.dumps(out), key=m.key)

    asyncio.run(main())


def _run_rdkafka(
    bootstrap: str, sources: list[str], target: str, group: str, ready: Any, *, from_start: bool
) -> None:
    """The loop on librdkafka (confluent-kafka), the client of the worker's default engine."""
    from confluent_kafka import Consumer, Producer

    s = Settings()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest" if from_start else "latest",
            "enable.auto.commit": True,
            "fetch.wait.max.ms": s.fetch_max_wait_ms,
            "fetch.queue.backoff.ms": 0,
            "socket.nagle.disable": True,
            **RDKAFKA_GROUP,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": s.producer_linger_ms,
            "acks": "all",
            "socket.nagle.disable": True,
        }
    )
    consumer.subscribe(sources)
    while True:
        first = consumer.poll(0.1)  # wait for one, then take what is there without waiting
        messages = [first, *consumer.consume(s.batch_max - 1, 0)] if first is not None else []
        if not ready.is_set() and consumer.assignment():
            ready.set()
        for m in messages:
            if m.error():
                continue
            received = time.perf_counter()
            out = echo(m.topic(), m.value(), m.headers() or ())
            out["latency_ms"] = round((time.perf_counter() - received) * 1000.0, 3)
            producer.produce(target, orjson.dumps(out), m.key())
        producer.poll(0)


class Forwarder:
    """The floor in its own process (like the worker): ``start`` returns once it is
    assigned its partitions; ``stop`` ends it. It reads what is sent after it joined, or
    (``from_start``) its topics from the beginning. ``client``: ``rdkafka`` (librdkafka,
    the worker's default client) or ``aiokafka`` (to show what the client library costs)."""

    def __init__(
        self,
        bootstrap: str,
        sources: Sequence[str],
        target: str,
        group: str,
        *,
        from_start: bool = False,
        client: str = "rdkafka",
    ) -> None:
        self._ready = mp.get_context("spawn").Event()
        self.process = mp.get_context("spawn").Process(
            target=_run_aiokafka if client == "aiokafka" else _run_rdkafka,
            args=(bootstrap, list(sources), target, group, self._ready),
            kwargs={"from_start": from_start},
            daemon=True,
        )

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def start(self, timeout: float = 60.0) -> Forwarder:
        self.process.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError("the forwarder did not join its group")
        return self

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)
