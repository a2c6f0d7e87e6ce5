"""Records in, outputs out: the boundary types between the Faust shell and the core."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

from workers.core.errors import Rejected
from workers.core.tenants import TENANT_PATTERN

AUDIO_CHUNKS = "audio.chunks"
LISTENING_EVENTS = "listening.events"
AUDIO_FEATURES = "audio.features"
ANOMALY = "predictions.anomaly"
POPULARITY = "predictions.popularity"
DEADLETTER = "events.deadletter"
INPUT_TOPICS = (AUDIO_CHUNKS, LISTENING_EVENTS)
OUTPUT_TOPICS = (AUDIO_FEATURES, ANOMALY, POPULARITY, DEADLETTER)


def tenant_topic(tenant: str, topic: str) -> str:
    """Strict isolation: a tenant's own copy of a topic.

    >>> tenant_topic("acme", AUDIO_CHUNKS)
    'acme.audio.chunks'
    """
    return f"{tenant}.{topic}"


@functools.lru_cache(maxsize=4096)
def topic_owner(name: str) -> str | None:
    """The tenant a topic belongs to (strict isolation), or None for a shared topic.

    >>> topic_owner("acme.audio.chunks"), topic_owner("audio.chunks"), topic_owner("x.y")
    ('acme', None, None)
    """
    for topic in (*INPUT_TOPICS, *OUTPUT_TOPICS):
        owner = name.removesuffix(f".{topic}")
        if owner != name and TENANT_PATTERN.fullmatch(owner):
            return owner
    return None


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    #: time.perf_counter() when the worker received the record.
    received: float = field(default_factory=time.perf_counter)
    #: the record's Kafka timestamp (ms), and the wall clock when the worker received it
    timestamp_ms: int | None = None
    received_wall: float = field(default_factory=time.time)
    #: strict isolation: the tenant whose topic this came from (its only possible tenant)
    owner: str | None = None

    @property
    def kind(self) -> str:
        """The logical topic (``audio.chunks``), for a tenant's own copy too."""
        return self.topic if self.owner is None else self.topic[len(self.owner) + 1 :]


def received(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    *,
    headers: Any,
    timestamp_ms: int | None,
) -> Record:
    """A consumed message as a Record, whichever client read it (headers: pairs or a dict)."""
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    return Record(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        headers=tuple((str(name), bytes(v or b"")) for name, v in items),
        timestamp_ms=timestamp_ms if timestamp_ms and timestamp_ms > 0 else None,
        owner=topic_owner(topic),
    )


@dataclass(frozen=True, slots=True)
class Output:
    topic: str
    key: str
    #: JSON-able mapping (gets ``latency_ms`` when published) or raw bytes (dead letters).
    value: dict[str, Any] | bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Outcome:
    record: Record
    outputs: list[Output] = field(default_factory=list)
    rejected: Rejected | None = None
    tenant: str | None = None
    anomalies: int = 0
    stages: dict[str, float] = field(default_factory=dict)


def dead_letter(record: Record, rejected: Rejected, *, tenant: str | None = None) -> Output:
    """The original bytes, unchanged, with the reason in headers (contract: events.deadletter)."""
    headers = [
        ("error", rejected.reason.value.encode()),
        ("error-detail", rejected.detail.encode("utf-8", "replace")),
        ("source-topic", record.topic.encode()),
        ("source-partition", str(record.partition).encode()),
        ("source-offset", str(record.offset).encode()),
    ]
    if tenant is not None:
        headers.append(("tenant", tenant.encode()))
    key = record.key.decode("utf-8", "replace") if record.key else ""
    return Output(DEADLETTER, key, record.value or b"", tuple(headers))


class Stopwatch:
    """Accumulates time per stage for one record (seconds)."""

    __slots__ = ("_last", "stages")

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + (now - self._last)
        self._last = now

    def restart(self) -> None:
        self._last = time.perf_counter()
