"""Records in, outputs out: the boundary types between the engines and the core.

Topic names are the contract's logical names; with strict isolation each tenant has its
own copy of each (``topic_name``), and a record knows the tenant that owns its topic.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workers.core.errors import Reason, Rejected
from workers.core.position import Position
from workers.core.tenants import TENANT_PATTERN

if TYPE_CHECKING:
    from workers.core.listening_state import ModelsAfter
    from workers.core.payloads import Payload

__all__ = [
    "ACCOUNTS",
    "ANOMALY",
    "AUDIO_CHUNKS",
    "AUDIO_FEATURES",
    "CHANGELOG_TOPICS",
    "DEADLETTER",
    "INPUT_TOPICS",
    "LISTENING_EVENTS",
    "ORIGINAL_HEADER",
    "OUTPUT_TOPICS",
    "POPULARITY",
    "RECOMMENDATIONS",
    "RECOMMEND_REQUESTS",
    "TAGS",
    "TRACE_HEADERS",
    "TRACKS",
    "Outcome",
    "Output",
    "Record",
    "Stopwatch",
    "as_replayed",
    "check_readable",
    "check_tenant",
    "dead_letter",
    "received",
    "topic_kind",
    "topic_name",
    "topic_owner",
    "trace_of",
    "with_trace",
]

AUDIO_CHUNKS = "audio.chunks"
LISTENING_EVENTS = "listening.events"
AUDIO_FEATURES = "audio.features"
ANOMALY = "predictions.anomaly"
POPULARITY = "predictions.popularity"
ACCOUNTS = "predictions.accounts"
TRACKS = "predictions.tracks"
DEADLETTER = "events.deadletter"
RECOMMEND_REQUESTS = "recommend.requests"
TAGS = "predictions.tags"
RECOMMENDATIONS = "predictions.recommendations"
INPUT_TOPICS = (AUDIO_CHUNKS, LISTENING_EVENTS, RECOMMEND_REQUESTS)
OUTPUT_TOPICS = (
    AUDIO_FEATURES,
    ANOMALY,
    POPULARITY,
    ACCOUNTS,
    TRACKS,
    TAGS,
    RECOMMENDATIONS,
    DEADLETTER,
)
#: output topics that are changelogs (the latest value per key is the answer): compacted
CHANGELOG_TOPICS = (ACCOUNTS, TRACKS)


def topic_name(logical: str, *, owner: str | None = None, prefix: str = "") -> str:
    """The Kafka topic behind a logical topic: shared, or (strict isolation) the ``owner``
    tenant's own copy, after the deployment's ``prefix`` (``WORKERS_TOPIC_PREFIX``).

    >>> topic_name(AUDIO_CHUNKS, owner="acme"), topic_name(DEADLETTER, prefix="prod.")
    ('acme.audio.chunks', 'prod.events.deadletter')
    """
    return f"{prefix}{owner}.{logical}" if owner is not None else f"{prefix}{logical}"


@functools.lru_cache(maxsize=4096)
def topic_owner(name: str, prefix: str = "") -> str | None:
    """The tenant a topic belongs to (strict isolation), or None for a shared topic.

    >>> topic_owner("acme.audio.chunks"), topic_owner("audio.chunks"), topic_owner("x.y")
    ('acme', None, None)
    >>> topic_owner("prod.acme.audio.chunks", "prod."), topic_owner("prod.audio.chunks", "prod.")
    ('acme', None)
    """
    rest = name.removeprefix(prefix)
    if rest == name and prefix:
        return None
    for topic in (*INPUT_TOPICS, *OUTPUT_TOPICS):
        owner = rest.removesuffix(f".{topic}")
        if owner != rest and TENANT_PATTERN.fullmatch(owner):
            return owner
    return None


def topic_kind(topic: str, prefix: str = "") -> str:
    """The logical topic of a (possibly per-tenant, possibly prefixed) topic.

    >>> topic_kind("acme.audio.chunks"), topic_kind("prod.listening.events", "prod.")
    ('audio.chunks', 'listening.events')
    """
    rest = topic.removeprefix(prefix)
    owner = topic_owner(topic, prefix)
    return rest if owner is None else rest[len(owner) + 1 :]


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
    #: the partition's committed offset when the record was fetched (-1: not known)
    committed: int = -1
    #: the client could not read the record's headers (a name that is not UTF-8: Kafka's
    #: protocol allows any bytes); the record is a ``bad-headers`` dead letter
    header_error: str | None = None
    #: the logical topic, when the topic has a deployment's prefix (``received`` sets it)
    logical: str | None = None

    @property
    def position(self) -> Position:
        return Position(self.topic, self.partition, self.offset, self.committed)

    def place(self) -> dict[str, object]:
        """Where the record is, for a log line's fields (``runtime/logs.py``)."""
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}

    @property
    def time_ms(self) -> int:
        """The record's Kafka timestamp, or when the worker received it."""
        return (
            self.timestamp_ms if self.timestamp_ms is not None else int(self.received_wall * 1000)
        )

    @property
    def kind(self) -> str:
        """The logical topic (``audio.chunks``), for a tenant's own copy too."""
        if self.logical is not None:
            return self.logical
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
    committed: int = -1,
    prefix: str = "",
) -> Record:
    r"""A consumed message as a Record, whichever client read it (headers: pairs or a dict).

    Header names must be UTF-8 (what every reader of this record expects); ``headers`` may
    be an exception the client raised reading them. Either way the record stays a record,
    with ``header_error`` saying why: one such record never stops the partition.

    >>> received("t", 0, 1, None, b"", headers=[(b"ok", None)], timestamp_ms=None).headers
    (('ok', b''),)
    >>> bad = received("t", 0, 1, None, b"", headers=[(bytes([255]), b"")], timestamp_ms=None)
    >>> bad.header_error
    "headers unreadable: name b'\\xff' is not UTF-8"
    """
    problem = None
    pairs: tuple[tuple[str, bytes], ...] = ()
    if isinstance(headers, BaseException):  # what the client raised reading them
        problem = f"headers unreadable: {headers.__cause__ or headers}"[:240]
    else:
        try:
            items = headers.items() if isinstance(headers, dict) else (headers or ())
            pairs = tuple((_header_name(name), bytes(v or b"")) for name, v in items)
        except (UnicodeError, TypeError, ValueError) as exc:
            pairs, problem = (), f"headers unreadable: {exc}"[:240]
    return Record(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        headers=pairs,
        timestamp_ms=timestamp_ms if timestamp_ms and timestamp_ms > 0 else None,
        owner=topic_owner(topic, prefix),
        committed=committed,
        header_error=problem,
        logical=topic_kind(topic, prefix) if prefix else None,
    )


