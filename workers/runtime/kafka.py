"""aiokafka helpers both engines use: a consumed message as a Record, fetch freshness, and
a fetcher that survives header names that are not UTF-8."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatch, _DefaultRecordBatchPy
from aiokafka.record.legacy_records import LegacyRecordBatch
from aiokafka.record.memory_records import _MemoryRecordsPy

from workers.core.records import Record, received

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import ConsumerRecord

__all__ = ["TolerantRecords", "last_fetch_age_s", "to_record", "tolerate_header_names"]


def to_record(m: ConsumerRecord[bytes, bytes], *, committed: int = -1, prefix: str = "") -> Record:
    return received(
        m.topic,
        m.partition,
        m.offset,
        m.key,
        m.value,
        headers=m.headers,
        timestamp_ms=m.timestamp,
        committed=committed,
        prefix=prefix,
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


class _TolerantBuffer(bytearray):
    """A record batch's bytes whose slices decode text keeping what is not UTF-8 (as
    surrogate escapes): aiokafka's reader decodes header names with them."""

    def __getitem__(self, item: Any) -> Any:
        got = super().__getitem__(item)
        return _TolerantSlice(got) if isinstance(item, slice) else got


class _TolerantSlice(bytearray):
    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return super().decode(encoding, "surrogateescape")


class _TolerantBatchPy(_DefaultRecordBatchPy):  # type: ignore[misc]
    def _maybe_uncompress(self) -> None:
        super()._maybe_uncompress()
        buffer = getattr(self, "_buffer")  # noqa: B009 (aiokafka's attribute, untyped)
        if not isinstance(buffer, _TolerantBuffer):
            setattr(self, "_buffer", _TolerantBuffer(buffer))  # noqa: B010


class _TolerantBatch:
    """One v2 record batch read by aiokafka's C reader, and again by its Python reader
    (names kept) from the record the C reader could not decode."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._fast: Any = DefaultRecordBatch(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fast, name)

    def __iter__(self) -> Iterator[Any]:
        done = 0
        try:
            for record in self._fast:
                yield record
                done += 1
        except UnicodeDecodeError:
            slow = _TolerantBatchPy(self._data)
            yield from itertools.islice(slow, done, None)


class TolerantRecords(_MemoryRecordsPy):  # type: ignore[misc]
    """aiokafka's ``MemoryRecords`` for a fetched partition, but a record batch holding a
    header name that is not UTF-8 (Kafka's protocol allows any bytes) is still read, its
    names kept as surrogate escapes, so that record becomes a ``bad-headers`` dead letter
    (``core.records.received``) instead of failing every fetch of its partition forever."""

    def next_batch(self, *args: Any, **kwargs: Any) -> Any:
        found = self._next_slice
        batch = super().next_batch(*args, **kwargs)
        if found is None or isinstance(batch, LegacyRecordBatch):
            return batch
        return _TolerantBatch(bytes(found))


def tolerate_header_names() -> None:
    """Have aiokafka's fetcher read partitions through ``TolerantRecords`` (idempotent):
    both aiokafka-based engines (direct, Faust) call it before they consume."""
    fetcher.MemoryRecords = TolerantRecords
