"""GDPR erasure: remove one listener's state, or a whole tenant's, and leave an audit record.

A listener's state is every key under ``{tenant}:user:{user_id}`` (behaviour counters,
distinct-track and per-track sets). A tenant's state is every key under ``{tenant}:``.
What is left by design: track-level HyperLogLog registers (they count listeners without
storing who they are), model snapshots (rank windows of feature values, no ids), and the
7-day de-duplication markers ``{tenant}:seen:{event_id}`` (an event id and a record
position: keyed per tenant because event ids are unique per tenant, so they hold no
listener data unless a tenant puts some in its event ids; they expire by themselves).

The audit record goes to the Redis stream ``audit:erasure``, outside any tenant's keys (so
erasing a tenant keeps its audit trail); the subject is recorded as a SHA-256 digest, not
in clear.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from workers.core.tenants import is_valid_id, validate_tenant
from workers.state.keys import prefix

__all__ = ["AUDIT_STREAM", "Erasure", "erase", "subject_digest"]

AUDIT_STREAM = "audit:erasure"


@dataclass(frozen=True)
class Erasure:
    tenant: str
    user_id: str | None
    keys_deleted: int
    audit_id: str


def subject_digest(tenant: str, user_id: str | None) -> str:
    return hashlib.sha256(f"{tenant}/{user_id or '*'}".encode()).hexdigest()


async def erase(
    client: aioredis.Redis,
    *,
    tenant: str,
    user_id: str | None = None,
    requested_by: str = "",
    reason: str = "",
) -> Erasure:
    validate_tenant(tenant)
    if user_id is not None and not is_valid_id(user_id):
        raise ValueError(f"invalid user id {user_id!r}")
    base = prefix(tenant) + (f"user:{user_id}" if user_id is not None else "")
    patterns = [f"{base}:*", base] if user_id is not None else [f"{prefix(tenant)}*"]
    deleted = 0
    for pattern in patterns:  # SCAN MATCH treats the exact key as its own pattern
        batch: list[bytes] = []
        async for name in client.scan_iter(match=pattern, count=1000):
            batch.append(name)
            if len(batch) >= 500:
                deleted += int(await client.unlink(*batch))
                batch = []
        if batch:
            deleted += int(await client.unlink(*batch))
    audit_id = await client.xadd(
        AUDIT_STREAM,
        {
            "at_ms": str(int(time.time() * 1000)),
            "scope": "user" if user_id is not None else "tenant",
            "tenant": tenant,
            "subject_sha256": subject_digest(tenant, user_id),
            "keys_deleted": str(deleted),
            "requested_by": requested_by,
            "reason": reason,
        },
    )
    return Erasure(
        tenant=tenant,
        user_id=user_id,
        keys_deleted=deleted,
        audit_id=audit_id.decode() if isinstance(audit_id, bytes) else str(audit_id),
    )
