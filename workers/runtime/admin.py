"""Kafka administration the worker needs at start-up: create missing topics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["create_topics"]


async def create_topics(
    bootstrap: str,
    topics: Sequence[str],
    *,
    partitions: int,
    auth: Mapping[str, Any] | None = None,
) -> None:
    """Create missing topics (idempotent); waits until the broker answers metadata."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=10_000, **(auth or {})
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, partitions, 1) for t in topics if t not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()
