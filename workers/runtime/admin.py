"""Kafka administration the worker needs at start-up: create missing topics."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workers.runtime.settings import Settings

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "create_topics",
    "max_message_bytes",
    "output_limits",
    "prepare_topics",
    "topic_numbers",
    "warn_on_retention",
]

log = logging.getLogger(__name__)


async def create_topics(
    bootstrap: str,
    topics: Sequence[str],
    *,
    partitions: int,
    client: Mapping[str, Any] | None = None,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    replication: int = -1,
) -> None:
    """Create missing topics (idempotent: one created meanwhile by another worker is fine),
    with per-topic ``configs`` (``cleanup.policy``, ``max.message.bytes``, ...) where given.

    On librdkafka's admin client, whose CreateTopics takes a replication factor of -1: the
    cluster's ``default.replication.factor`` (KIP-464), so a topic created on a three-broker
    cluster is replicated as the platform team set it, not once. ``client``: librdkafka
    connection settings beside the bootstrap (``security.rdkafka_config``)."""
    import asyncio

    wanted = [(t, partitions, replication, dict((configs or {}).get(t, {}))) for t in topics]
    await asyncio.to_thread(_create, {**(client or {}), "bootstrap.servers": bootstrap}, wanted)


def _create(client: dict[str, Any], wanted: list[tuple[str, int, int, dict[str, str]]]) -> None:
    """``create_topics``' blocking half: (topic, partitions, replication, configs) each."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(client)
    existing = set(admin.list_topics(timeout=10).topics)
    missing = {
        t: NewTopic(t, partitions, replication, config=config)
        for t, partitions, replication, config in wanted
        if t not in existing
    }
    if not missing:
        return
    for future in admin.create_topics(list(missing.values()), request_timeout=10).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


#: Kafka's default ``max.message.bytes`` (a topic that does not say has this limit).
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588


async def topic_numbers(
    bootstrap: str,
    topics: Sequence[str],
    name: str,
    *,
    default: int,
    auth: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Each topic's numeric configuration ``name`` (``default`` where it does not say)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=10_000, **(auth or {})
    )
    await admin.start()
    found = dict.fromkeys(topics, default)
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
        )
        for response in responses:
            for resource in response.resources:
                _code, _message, _type, topic, entries = resource[:5]
                for entry in entries:
                    if entry[0] == name and entry[1]:
                        found[topic] = int(entry[1])
    finally:
        await admin.close()
    return found


async def max_message_bytes(
    bootstrap: str, topics: Sequence[str], *, auth: Mapping[str, Any] | None = None
) -> dict[str, int]:
    """Each topic's ``max.message.bytes``: the largest record the broker accepts on it."""
    return await topic_numbers(
        bootstrap, topics, "max.message.bytes", default=DEFAULT_MAX_MESSAGE_BYTES, auth=auth
    )


async def warn_on_retention(settings: Settings) -> list[str]:
    """Input topics that keep records longer than erasure tombstones (and replay markers)
    live: an event published before an erasure could be read after its tombstone is gone,
    and a record read again after its marker is gone counted twice. Warned at start."""
    from workers.runtime.security import kafka_auth

    topics = settings.topics(*settings.input_topics())
    try:
        retention = await topic_numbers(
            settings.kafka_bootstrap,
            topics,
            "retention.ms",
            default=7 * 24 * 3600 * 1000,
            auth=kafka_auth(settings),
        )
    except Exception as exc:
        log.warning("could not read the input topics' retention.ms (%s)", exc)
        return []
    memory_ms = settings.replay_memory_s * 1000
    longer = sorted(t for t, ms in retention.items() if ms < 0 or ms > memory_ms)
    for topic in longer:
        log.warning(
            "%s keeps records longer (retention.ms %d) than erasure tombstones and replay "
            "markers live (WORKERS_REPLAY_MEMORY_S=%d): raise it above the retention",
            topic,
            retention[topic],
            settings.replay_memory_s,
        )
    return longer


async def output_limits(settings: Settings) -> dict[str, int]:
    """``max.message.bytes`` of the worker's output topics; Kafka's default where it cannot
    be read (the broker then refuses what is larger, and the delivery says so)."""
    from workers.core.records import OUTPUT_TOPICS
    from workers.runtime.security import kafka_auth

    try:
        return await max_message_bytes(
            settings.kafka_bootstrap, settings.topics(*OUTPUT_TOPICS), auth=kafka_auth(settings)
        )
    except Exception as exc:
        log.warning("could not read the output topics' max.message.bytes (%s)", exc)
        return {}


async def prepare_topics(settings: Settings) -> dict[str, int]:
    """At an engine's start: every topic it uses created if missing (when asked to; the
    changelogs compacted), then the output topics' size limits read (``output_limits``)."""
    from workers.core.records import CHANGELOG_TOPICS, INPUT_TOPICS, OUTPUT_TOPICS
    from workers.runtime.security import rdkafka_config

    if settings.create_topics:
        # the verdict changelogs (accounts, tracks) are compacted (the latest per key stays)
        # and still expire with retention (a listener gone for good leaves no verdict)
        compacted = {
            t: {"cleanup.policy": "compact,delete"} for t in settings.topics(*CHANGELOG_TOPICS)
        }
        client = rdkafka_config(settings)
        await create_topics(
            client.pop("bootstrap.servers"),
            settings.topics(*INPUT_TOPICS, *OUTPUT_TOPICS),
            partitions=settings.topic_partitions,
            client=client,
            configs=compacted,
        )
    await warn_on_retention(settings)
    return await output_limits(settings)
