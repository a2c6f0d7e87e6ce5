"""GDPR erasure against a real Redis: nothing of the subject remains, others untouched."""

from __future__ import annotations

import os
import subprocess
import sys

import redis.asyncio as aioredis

from tests.integration.test_store_contract import _dump_tenant, scenario
from workers.core.listening import ListeningEvent, to_update
from workers.dev.stack import RedisServer
from workers.state import RedisStore
from workers.state.erasure import AUDIT_STREAM, subject_digest


def listen(tenant: str, user: str, n: int) -> list:
    return [
        to_update(
            ListeningEvent(
                event_id=f"e{ord(user[0])}-{i}",
                tenant=tenant,
                user_id=user,
                track_id=f"t{i % 3}",
                type="play",
                ts=1_764_000_000_000 + i * 60_000,
                ms_played=120_000,
            ),
            window_s=3600,
            position=f"listening.events:0:{user}{i}",
        )
        for i in range(n)
    ]


def cli_erase(redis_server: RedisServer, *args: str) -> str:
    env = {**os.environ, "WORKERS_REDIS_URL": redis_server.url}
    done = subprocess.run(
        [sys.executable, "-m", "workers", "erase", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


async def test_erase_one_listener_then_a_whole_tenant(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    store = RedisStore(redis_client, window_s=3600)
    await store.apply_listening(listen("acme", "alice", 20) + listen("acme", "bob", 20))
    await store.apply_listening(scenario("beats", 40, seed=3))
    beats_before = await _dump_tenant(redis_client, "beats")
    bob_before = {
        k: v for k, v in (await _dump_tenant(redis_client, "acme")).items() if b"bob" in k
    }

    out = cli_erase(
        redis_server,
        "--tenant",
        "acme",
        "--user",
        "alice",
        "--by",
        "dpo@acme",
        "--reason",
        "art. 17 request",
    )
    assert "erased user alice of tenant acme: 3 keys deleted" in out
    names = [name async for name in redis_client.scan_iter()]
    assert not [n for n in names if b"alice" in n], "nothing of alice remains"
    after = await _dump_tenant(redis_client, "acme")
    assert {k: v for k, v in after.items() if b"bob" in k} == bob_before
    assert await _dump_tenant(redis_client, "beats") == beats_before

    out = cli_erase(redis_server, "--tenant", "acme")
    assert "erased tenant acme" in out
    assert not [n async for n in redis_client.scan_iter(match="{acme}:*")]
    assert await _dump_tenant(redis_client, "beats") == beats_before

    audit = await redis_client.xrange(AUDIT_STREAM)
    records = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in audit]
    assert [r["scope"] for r in records] == ["user", "tenant"]
    assert records[0]["subject_sha256"] == subject_digest("acme", "alice")
    assert records[0]["requested_by"] == "dpo@acme" and records[0]["keys_deleted"] == "3"
    assert all("alice" not in value for r in records for value in r.values())
