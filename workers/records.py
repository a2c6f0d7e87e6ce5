"""Records in, outputs out: the boundary types between the Faust shell and the core."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from workers.errors import Rejected

AUDIO_CHUNKS = "audio.chunks"
LISTENING_EVENTS = "listening.events"
AUDIO_FEATURES = "audio.features"
ANOMALY = "predictions.anomaly"
POPULARITY = "predictions.popularity"
DEADLETTER = "events.deadletter"
INPUT_TOPICS = (AUDIO_CHUNKS, LISTENING_EVENTS)
OUTPUT_TOPICS = (AUDIO_FEATURES, ANOMALY, POPULARITY, DEADLETTER)


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
