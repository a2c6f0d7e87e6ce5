"""GDPR erasure: remove one listener's state, or a whole tenant's, and leave an audit record.

A listener's state is every key ``keys.user_keys`` names: behaviour counters, their
distinct-track and per-track sets, their recent plays. Keys are named, never matched by
pattern (``user:a*`` would reach ``a:b``). The tenant's markers of applied events (replay
memory) name no listener: a digest of each event id and the position of its record.

Erasure is safe while workers run or hold a backlog of the listener's events: it first
writes a tombstone (``{tenant}:erased:<digest of the id>``, the time of erasure), which the
listening script checks atomically with every change, so an event published before the
erasure is refused (a ``subject-erased`` dead letter without its value) whenever it is
processed; then it deletes the keys. Events published after it are a new start.

What cannot be removed at once is listed in the audit record with when it expires: the
tracks' listener counters (HyperLogLogs mixing many listeners, per event-time window), the
tombstone itself, the behaviour features the listening detectors hold in their rank
windows (no ids; replaced as newer events arrive), the tracks' co-listening and popularity
weights (sums over many listeners, no ids; they decay and expire), and the records in
Kafka's topics. The listener's recent plays (the seeds of their recommendations) are
their own key and go at once.

The audit record goes to the Redis stream ``audit:erasure``, outside any tenant's keys (so
erasing a tenant keeps its audit trail). Its subject is an HMAC-SHA256 of ``tenant/user``
under ``WORKERS_AUDIT_KEY``: it proves an erasure to whoever knows the id and the key, and
tells nobody else who was erased.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis

from workers.core.tenants import is_valid_id, validate_tenant
from workers.state import keys
from workers.state.protocol import DAY_S, StateLimits

__all__ = ["AUDIT_STREAM", "Erasure", "erase", "subject_digest"]

AUDIT_STREAM = "audit:erasure"


@dataclass(frozen=True)
class Erasure:
    tenant: str
    user_id: str | None
    keys_deleted: int
    audit_id: str
    #: what could not be removed now, and when it expires (epoch ms; 0: not in Redis)
    remaining: dict[str, int]


def subject_digest(tenant: str, user_id: str | None, *, key: bytes) -> str:
    """The audit record's subject: a keyed digest, not the id."""
    return hmac.new(key, f"{tenant}/{user_id or '*'}".encode(), hashlib.sha256).hexdigest()


async def erase(
    client: aioredis.Redis,
    *,
    tenant: str,
    user_id: str | None = None,
    whole_tenant: bool = False,
    audit_key: bytes,
    limits: StateLimits | None = None,
    requested_by: str = "",
    reason: str = "",
) -> Erasure:
    """Erase one listener (``user_id``) or, with ``whole_tenant``, every key of the tenant."""
    validate_tenant(tenant)
    limits = limits or StateLimits()
    if user_id is None and not whole_tenant:
        raise ValueError("erasing a whole tenant must be asked for explicitly (whole_tenant)")
    if user_id is not None and not is_valid_id(user_id):
        raise ValueError(f"invalid user id {user_id!r}")
    if not audit_key:
        raise ValueError("an audit key is needed (WORKERS_AUDIT_KEY)")
    now_ms = int(time.time() * 1000)
    remaining: dict[str, int] = {}
    if user_id is not None:
        # the tombstone first: from now on no event published before now applies
        tombstone_ttl_s = limits.replay_memory_s
        await client.set(keys.erased(tenant, user_id), now_ms, ex=tombstone_ttl_s)
        deleted = int(await client.unlink(*keys.user_keys(tenant, user_id)))
        remaining = {
            "track listener counters (HyperLogLog, mixed)": now_ms + limits.window_s * 6_000,
            "erasure tombstone (digest of the id)": now_ms + tombstone_ttl_s * 1000,
            "markers of applied events (digests of event ids, record positions; no listener "
            "id)": now_ms + (limits.replay_memory_s + DAY_S) * 1000,
            "behaviour features in the detectors' rank windows (no ids)": 0,
            "co-listening and popularity weights of tracks (mixed, no ids)": now_ms
            + limits.state_ttl_s * 1000,
            "records in the Kafka topics (their retention)": 0,
        }
    else:
        deleted = 0
        batch: list[bytes] = []
        async for name in client.scan_iter(match=f"{keys.prefix(tenant)}*", count=1000):
            batch.append(name)
            if len(batch) >= 500:
                deleted += int(await client.unlink(*batch))
                batch = []
        if batch:
            deleted += int(await client.unlink(*batch))
        remaining = {"records in the Kafka topics (their retention)": 0}
    audit_id = await client.xadd(
        AUDIT_STREAM,
        {
            "at_ms": str(now_ms),
            "scope": "user" if user_id is not None else "tenant",
            "tenant": tenant,
            "subject_hmac_sha256": subject_digest(tenant, user_id, key=audit_key),
            "keys_deleted": str(deleted),
            "remaining": orjson.dumps(remaining).decode(),
            "requested_by": requested_by,
            "reason": reason,
        },
    )
    return Erasure(
        tenant=tenant,
        user_id=user_id,
        keys_deleted=deleted,
        audit_id=audit_id.decode() if isinstance(audit_id, bytes) else str(audit_id),
        remaining=remaining,
    )
