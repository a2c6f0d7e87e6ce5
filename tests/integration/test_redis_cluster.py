"""The worker on a real three-master Redis Cluster (one replica each): both input topics,
tenants on different masters, and a master killed mid-stream, its replica promoted, the old
master brought back as the new one's replica; every input accounted for and the counters
exact (``WORKERS_REDIS_WAIT_REPLICAS=1``: a change counts as done only once a replica has it,
so the promoted replica has everything)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from redis.asyncio.cluster import RedisCluster as AsyncCluster

from tests.helpers import event_body, tone
from tests.integration.conftest import start_worker
from workers.core.records import ANOMALY, AUDIO_CHUNKS, AUDIO_FEATURES, DEADLETTER, LISTENING_EVENTS
from workers.dev.client import Collector, audio_headers, pcm_bytes, start_producer
from workers.dev.redis_cluster import RedisCluster
from workers.dev.stack import Stack
from workers.state import keys

N_EVENTS = 1200


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    running = RedisCluster(masters=3, replicas=1, node_timeout_ms=2000).start()
    yield running
    running.stop()


def tenants_on_each_master(cluster: RedisCluster) -> list[str]:
    """One tenant per master, found by trying names: their keys' slots decide."""
    found: dict[int, str] = {}
    for i in range(200):
        name = f"label{i}"
        port = cluster.master_of(keys.prefix(name) + "x").port
        found.setdefault(port, name)
        if len(found) == cluster.masters:
            return sorted(found.values())
    raise AssertionError("no tenant names cover every master")


async def event_total(url: str, tenant: str) -> int:
    client = AsyncCluster.from_url(url)
    total = 0
    for i in range(40):
        total += int(await client.hget(keys.user(tenant, f"rc-u{i}"), "events") or 0)
    await client.aclose()
    return total


