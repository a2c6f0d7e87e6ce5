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
    auth: Mapping[str, Any] | None = None,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create missing topics (idempotent), with per-topic ``configs`` (``max.message.bytes``,
    ``retention.ms``, ...) where given; waits until the broker answers metadata."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=10_000, **(auth or {})
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(t, partitions, 1, topic_configs=dict((configs or {}).get(t, {})))
            for t in topics
            if t not in existing
        ]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


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
    from workers.runtime.security import kafka_auth

    if settings.create_topics:
        # the verdict changelogs (accounts, tracks) are compacted (the latest per key stays)
        # and still expire with retention (a listener gone for good leaves no verdict)
        compacted = {
            t: {"cleanup.policy": "compact,delete"} for t in settings.topics(*CHANGELOG_TOPICS)
        }
        await create_topics(
            settings.kafka_bootstrap,
            settings.topics(*INPUT_TOPICS, *OUTPUT_TOPICS),
            partitions=settings.topic_partitions,
            auth=kafka_auth(settings),
            configs=compacted,
        )
    await warn_on_retention(settings)
    return await output_limits(settings)
