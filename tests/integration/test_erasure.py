"""GDPR erasure against a real Redis: nothing of the subject remains, others untouched, and
a backlog of the subject's events published before the erasure is refused afterwards."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time

import orjson
import redis.asyncio as aioredis

from tests.helpers import event_body
from tests.integration.test_store_contract import NOW, _dump_tenant, scenario, update
from workers.core.errors import Reason
from workers.core.records import ACCOUNTS, ANOMALY, DEADLETTER, LISTENING_EVENTS
from workers.dev.client import Collector, start_producer
from workers.dev.stack import RedisServer, Stack
from workers.dev.testing import WorkerProcess
from workers.state import RedisStore
from workers.state.erasure import AUDIT_STREAM, subject_digest
from workers.state.protocol import Refused, StateLimits

AUDIT_KEY = "audit-key-for-tests"


def listen(tenant: str, user: str, n: int, first_offset: int = 0) -> list:
    return [
        update(tenant, user, f"{user}-{i}", offset=first_offset + i, track=f"t{i % 3}")
        for i in range(n)
    ]


def cli_erase(redis_server: RedisServer, *args: str, check: bool = True) -> str:
    env = {**os.environ, "WORKERS_REDIS_URL": redis_server.url, "WORKERS_AUDIT_KEY": AUDIT_KEY}
    done = subprocess.run(
        [sys.executable, "-m", "workers", "erase", "--no-tombstone", *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )
    return done.stdout


async def test_erase_one_listener_then_a_whole_tenant(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    store = RedisStore(redis_client, limits=StateLimits(new_ids_per_day=0))
    now_ms = int(time.time() * 1000)
    await store.apply_listening(
        listen("acme", "a", 20) + listen("acme", "a:b", 20, 100) + listen("acme", "b", 5, 200),
        now_ms=now_ms,
    )
    await store.apply_listening(scenario("beats", 40, seed=3), now_ms=now_ms)
    beats_before = await _dump_tenant(redis_client, "beats")
    others_before = {
        k: v for k, v in (await _dump_tenant(redis_client, "acme")).items() if not k.endswith(b":a")
    }

    out = cli_erase(
        redis_server, "--tenant", "acme", "--user", "a", "--by", "dpo@acme", "--reason", "art. 17"
    )
    # user, tracks, plays, recent (the tenant's markers of applied events name no listener)
    assert "erased user a of tenant acme: 4 keys deleted" in out
    assert "remaining: track listener counters" in out
    names = [name async for name in redis_client.scan_iter(match="{acme}:*")]
    assert not [n for n in names if n.endswith(b":a")], "nothing of listener a remains"
    after = await _dump_tenant(redis_client, "acme")
    # listener a:b (whose keys a pattern "a*" would match) is untouched, and so is b
    assert {k: v for k, v in after.items() if k in others_before} == others_before
    assert await _dump_tenant(redis_client, "beats") == beats_before

    # a backlog of a's events, published before the erasure, is refused when it arrives;
    # an event published after it is a new start
    later = int(time.time() * 1000) + 1000
    backlog = [
        update("acme", "a", "late-1", offset=300, record_time=now_ms),
        dataclasses.replace(
            update("acme", "a", "new-1", offset=301, record_time=later), read_time_ms=later
        ),
    ]
    refused, fresh = await store.apply_listening(backlog, now_ms=int(time.time() * 1000))
    assert isinstance(refused, Refused) and refused.reason is Reason.SUBJECT_ERASED
    assert not isinstance(fresh, Refused) and fresh.user.events == 1

    assert "--all-of-tenant" in cli_erase(redis_server, "--tenant", "acme", check=False)
    out = cli_erase(redis_server, "--tenant", "acme", "--all-of-tenant")
    assert "erased tenant acme" in out
    assert not [n async for n in redis_client.scan_iter(match="{acme}:*")]
    assert await _dump_tenant(redis_client, "beats") == beats_before

    audit = await redis_client.xrange(AUDIT_STREAM)
    records = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in audit]
    assert [r["scope"] for r in records] == ["user", "tenant"]
    assert records[0]["subject_hmac_sha256"] == subject_digest("acme", "a", key=AUDIT_KEY.encode())
    assert records[0]["requested_by"] == "dpo@acme" and records[0]["keys_deleted"] == "4"
    remaining = orjson.loads(records[0]["remaining"])
    assert remaining["erasure tombstone (digest of the id)"] > NOW
    assert all(":a" not in value and value != "a" for r in records for value in r.values())


async def test_an_erased_listener_from_the_topics(
    stack: Stack, worker: WorkerProcess, collector: Collector
) -> None:
    """A listener plays, is erased with the worker's settings, then an event of theirs
    published before the erasure arrives: its dead letter carries nothing of them (no value,
    no id in its key), their verdict is forgotten on the accounts changelog, and an event
    published after it is a new start. Erasing through a broker that cannot be reached says
    what was not done, and fails."""
    producer = await start_producer(stack.broker.bootstrap)
    user, key = "gone-u", b"acme/gone-u"
    try:
        for i in range(3):
            body = event_body("acme", user, f"gone-{i}", ts=int(time.time() * 1000))
            await producer.send(LISTENING_EVENTS, orjson.dumps(body), key=key)
        await producer.flush()
        await collector.wait_for(lambda r: r.topic == ACCOUNTS and r.key == key, 1)
        before = int(time.time() * 1000)
        env = {
            **os.environ,
            **stack.env(),
            "WORKERS_TENANTS": "acme,beats",
            "WORKERS_AUDIT_KEY": AUDIT_KEY,
        }
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "workers", "erase", "--tenant", "acme", "--user", user],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        forgotten = await collector.wait_for(
            lambda r: r.topic == ACCOUNTS and r.key == key and not r.value, 1
        )
        assert forgotten, "a tombstone on the accounts changelog"
        stale = event_body("acme", user, "gone-stale", ts=before - 1000)
        await producer.send(
            LISTENING_EVENTS, orjson.dumps(stale), key=key, timestamp_ms=before - 1000
        )
        fresh = event_body("acme", user, "gone-fresh", ts=int(time.time() * 1000) + 1000)
        await producer.send(LISTENING_EVENTS, orjson.dumps(fresh), key=key)
        await producer.flush()
        (letter,) = await collector.wait_for(
            lambda r: r.topic == DEADLETTER and r.header("error") == "subject-erased", 1
        )
        assert letter.key == b"acme/" and letter.value == b""
        assert user not in repr(letter.headers) and user.encode() not in (letter.key or b"")
        scored = await collector.wait_for(
            lambda r: r.topic == ANOMALY and r.json().get("ref") == "gone-fresh", 1
        )
        assert scored, "published after the erasure: a new start"
        cut_off = {**env, "WORKERS_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
        failed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "workers", "erase", "--tenant", "acme", "--user", "other"],
            env=cut_off, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert failed.returncode == 1 and "NOT DONE" in failed.stderr
    finally:
        await producer.stop()