async def test_the_worker_on_a_redis_cluster_through_a_failover(
    cluster: RedisCluster, stack: Stack, tmp_path: Path
) -> None:
    tenants = tenants_on_each_master(cluster)
    # kill the master of a tenant whose node is not the one the URL names (it stays up)
    doomed = next(
        t for t in tenants if cluster.master_of(keys.prefix(t) + "x") is not cluster.servers[0]
    )
    victim = cluster.master_of(keys.prefix(doomed) + "x")
    worker = start_worker(
        stack,
        tmp_path / "worker.log",
        WORKERS_TENANTS=",".join(tenants),
        WORKERS_REDIS_URL=cluster.url,
        WORKERS_REDIS_CLUSTER="true",
        WORKERS_REDIS_WAIT_REPLICAS="1",
        WORKERS_GROUP_ID="cluster",
    )
    collector = await Collector(stack.broker.bootstrap).start()
    producer = await start_producer(stack.broker.bootstrap)
    chunk = pcm_bytes(tone(seconds=0.25, sr=16000, channels=1))
    killed_at = promoted_in = revived_in = 0.0
    try:
        for i in range(N_EVENTS):
            tenant = tenants[i % len(tenants)]
            user = f"rc-u{i % 40}"
            body = event_body(tenant, user, f"rc-{tenant}-{i}", ts=int(time.time() * 1000))
            await producer.send(
                LISTENING_EVENTS, orjson.dumps(body), key=f"{tenant}/{user}".encode()
            )
            if i % 40 == 0:
                seq = i // 40
                for tenant_ in tenants:
                    headers = audio_headers(
                        tenant=tenant_, stream="rc-s", seq=seq, sample_rate=16000, channels=1
                    )
                    await producer.send(
                        AUDIO_CHUNKS, chunk, key=f"{tenant_}/rc-s".encode(), headers=headers
                    )
            if i == N_EVENTS // 3:
                assert victim.process is not None
                os.kill(victim.process.pid, signal.SIGKILL)  # mid-stream, no goodbye
                killed_at = time.monotonic()
            await asyncio.sleep(0.004)
        await producer.flush()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, cluster.wait_ok, 60.0)
        promoted_in = time.monotonic() - killed_at
        # the promoted replica has no replica of its own: WAIT 1 cannot succeed there, so
        # writes to its slots wait (StateUnavailable, retried) until the old master is back
        await loop.run_in_executor(None, cluster.revive, victim)
        revived_in = time.monotonic() - killed_at

        def scored() -> Counter[str]:
            return Counter(
                str(m.json()["ref"])
                for m in collector.matching(lambda r: r.topic == ANOMALY)
                if str(m.json()["ref"]).startswith("rc-")
            )

        def featured() -> set[tuple[str, int]]:
            return {
                (m.json()["tenant"], m.json()["seq"])
                for m in collector.matching(lambda r: r.topic == AUDIO_FEATURES)
            }

        all_chunks = {(t, s) for t in tenants for s in range(N_EVENTS // 40)}
        # each lane retries on its own backoff (capped at 2 s): wait for both, not the first
        for _ in range(600):
            if len(scored()) >= N_EVENTS and featured() >= all_chunks:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        refs = scored()
        assert len(refs) == N_EVENTS, "every event scored"
        assert not collector.matching(lambda r: r.topic == DEADLETTER)
        for tenant in tenants:  # exact, on every master, the promoted replica included
            assert await event_total(cluster.url, tenant) == N_EVENTS // len(tenants), tenant
        chunks = featured()
        assert chunks == all_chunks
        assert worker.status("/healthz") == 200
        survivors = [s for s in cluster.servers if s.process and s.process.poll() is None]
        roles = [redis.Redis(port=s.port).info("replication")["role"] for s in survivors]
        print(
            f"\nredis cluster (3 masters x 1 replica), tenants {tenants} on different masters: "
            f"{N_EVENTS} events and {len(chunks)} chunks, the master of {doomed} killed "
            f"at a third; its replica promoted and the cluster ok again {promoted_in:.1f} s "
            f"later, the old master back as its replica at {revived_in:.1f} s; every event "
            f"scored, {sum(refs.values()) - len(refs)} re-emitted as "
            f"replays, counters exact on every master ({roles.count('master')} masters now)"
        )
    finally:
        worker.terminate()
        await collector.stop()
        await producer.stop()


def test_a_cluster_node_addressed_as_a_single_server_is_refused(
    cluster: RedisCluster, stack: Stack, tmp_path: Path
) -> None:
    """WORKERS_REDIS_CLUSTER=false with a cluster node's URL: not MOVED dead letters for two
    thirds of the tenants, but a clear refusal to start."""
    from tests.integration.test_refusals import refused

    text = refused(stack, tmp_path / "worker.log", WORKERS_REDIS_URL=cluster.url)
    assert "is a Redis Cluster node" in text and "WORKERS_REDIS_CLUSTER=true" in text


async def test_erase_works_on_a_cluster_with_the_workers_settings(cluster: RedisCluster) -> None:
    """``erase`` connects as the worker does (WORKERS_REDIS_CLUSTER): one listener, then a
    whole tenant, on a cluster; nothing of them is left on any node."""
    from tests.integration.test_store_contract import NOW, scenario
    from workers.state import RedisStore

    tenant = tenants_on_each_master(cluster)[1]
    store = RedisStore.from_url(cluster.url, cluster=True)
    await store.apply_listening(scenario(tenant, 60, seed=5), now_ms=NOW)
    await store.close()
    env = {
        **os.environ,
        "WORKERS_REDIS_URL": cluster.url,
        "WORKERS_REDIS_CLUSTER": "true",
        "WORKERS_AUDIT_KEY": "k",
    }
    erase = [sys.executable, "-m", "workers", "erase", "--tenant", tenant, "--no-tombstone"]
    for scope in (["--user", "u1"], ["--all-of-tenant"]):
        done = await asyncio.to_thread(
            subprocess.run,
            [*erase, *scope],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    client = AsyncCluster.from_url(cluster.url)
    left = [name async for name in client.scan_iter(match=f"{{{tenant}}}:*")]
    await client.aclose()
    assert not left
