"""GDPR erasure against a real Redis: nothing of the subject remains, others untouched, and
a backlog of the subject's events published before the erasure is refused afterwards."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time

import orjson
import redis.asyncio as aioredis

from tests.integration.test_store_contract import NOW, _dump_tenant, scenario, update
from workers.core.errors import Reason
from workers.dev.stack import RedisServer
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
        [sys.executable, "-m", "workers", "erase", *args],
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
