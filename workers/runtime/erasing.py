"""``erase`` as an operator runs it: the worker's own Redis settings (a cluster, TLS, an ACL
user), the state erased (``state/erasure.py``), then checked gone, and the listener's
account verdict forgotten by compacted consumers (a tombstone, a null value under the
listener's key, on ``predictions.accounts``). Anything that could not be done is said, and
makes the command fail, so a compliance job never believes a half-done erasure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workers.core.records import ACCOUNTS
from workers.runtime.security import rdkafka_config, redis_store
from workers.runtime.settings import Settings
from workers.state import keys
from workers.state.erasure import Erasure, erase

__all__ = ["ErasureReport", "erase_everywhere"]


@dataclass
class ErasureReport:
    erasure: Erasure
    #: what could not be done (empty: everything was)
    problems: list[str] = field(default_factory=list)


def _forget_accounts(settings: Settings, tenant: str, user_ids: list[str]) -> str | None:
    """A null value under each listener's key on the accounts changelog; why not, if not."""
    from confluent_kafka import KafkaException, Producer

    topic = settings.topic(ACCOUNTS, tenant if settings.isolation == "strict" else None)
    failures: list[str] = []
    acknowledged = 0

    def answered(error: object, _message: object) -> None:
        nonlocal acknowledged
        if error is None:
            acknowledged += 1
        else:
            failures.append(str(error))

    producer = Producer(
        {
            **rdkafka_config(settings),
            "acks": "all",
            "message.timeout.ms": 10_000,
            **settings.kafka_producer,
        }
    )
    try:
        for user_id in user_ids:
            producer.produce(
                topic, value=None, key=f"{tenant}/{user_id}".encode(), on_delivery=answered
            )
            producer.poll(0)
    except (KafkaException, BufferError) as exc:
        return f"the accounts tombstones were not all sent ({exc})"
    producer.flush(15)
    if failures:
        return f"{len(failures)} accounts tombstones refused ({failures[0]})"
    if acknowledged < len(user_ids):
        return f"{len(user_ids) - acknowledged} accounts tombstones not acknowledged in 15 s"
    return None


async def erase_everywhere(
    settings: Settings,
    *,
    tenant: str,
    user_id: str | None,
    whole_tenant: bool,
    audit_key: bytes,
    requested_by: str = "",
    reason: str = "",
    tombstone: bool = True,
) -> ErasureReport:
    store = redis_store(settings)
    client = store.client
    try:
        listeners = [user_id] if user_id is not None else []
        if whole_tenant and tombstone:  # every listener the state knows, before it goes
            kind = f"{keys.prefix(tenant)}user:"
            async for name in client.scan_iter(match=f"{kind}*", count=1000):
                text = name.decode() if isinstance(name, bytes) else str(name)
                listeners.append(text[len(kind) :])
        done = await erase(
            client,  # type: ignore[arg-type]  # a cluster client serves the same commands
            tenant=tenant,
            user_id=user_id,
            whole_tenant=whole_tenant,
            audit_key=audit_key,
            limits=settings.state_limits(),
            requested_by=requested_by,
            reason=reason,
        )
        report = ErasureReport(done)
        if user_id is not None:
            left = [k for k in keys.user_keys(tenant, user_id) if await client.exists(k)]
        else:
            left = [k async for k in client.scan_iter(match=f"{keys.prefix(tenant)}*", count=1000)]
        if left:
            report.problems.append(f"{len(left)} keys still there (written meanwhile?)")
    finally:
        await client.aclose()
    if listeners and tombstone:
        problem = _forget_accounts(settings, tenant, sorted(set(listeners)))
        if problem is not None:
            report.problems.append(problem)
    return report
