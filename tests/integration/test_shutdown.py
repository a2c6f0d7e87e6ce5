"""Graceful stop under load: SIGTERM, restart, and nothing is lost or doubled."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import orjson

from tests.helpers import event_body
from tests.integration.conftest import start_worker
from workers.client import Collector, start_producer
from workers.records import ANOMALY, DEADLETTER, LISTENING_EVENTS
from workers.stack import Stack
from workers.testing import metric_value

N_EVENTS = 1500


async def test_sigterm_during_load_loses_nothing(stack: Stack, tmp_path: Path) -> None:
    first = start_worker(stack, tmp_path / "first.log")
    collector = await Collector(stack.broker.bootstrap).start()
    producer = await start_producer(stack.broker.bootstrap)

    async def publish() -> None:
        for i in range(N_EVENTS):
            body = event_body(
                "acme",
                f"stop-u{i % 40}",
                f"stop-{i}",
                track=f"t{i % 7}",
                ts=1_764_000_000_000 + i * 1000,
            )
            await producer.send(
                LISTENING_EVENTS, orjson.dumps(body), key=f"acme/stop-u{i % 40}".encode()
            )
            if i % 50 == 0:
                await asyncio.sleep(0.02)  # ~2,500 events/s, so the stop lands mid-stream

    sending = asyncio.create_task(publish())
    await collector.wait_for(lambda r: r.topic == ANOMALY, 200)
    loop = asyncio.get_running_loop()
    exit_code = await loop.run_in_executor(None, first.terminate)
    assert exit_code == 0
    await sending
    await producer.flush()
    stopped_at = len(collector.matching(lambda r: r.topic == ANOMALY))
    assert 0 < stopped_at < N_EVENTS, "the stop must land in the middle of the stream"

    second = await loop.run_in_executor(None, start_worker, stack, tmp_path / "second.log")
    try:
        for _ in range(300):  # up to 60 s for every *distinct* event (a copy is not another)
            distinct = {m.json()["ref"] for m in collector.matching(lambda r: r.topic == ANOMALY)}
            if len(distinct) >= N_EVENTS:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything doubled would arrive now
        scores = collector.matching(lambda r: r.topic == ANOMALY)
        refs = Counter(m.json()["ref"] for m in scores)
        assert len(refs) == N_EVENTS, "every event scored"
        assert max(refs.values()) == 1, "no event scored twice"
        assert not collector.matching(
            lambda r: r.topic == DEADLETTER and (r.key or b"").startswith(b"acme/stop-")
        )
        # the second worker resumed the tenant's models from the first one's checkpoint
        assert metric_value(second.metrics(), "workers_model_restores") >= 2
    finally:
        second.terminate()
        await collector.stop()
        await producer.stop()
