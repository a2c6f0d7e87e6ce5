"""Real processes only: the embedded Kafka-protocol broker, a Redis server, worker processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from workers.core.records import ANOMALY
from workers.dev.client import Collector
from workers.dev.stack import RedisServer, Stack, stop_process
from workers.dev.testing import WorkerProcess

TENANTS = "acme,beats"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    workdir = tmp_path_factory.mktemp("redis")
    server = RedisServer()
    server.start(workdir / "redis.log", workdir)
    yield server
    stop_process(server.process)


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    running = Stack().start()
    yield running
    running.stop()


def start_worker(stack: Stack, log: Path, **env: str) -> WorkerProcess:
    if env.get("WORKERS_ENGINE") == "direct":
        # tansu answers aiokafka's InitProducerId with an error (librdkafka's it takes):
        # the direct engine's idempotent producer needs a real Kafka
        env.setdefault("WORKERS_PRODUCER_IDEMPOTENCE", "false")
    worker = WorkerProcess(
        {
            **stack.env(),
            "WORKERS_TENANTS": TENANTS,
            "WORKERS_REBALANCE_TIMEOUT_S": "3",
            "WORKERS_SESSION_TIMEOUT_S": "6",
            **env,
        },
        log=log,
    )
    worker.start()
    try:
        worker.wait_ready(timeout=90)
    except BaseException:
        worker.kill()
        print(log.read_text()[-5000:])
        raise
    return worker


@pytest.fixture(scope="module")
def worker(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    process = start_worker(stack, tmp_path_factory.mktemp("worker") / "worker.log")
    yield process
    process.terminate()


@pytest.fixture
async def collector(stack: Stack) -> AsyncIterator[Collector]:
    running = await Collector(stack.broker.bootstrap).start()
    yield running
    await running.stop()


def run(coro: object) -> object:
    return asyncio.get_event_loop().run_until_complete(coro)  # type: ignore[arg-type]


async def user_event_total(redis_url: str, tenant: str, prefix: str, **options: Any) -> int:
    """Sum of the `events` counters of a tenant's users whose id starts with prefix."""
    client = aioredis.Redis.from_url(redis_url, **options)
    total = 0
    async for name in client.scan_iter(match=f"{{{tenant}}}:user:{prefix}*"):
        if name.count(b":") == 2:  # the user hash itself, not its sub-keys
            total += int(await client.hget(name, "events") or 0)
    await client.aclose()
    return total


def scored_refs(collector: Collector, prefix: str) -> set[str]:
    """Distinct refs of anomaly predictions whose ref starts with prefix."""
    return {
        str(m.json()["ref"])
        for m in collector.matching(lambda r: r.topic == ANOMALY)
        if str(m.json()["ref"]).startswith(prefix)
    }


async def wait_scored(collector: Collector, prefix: str, count: int, timeout: float) -> float:
    """Seconds until `count` distinct refs were scored (or the timeout passed)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < timeout and len(scored_refs(collector, prefix)) < count:  # noqa: ASYNC110 (polls a list another task fills)
        await asyncio.sleep(0.1)
    return loop.time() - started
