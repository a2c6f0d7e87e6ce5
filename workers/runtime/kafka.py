"""aiokafka helpers both engines use: a consumed message as a Record, and fetch freshness."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from workers.core.records import Record, received

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import ConsumerRecord

__all__ = ["last_fetch_age_s", "to_record"]


def to_record(m: ConsumerRecord[bytes, bytes], *, committed: int = -1) -> Record:
    return received(
        m.topic,
        m.partition,
        m.offset,
        m.key,
        m.value,
        headers=m.headers,
        timestamp_ms=m.timestamp,
        committed=committed,
    )


def last_fetch_age_s(consumer: AIOKafkaConsumer) -> float | None:
    """Seconds since the broker last answered a fetch for any assigned partition (an empty
    answer counts: an idle topic is still flowing); None before the first one."""
    stamps = []
    for tp in consumer.assignment():
        with contextlib.suppress(AssertionError):  # revoked between the two calls
            stamp = consumer.last_poll_timestamp(tp)
            if stamp is not None:
                stamps.append(stamp)
    return time.time() - max(stamps) / 1000.0 if stamps else None