def _header_name(name: object) -> str:
    """A header name as text; a name that is not UTF-8 (raw bytes, or text a tolerant
    reader kept with surrogate escapes) raises ``ValueError``."""
    try:
        if isinstance(name, bytes | bytearray):
            return bytes(name).decode("utf-8")
        text = str(name)
        text.encode("utf-8")
    except UnicodeError:
        shown = (
            name
            if isinstance(name, bytes | bytearray)
            else str(name).encode("utf-8", "surrogateescape")
        )
        raise ValueError(f"name {bytes(shown)!r} is not UTF-8") from None
    return text


def check_readable(record: Record) -> None:
    """A record whose headers the client could not read is a ``bad-headers`` dead letter, on
    every input topic (its value is kept as it is)."""
    if record.header_error is not None:
        raise Rejected(Reason.BAD_HEADERS, record.header_error)


def check_tenant(tenant: str, tenants: frozenset[str], record: Record) -> None:
    """The tenant a record names must be served, and (strict isolation) own its topic."""
    if record.owner is not None and tenant != record.owner:
        raise Rejected(
            Reason.TENANT_MISMATCH,
            f"record claims tenant {tenant!r} on {record.owner!r}'s topic {record.topic!r}",
        )
    if tenant not in tenants:
        raise Rejected(Reason.UNKNOWN_TENANT, f"tenant {tenant!r} is not served by this fleet")


