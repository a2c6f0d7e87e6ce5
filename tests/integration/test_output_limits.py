"""Outputs larger than their topic allows, against a real broker's topic configuration.

Strict isolation gives each tenant its own topics, so one stack holds both cases:
acme's ``predictions.popularity`` takes at most 700 bytes and its dead-letter topic
100 kB; beats' dead-letter topic takes 200 bytes, less than any dead letter. An output that
does not fit becomes a dead letter that does; when not even that fits, the partition
stops there, says why, and its offset is never committed past the record.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.helpers import event_body, tone
from tests.integration.conftest import TENANTS, start_worker
from workers.core.records import INPUT_TOPICS, OUTPUT_TOPICS, topic_name
from workers.dev.client import Collector, audio_headers, pcm_bytes, start_producer
from workers.dev.stack import Stack
from workers.dev.testing import metric_value

LIMITS = {
    "acme.predictions.popularity": {"max.message.bytes": "700"},
    "acme.events.deadletter": {"max.message.bytes": "100000"},
    "beats.events.deadletter": {"max.message.bytes": "200"},
}


@pytest.fixture(scope="module")
def strict_stack() -> Iterator[Stack]:
    topics = [
        topic_name(topic, owner=t)
        for t in TENANTS.split(",")
        for topic in (*INPUT_TOPICS, *OUTPUT_TOPICS)
    ]
    running = Stack().start(topics=topics, configs=LIMITS)
    yield running
    running.stop()


async def committed(stack: Stack, topic: str, partition: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.broker.bootstrap, group_id="workers")
    await consumer.start()
    try:
        return int(await consumer.committed(TopicPartition(topic, partition)) or -1)
    finally:
        await consumer.stop()


async def test_outputs_that_do_not_fit_their_topic(strict_stack: Stack, tmp_path: Path) -> None:
    worker = start_worker(strict_stack, tmp_path / "worker.log", WORKERS_ISOLATION="strict")
    topics = [topic_name(topic, owner=t) for t in TENANTS.split(",") for topic in OUTPUT_TOPICS]
    collector = await Collector(strict_stack.broker.bootstrap, topics).start()
    producer = await start_producer(strict_stack.broker.bootstrap)

    async def send(topic: str, key: bytes, value: bytes, headers: object = None) -> tuple[int, int]:
        meta = await (await producer.send(topic, value, key=key, headers=headers))
        return meta.partition, meta.offset

    try:
        events = "acme.listening.events"
        await send(events, b"acme/u1", orjson.dumps(event_body("acme", "u1", "fits")))
        long_id = "x" * 128
        big = event_body("acme", "u1", long_id, track=long_id)
        big_at = await send(events, b"acme/u1", orjson.dumps(big))
        # an oversized chunk (11 s): its dead letter, the chunk itself, is 352 kB
        samples = tone(seconds=11, sr=16000, channels=1)
        raw = pcm_bytes(samples)
        headers = audio_headers(tenant="acme", stream="big", seq=0, sample_rate=16000, channels=1)
        await send("acme.audio.chunks", b"acme/big", raw, headers)
        for i in range(20):  # and good traffic after them
            await send(events, b"acme/u1", orjson.dumps(event_body("acme", "u1", f"after-{i}")))

        letters = await collector.wait_for(
            lambda r: r.topic == "acme.events.deadletter", 2, timeout=60
        )
        by_reason = {r.header("error"): r for r in letters}
        assert set(by_reason) == {"output-rejected", "oversized"}, by_reason.keys()
        rejected = by_reason["output-rejected"]
        assert rejected.header("rejected-topic") == "acme.predictions.popularity"
        assert rejected.value == orjson.dumps(big), "the input, whole: it fits"
        assert f"{rejected.header('source-partition')}:{rejected.header('source-offset')}" == (
            f"{big_at[0]}:{big_at[1]}"
        )
        cut = by_reason["oversized"]
        assert cut.header("value-truncated") == str(len(raw))
        assert cut.header("value-sha256") == hashlib.sha256(raw).hexdigest()
        assert 0 < len(cut.value) <= 100_000 and raw.startswith(cut.value)
        scored = await collector.wait_for(
            lambda r: r.topic == "acme.predictions.anomaly", 22, timeout=60
        )
        assert {m.json()["ref"] for m in scored} >= {"fits", long_id} | {
            f"after-{i}" for i in range(20)
        }
        popularity = collector.matching(lambda r: r.topic == "acme.predictions.popularity")
        assert long_id not in {m.json()["ref"] for m in popularity}
        for _ in range(100):  # the next commit (every second) goes past the rejected record
            if await committed(strict_stack, events, big_at[0]) > big_at[1]:
                break
            await asyncio.sleep(0.1)
        assert await committed(strict_stack, events, big_at[0]) > big_at[1]

        # beats: not even a dead letter fits, so the partition stops at the bad record
        beats = "beats.listening.events"
        bad_at = await send(beats, b"beats/b1", b"{not json")
        for _ in range(100):  # found when the commit checks the deliveries (every second)
            if metric_value(worker.metrics(), "workers_partitions_blocked") == 1:
                break
            await asyncio.sleep(0.1)
        for i in range(5):  # the partition is no longer fetched
            await send(beats, b"beats/b1", orjson.dumps(event_body("beats", "b1", f"held-{i}")))
        await asyncio.sleep(2.5)  # commit intervals pass; nothing past the record may go
        assert metric_value(worker.metrics(), "workers_partitions_blocked") == 1
        assert await committed(strict_stack, beats, bad_at[0]) <= bad_at[1]
        held = collector.matching(lambda r: r.topic == "beats.predictions.anomaly")
        assert not [m for m in held if str(m.json()["ref"]).startswith("held-")], (
            "the partition stopped: nothing sent after it stopped is processed"
        )
        log = (tmp_path / "worker.log").read_text()
        assert "stopped at offset" in log and "could not be delivered" in log
        assert worker.status("/healthz") == 200
        print(
            "\noutputs too large: a 740-byte popularity output on a 700-byte topic became an "
            "output-rejected dead letter, a 352 kB dead letter was cut to "
            f"{len(cut.value)} bytes with its length and digest, 20 events after them scored "
            "and committed; a dead letter larger than its 200-byte topic stopped its "
            "partition (workers_partitions_blocked 1, offset not committed past it)"
        )
    finally:
        worker.terminate()
        await collector.stop()
        await producer.stop()
