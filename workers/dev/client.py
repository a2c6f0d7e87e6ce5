"""Helpers for publishing to input topics and reading output topics (demo, tests, tools).

>>> audio_headers(tenant="acme", stream="s1", seq=0, sample_rate=44100, channels=2)[:2]
[('tenant', b'acme'), ('stream', b's1')]
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from workers.core.records import OUTPUT_TOPICS

__all__ = [
    "Collector",
    "Received",
    "audio_headers",
    "by_tenant",
    "event_value",
    "pcm_bytes",
    "send_raw_headers",
    "start_producer",
]

log = logging.getLogger(__name__)


def audio_headers(
    *,
    tenant: str,
    stream: str,
    seq: int,
    sample_rate: int,
    channels: int,
    encoding: str = "s16le",
    track: str | None = None,
    ts: int | None = None,
) -> list[tuple[str, bytes]]:
    headers = {
        "tenant": tenant,
        "stream": stream,
        "seq": str(seq),
        "sample-rate": str(sample_rate),
        "channels": str(channels),
        "encoding": encoding,
    }
    if track is not None:
        headers["track"] = track
    if ts is not None:
        headers["ts"] = str(ts)
    return [(name, value.encode()) for name, value in headers.items()]


def pcm_bytes(samples: npt.NDArray[np.floating], *, encoding: str = "s16le") -> bytes:
    """(frames, channels) floats in -1..1 -> interleaved little-endian PCM."""
    if encoding == "s16le":
        return bytes((np.clip(samples, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes())
    return bytes(np.asarray(samples, dtype="<f4").tobytes())


def event_value(**fields: object) -> bytes:
    return orjson.dumps(fields)


async def start_producer(
    bootstrap: str, *, auth: Mapping[str, Any] | None = None
) -> AIOKafkaProducer:
    """An idempotent-enough producer for tenants' data; ``auth`` from ``security.kafka_auth``."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=1,
        acks="all",
        max_request_size=8 * 1024 * 1024,
        **(auth or {}),
    )
    await producer.start()
    return producer


class _RawName(str):
    """A header name that aiokafka's Python record writer encodes as the given bytes."""

    raw: bytes

    def __new__(cls, raw: bytes) -> _RawName:
        name = super().__new__(cls, raw.decode("latin-1"))
        name.raw = raw
        return name

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


async def send_raw_headers(
    producer: AIOKafkaProducer,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes | None, Sequence[tuple[bytes, bytes | None]]]],
    *,
    partition: int,
) -> list[int]:
    """Publish ``(key, value, headers)`` records whose header names are any bytes, as
    Kafka's protocol allows and some producers send (a name that is not UTF-8): what a
    hostile or broken producer can do to the worker. Returns their offsets."""
    from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

    offsets: list[int] = []
    pending = list(records)
    while pending:
        batch = producer.create_batch()
        batch._builder = _DefaultRecordBatchBuilderPy(  # names written as given
            2,
            0,
            is_transactional=0,
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=0,
            batch_size=1024 * 1024,
        )
        taken = 0
        for key, value, headers in pending:
            named = [(_RawName(bytes(name)), v) for name, v in headers]
            if batch.append(key=key, value=value, timestamp=None, headers=named) is None:
                break
            taken += 1
        meta = await (await producer.send_batch(batch, topic, partition=partition))
        offsets.extend(range(meta.offset, meta.offset + taken))
        pending = pending[taken:]
    return offsets


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    arrived: float  # time.time()

    def json(self) -> dict[str, object]:
        loaded: dict[str, object] = orjson.loads(self.value)
        return loaded

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode()
        return None


class Collector:
    """Reads output topics from the start (or, ``from_end``, from what is written after
    ``start``) into a list; ``wait_for`` polls it."""

    def __init__(
        self, bootstrap: str, topics: Sequence[str] = OUTPUT_TOPICS, *, from_end: bool = False
    ) -> None:
        self._topics, self._from_end = tuple(topics), from_end
        self._consumer = AIOKafkaConsumer(
            *(() if from_end else topics),
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=20,
        )
        self.received: list[Received] = []
        #: errors the reading survived (a test that sees nothing can say why)
        self.errors: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self.on_message: Callable[[Received], None] | None = None

    async def start(self) -> Collector:
        await self._consumer.start()
        if self._from_end:  # every partition, placed at its end before start returns
            await self._consumer.topics()  # the cluster's metadata, partitions included
            partitions = [
                TopicPartition(topic, p)
                for topic in self._topics
                for p in sorted(self._consumer.partitions_for_topic(topic) or ())
            ]
            self._consumer.assign(partitions)
            for tp, end in (await self._consumer.end_offsets(partitions)).items():
                self._consumer.seek(tp, end)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=100)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broker hiccup must not end the reading silently
                self.errors.append(f"{type(exc).__name__}: {exc}")
                log.warning("collector: %s; reading on", self.errors[-1])
                await asyncio.sleep(0.2)
                continue
            now = time.time()
            for messages in batches.values():
                for m in messages:
                    item = Received(m.topic, m.key, m.value or b"", tuple(m.headers or ()), now)
                    self.received.append(item)
                    if self.on_message is not None:
                        self.on_message(item)

    def matching(self, predicate: Callable[[Received], bool]) -> list[Received]:
        return [r for r in self.received if predicate(r)]

    async def wait_for(
        self, predicate: Callable[[Received], bool], count: int, *, timeout: float = 30.0
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.matching(predicate)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                warnings.warn(  # the test either fails on it or waited for nothing
                    f"wait_for: {len(found)} of {count} records after {timeout:g} s",
                    stacklevel=2,
                )
                return found
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._consumer.stop()


def by_tenant(tenant: str, topics: Iterable[str] | None = None) -> Callable[[Received], bool]:
    wanted = set(topics) if topics is not None else None

    def predicate(r: Received) -> bool:
        return (wanted is None or r.topic in wanted) and (r.key or b"").startswith(
            f"{tenant}/".encode()
        )

    return predicate
