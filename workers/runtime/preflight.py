"""What ``run`` refuses to start with: settings that cannot work together, and a Redis that
would lose state silently. Each refusal says what is wrong and what to set; ``run`` exits
non-zero on it rather than serving wrong answers for hours.

Checked before anything else starts:

- no tenants served (every record would be a dead letter);
- a tagger whose consumer group is the core worker's (they would split the chunks between
  them, each processing half of every stream);
- TLS or SASL settings with a protocol that does not use them (the operator meant them);
- a Redis that evicts keys (anything but ``maxmemory-policy noeviction``): replay markers,
  erasure tombstones and quotas would vanish under memory pressure, unless
  ``WORKERS_REDIS_ALLOW_EVICTION`` accepts that risk;
- a Redis Cluster node addressed as a single server, or the reverse: two thirds of the
  tenants would get ``MOVED`` dead letters.

A retired setting (``RETIRED``) that is still set is not refused either: it is ignored,
with a warning naming it.

A Redis that does not answer at start is not refused: the worker waits for it as for any
outage, and says that it could not check.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from workers.runtime.security import redis_options
from workers.runtime.settings import Settings

__all__ = ["RETIRED", "StartRefused", "check_redis", "check_settings", "warn_on_retired"]

log = logging.getLogger(__name__)


class StartRefused(Exception):
    """The worker must not start: the message says why and what to change."""


#: settings a release retired: set, they are ignored, and the worker says so at start
RETIRED = {
    "WORKERS_ALARM_RATE_LISTENING": "listeners are judged by p-values against the tenant's "
    "reference of listeners, at a fixed p = 0.001 (docs/models.md); it has no effect",
}


def warn_on_retired(environ: Mapping[str, str]) -> list[str]:
    """A warning for each retired setting that is set (returned for the tests)."""
    warnings = [f"{name} is retired: {why}" for name, why in RETIRED.items() if name in environ]
    for warning in warnings:
        log.warning("%s", warning)
    return warnings


def check_settings(settings: Settings) -> None:
    """Refuse settings that cannot serve (raises ``StartRefused``)."""
    warn_on_retired(os.environ)
    if not settings.tenants:
        raise StartRefused(
            "WORKERS_TENANTS is empty: every record would be a dead letter; name the tenants "
            "this fleet serves (comma-separated)"
        )
    if settings.role == "tagger" and settings.consumer_group == settings.group_id:
        raise StartRefused(
            f"the tagger's consumer group is the core worker's ({settings.group_id!r}): they "
            "would split the audio between them; unset WORKERS_TAGGER_GROUP_ID or give it "
            "a name of its own"
        )
    protocol = settings.kafka_security_protocol
    tls = [
        name
        for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
        if getattr(settings, name) is not None
    ]
    if tls and protocol not in ("SSL", "SASL_SSL"):
        raise StartRefused(
            f"{', '.join('WORKERS_' + n.upper() for n in tls)} set with "
            f"WORKERS_KAFKA_SECURITY_PROTOCOL={protocol}, which does not use TLS: set SSL or "
            "SASL_SSL, or remove them"
        )
    sasl = [
        name
        for name in ("kafka_sasl_username", "kafka_sasl_password")
        if getattr(settings, name) is not None
    ]
    if sasl and not protocol.startswith("SASL_"):
        raise StartRefused(
            f"{', '.join('WORKERS_' + n.upper() for n in sasl)} set with "
            f"WORKERS_KAFKA_SECURITY_PROTOCOL={protocol}, which does not authenticate: set "
            "SASL_SSL (or SASL_PLAINTEXT), or remove them"
        )
    _check_passthrough(settings)


def _check_passthrough(settings: Settings) -> None:
    """librdkafka judges the properties passed through (a name it does not know, a value it
    cannot take) when a client is built: build one of each now, so a typo stops the start
    with its own message rather than the engine later."""
    from confluent_kafka import Consumer, KafkaException, Producer

    from workers.runtime.security import rdkafka_config

    for side, properties in (
        ("consumer", settings.kafka_consumer),
        ("producer", settings.kafka_producer),
    ):
        if not properties:
            continue
        config = {**rdkafka_config(settings), **properties}
        try:
            if side == "consumer":
                Consumer({**config, "group.id": settings.consumer_group}).close()
            else:
                Producer(config).flush(0)
        except (KafkaException, ValueError, TypeError) as exc:
            names = ", ".join(
                f"WORKERS_KAFKA_{side.upper()}__{n.replace('.', '_').upper()}" for n in properties
            )
            raise StartRefused(f"{names}: librdkafka refuses them: {exc}") from exc


def _sections(reply: Any) -> list[dict[str, Any]]:
    """``INFO`` of one server, or of each node of a cluster (a dict per node)."""
    if isinstance(reply, dict) and reply and all(isinstance(v, dict) for v in reply.values()):
        return list(reply.values())
    return [reply]


async def check_redis(settings: Settings) -> None:
    """Refuse a Redis that would lose state silently, or is addressed as what it is not."""
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster

    url = settings.redis_url.get_secret_value()
    options: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 5}
    options.update(redis_options(settings))
    client: aioredis.Redis | RedisCluster
    try:
        if settings.redis_cluster:
            client = RedisCluster.from_url(url, **options)
            await client.initialize()
            memory = await client.info("memory", target_nodes=RedisCluster.PRIMARIES)
            cluster = await client.info("cluster", target_nodes=RedisCluster.PRIMARIES)
        else:
            client = aioredis.Redis.from_url(url, **options)
            memory = await client.info("memory")
            cluster = await client.info("cluster")
    except Exception as exc:
        if "cluster" in str(exc).lower() and settings.redis_cluster:
            raise StartRefused(
                f"WORKERS_REDIS_CLUSTER=true, but the Redis at the URL is not a cluster node "
                f"({exc}): set WORKERS_REDIS_CLUSTER=false"
            ) from exc
        log.warning("could not check the Redis settings at start (%s): waiting for it", exc)
        return
    try:
        for info in _sections(cluster):
            enabled = bool(int(info.get("cluster_enabled", 0)))
            if enabled and not settings.redis_cluster:
                raise StartRefused(
                    "the Redis at WORKERS_REDIS_URL is a Redis Cluster node, addressed as a "
                    "single server: most tenants' keys live on other nodes; set "
                    "WORKERS_REDIS_CLUSTER=true"
                )
        policies = {str(info.get("maxmemory_policy", "noeviction")) for info in _sections(memory)}
        evicting = policies - {"noeviction"}
        if evicting and not settings.redis_allow_eviction:
            raise StartRefused(
                f"Redis evicts keys under memory pressure (maxmemory-policy "
                f"{', '.join(sorted(evicting))}): replay markers, erasure tombstones and quotas "
                "would vanish and records be counted twice; set maxmemory-policy noeviction, "
                "or accept the risk with WORKERS_REDIS_ALLOW_EVICTION=true"
            )
        if evicting:
            log.warning("Redis may evict keys (%s), accepted by setting", ", ".join(evicting))
    finally:
        await client.aclose()
