"""Graceful stop under load: SIGTERM, restart, and nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.helpers import TS, event_body
from tests.integration.conftest import scored_refs, start_worker, user_event_total, wait_scored
from workers.core.records import ANOMALY, DEADLETTER, LISTENING_EVENTS
from workers.dev.client import Collector, start_producer
from workers.dev.stack import Stack
from workers.dev.testing import metric_value

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
        # the tenant's models live in Redis: the second worker judged against what the
        # first one had taught it, and every event was learnt exactly once, by either
        inputs = metric_value(
            second.metrics(), "workers_model_inputs", tenant="acme", model="listening-anomaly"
        )
        assert inputs == N_EVENTS
    finally:
        second.terminate()
        await collector.stop()
        await producer.stop()


@pytest.mark.parametrize("engine", ["rdkafka", "direct", "faust"])
async def test_sigterm_with_a_batch_stuck_on_redis_commits_none_of_it(
    stack: Stack, tmp_path: Path, engine: str
) -> None:
    """The stop cannot wait for a batch stuck on a frozen Redis (drain timeout 1 s), so the
    engine gives it up mid-batch. Its records must stay uncommitted: the next worker replays
    them, and nothing is lost. (Faust acks an interrupted agent's records when it closes its
    iterator; committed, they would have been lost.)"""
    prefix = f"stuck{engine}-"
    first = start_worker(
        stack, tmp_path / "first.log", WORKERS_DRAIN_TIMEOUT_S="1", WORKERS_ENGINE=engine
    )
    collector = await Collector(stack.broker.bootstrap).start()
    producer = await start_producer(stack.broker.bootstrap)
    assert stack.redis.process is not None
    loop = asyncio.get_running_loop()

    async def send(start: int, n: int) -> None:
        for i in range(start, start + n):
            body = event_body("acme", f"{prefix}u{i % 10}", f"{prefix}{i}", ts=TS + i * 1000)
            key = f"acme/{prefix}u{i % 10}".encode()
            await producer.send(LISTENING_EVENTS, orjson.dumps(body), key=key)
        await producer.flush()

    try:
        await send(0, 200)
        assert await wait_scored(collector, prefix, 200, 30) < 30
        os.kill(stack.redis.process.pid, signal.SIGSTOP)
        try:
            await send(200, 100)
            await asyncio.sleep(1.0)  # the worker took a batch and is stuck on Redis
            assert len(scored_refs(collector, prefix)) == 200
            exit_code = await loop.run_in_executor(None, first.terminate)
        finally:
            os.kill(stack.redis.process.pid, signal.SIGCONT)
        assert exit_code == 0
        assert "stay uncommitted" in (tmp_path / "first.log").read_text()
        second = await loop.run_in_executor(
            None, lambda: start_worker(stack, tmp_path / "second.log", WORKERS_ENGINE=engine)
        )
        try:
            await wait_scored(collector, prefix, 300, 60)
            assert scored_refs(collector, prefix) == {f"{prefix}{i}" for i in range(300)}
            assert await user_event_total(stack.redis.url, "acme", prefix) == 300
            assert not collector.matching(
                lambda r: (
                    r.topic == DEADLETTER and (r.key or b"").startswith(f"acme/{prefix}".encode())
                )
            )
        finally:
            second.terminate()
    finally:
        first.kill()
        await collector.stop()
        await producer.stop()