@dataclass(frozen=True, slots=True)
class Output:
    topic: str
    key: str
    #: A JSON payload (``payloads.py``; the publisher stamps ``latency_ms``) or raw bytes
    #: (dead letters).
    value: Payload | bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Outcome:
    record: Record
    outputs: list[Output] = field(default_factory=list)
    rejected: Rejected | None = None
    tenant: str | None = None
    anomalies: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    #: event time: the event was beyond the lateness bound, or ahead of the clock
    late: bool = False
    early: bool = False
    #: listening: what the tenant's store-kept models made of the event
    models: ModelsAfter | None = None
    #: the tagger: a record it leaves to the core worker, which dead-letters it
    ignored: Reason | None = None
    #: the tagger: the stream's embedding was not kept in the catalogue (the tenant's quota)
    catalogue_refused: bool = False
    #: told, once the broker has answered for the record's outputs, whether all of them
    #: were acknowledged (an account verdict is remembered as published only then)
    on_delivered: Callable[[bool], None] | None = None


#: W3C Trace Context headers: copied from an input to each of its outputs and its dead
#: letter, so a trace follows the record through the worker
TRACE_HEADERS = ("traceparent", "tracestate")


def trace_of(record: Record) -> list[tuple[str, bytes]]:
    """The input's trace context headers (none, mostly): read once per record."""
    return [(n, v) for n, v in record.headers if n in TRACE_HEADERS]


def with_trace(
    headers: tuple[tuple[str, bytes], ...], trace: list[tuple[str, bytes]]
) -> list[tuple[str, bytes]]:
    """An output's headers, and the input's trace context where the output has none.

    >>> r = Record("listening.events", 0, 1, None, b"{}", (("traceparent", b"00-ab-cd-01"),))
    >>> with_trace((("x", b"1"),), trace_of(r))
    [('x', b'1'), ('traceparent', b'00-ab-cd-01')]
    """
    if not trace:
        return list(headers)
    own = {name for name, _ in headers}
    return [*headers, *((n, v) for n, v in trace if n not in own)]


#: the original record's headers travel with its dead letter under this prefix, so they
#: never clash with the dead letter's own (``tenant``) and a re-drive restores them
ORIGINAL_HEADER = "original-"


def dead_letter(record: Record, rejected: Rejected, *, tenant: str | None = None) -> Output:
    """The original bytes, unchanged, with the reason in headers (contract: events.deadletter),
    and the original headers, each under ``original-{name}``, and its Kafka timestamp.

    The one exception: a record of an erased listener keeps no trace of them, not even in
    the dead-letter topic: its value and headers are dropped (a header says so) and its key
    keeps only the tenant.

    >>> letter = dead_letter(Record("audio.chunks", 1, 7, b"acme/s", b"..", (("seq", b"3"),),
    ...     timestamp_ms=1764000000000), Rejected(Reason.TRUNCATED_PCM, "2 bytes"))
    >>> [name for name, _ in letter.headers][5:]
    ['source-timestamp', 'original-seq']
    """
    headers = [
        ("error", rejected.reason.value.encode()),
        ("error-detail", rejected.detail.encode("utf-8", "replace")),
        ("source-topic", record.topic.encode()),
        ("source-partition", str(record.partition).encode()),
        ("source-offset", str(record.offset).encode()),
    ]
    if record.timestamp_ms is not None:
        headers.append(("source-timestamp", str(record.timestamp_ms).encode()))
    if tenant is not None:
        headers.append(("tenant", tenant.encode()))
    key = record.key.decode("utf-8", "replace") if record.key else ""
    value = record.value or b""
    if rejected.reason is Reason.SUBJECT_ERASED:
        headers.append(("value-dropped", b"subject-erased"))
        value = b""
        key = f"{tenant}/" if tenant is not None else ""
    else:
        headers.extend((f"{ORIGINAL_HEADER}{name}", v) for name, v in record.headers)
    return Output(DEADLETTER, key, value, tuple(headers))


def as_replayed(letter: Output) -> Output:
    """A dead letter emitted again for a record read again: marked, so consumers that keep
    one dead letter per source position can drop it."""
    return Output(letter.topic, letter.key, letter.value, (*letter.headers, ("replay", b"true")))


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
