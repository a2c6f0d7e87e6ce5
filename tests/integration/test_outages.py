"""Infrastructure going away and coming back: a Redis restart, a broker link cut."""

from __future__ import annotations

import asyncio
import signal
import tempfile
from pathlib import Path

import orjson

from tests.helpers import event_body
from tests.integration.conftest import (
    scored_refs,
    start_worker,
    user_event_total,
    wait_scored,
)
from tests.integration.proxy import CuttableProxy
from workers.core.records import DEADLETTER, LISTENING_EVENTS
from workers.dev.client import Collector, start_producer
from workers.dev.stack import Broker, RedisServer, Stack, stop_process
from workers.dev.testing import metric_value


async def _send(producer: object, prefix: str, start: int, n: int, *, users: int = 20) -> None:
    for i in range(start, start + n):
        user = f"{prefix}u{i % users}"
        body = event_body("acme", user, f"{prefix}{i}", ts=1_764_000_000_000 + i * 1000)
        await producer.send(  # type: ignore[attr-defined]
            LISTENING_EVENTS, orjson.dumps(body), key=f"acme/{user}".encode()
        )
    await producer.flush()  # type: ignore[attr-defined]


def _no_deadletters(collector: Collector, prefix: str) -> bool:
    return not collector.matching(
        lambda r: r.topic == DEADLETTER and (r.key or b"").startswith(f"acme/{prefix}".encode())
    )


async def test_redis_restarted_the_worker_waits_and_loses_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    """kill -9 of a persistent Redis (AOF, fsync always) mid-stream, restarted 4 s later on
    the same port: state survives (as in production), the worker retries meanwhile, replays
    nothing twice, and the counters stay exact."""
    redis = RedisServer(durable=True)
    redis.start(tmp_path / "redis.log", tmp_path)
    worker = start_worker(stack, tmp_path / "worker.log", WORKERS_REDIS_URL=redis.url)
    collector = await Collector(stack.broker.bootstrap).start()
    producer = await start_producer(stack.broker.bootstrap)
    loop = asyncio.get_running_loop()
    try:
        await _send(producer, "rr-", 0, 300)
        assert await wait_scored(collector, "rr-", 300, 30) < 30
        sending = asyncio.create_task(_send(producer, "rr-", 300, 700))
        await asyncio.sleep(0.1)  # the kill lands while events are in flight
        assert redis.process is not None
        redis.process.send_signal(signal.SIGKILL)
        redis.process.wait()
        await sending
        await asyncio.sleep(4.0)
        assert worker.process is not None and worker.process.poll() is None, "worker died"
        assert worker.status("/healthz") == 200
        redis.start(tmp_path / "redis-2.log", tmp_path)  # same port, same AOF
        restarted = loop.time()
        caught_up = await wait_scored(collector, "rr-", 1000, 60)
        assert scored_refs(collector, "rr-") == {f"rr-{i}" for i in range(1000)}
        assert _no_deadletters(collector, "rr-")
        assert await user_event_total(redis.url, "acme", "rr-") == 1000, "applied exactly once"
        retries = metric_value(
            worker.metrics(), "workers_state_errors_total", operation="listening.events"
        )
        assert retries >= 1
        print(
            f"\nredis kill -9 + restart: inputs 1000 (700 sent around the outage), scored "
            f"1000, dead letters 0, lost 0, counters exact, {retries:.0f} retries, all scored "
            f"{caught_up:.1f} s after Redis restarted ({loop.time() - restarted:.1f} s)"
        )
    finally:
        worker.terminate()
        await collector.stop()
        await producer.stop()
        stop_process(redis.process)


async def test_broker_link_cut_and_back_the_worker_recovers_by_itself(tmp_path: Path) -> None:
    """Every connection to the broker is dropped and refused for 10 s (longer than the 6 s
    session timeout, so the group expires the worker). The worker is not ready while cut
    off; when the link is back it rejoins by itself and processes everything exactly once."""
    broker = Broker()
    proxy = CuttableProxy(broker.port).start()
    broker.advertised_port = proxy.port  # every client, the worker included, goes through it
    own = Stack(broker=broker, workdir=Path(tempfile.mkdtemp(prefix="workers-cut-")))
    await asyncio.get_running_loop().run_in_executor(None, own.start)
    worker = start_worker(own, tmp_path / "worker.log")
    collector = await Collector(own.broker.bootstrap).start()
    producer = await start_producer(own.broker.bootstrap)
    loop = asyncio.get_running_loop()
    try:
        await _send(producer, "cut-", 0, 300)
        assert await wait_scored(collector, "cut-", 300, 30) < 30
        proxy.cut()
        cut_at = loop.time()
        await asyncio.sleep(3.0)
        assert worker.process is not None and worker.process.poll() is None, "worker died"
        assert worker.status("/healthz") == 200
        await asyncio.sleep(7.0)
        unready = worker.status("/ready")
        assert unready == 503, "nothing flows: not ready"
        proxy.restore()
        restored = loop.time()
        await _send(producer, "cut-", 300, 300)
        caught_up = await wait_scored(collector, "cut-", 600, 90)
        assert scored_refs(collector, "cut-") == {f"cut-{i}" for i in range(600)}
        assert _no_deadletters(collector, "cut-")
        assert await user_event_total(own.redis.url, "acme", "cut-") == 600
        for _ in range(100):
            if worker.status("/ready") == 200:
                break
            await asyncio.sleep(0.2)
        assert worker.status("/ready") == 200
        print(
            f"\nbroker link cut {restored - cut_at:.0f} s: inputs 600, scored 600, dead letters 0, "
            f"lost 0, counters exact; /ready during the cut {unready}; all scored "
            f"{caught_up:.1f} s after the link came back"
        )
    finally:
        worker.terminate()
        await collector.stop()
        await producer.stop()
        own.stop()
        proxy.stop()
