"""``redrive`` as an operator runs it: the dead letters chosen by reason, tenant and time
are published again, with their original bytes, key and headers (``original-{name}``,
restored to ``{name}``), to the topic they came from, or to ``--to``.

Each dead letter is re-driven once: after the broker acknowledged its copy, its position
is remembered in Redis (``keys.redriven``, kept as long as replays are recognised), and a
later run skips it. A copy carries ``redriven-from: {topic}:{partition}:{offset}``. A run
stopped between the acknowledgement and the note may publish that one copy again on the
next run (at least once, like the worker); a listening event's copy is then the worker's
``duplicate-event``. Reads the worker's own settings (broker, security, Redis, isolation).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from workers.core.records import DEADLETTER, ORIGINAL_HEADER
from workers.runtime.security import rdkafka_config, redis_store
from workers.runtime.settings import Settings
from workers.state import keys

__all__ = ["BATCH", "QUIET_S", "RedriveReport", "Wanted", "redrive", "restored"]


@dataclass(frozen=True)
class Wanted:
    """Which dead letters: a reason code, a tenant, a span of dead-letter times (epoch ms,
    inclusive), a target topic instead of each letter's source, and whether to publish."""

    reason: str
    tenant: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    to: str | None = None
    dry_run: bool = False

    def matches(self, headers: dict[str, bytes], key: bytes | None, timestamp_ms: int) -> bool:
        if headers.get("error") != self.reason.encode():
            return False
        if self.tenant is not None:
            tenant = headers.get("tenant") or (key or b"").split(b"/", 1)[0]
            if tenant != self.tenant.encode():
                return False
        if self.since_ms is not None and timestamp_ms < self.since_ms:
            return False
        return self.until_ms is None or timestamp_ms <= self.until_ms


@dataclass
class RedriveReport:
    scanned: int = 0
    matched: int = 0
    redriven: int = 0
    #: matched, but re-driven by an earlier run
    already: int = 0
    #: matched, but with nothing to publish (an erased listener's value was not kept)
    empty: int = 0
    problems: list[str] = field(default_factory=list)


def restored(headers: Sequence[tuple[str, bytes]], position: str) -> list[tuple[str, bytes]]:
    """The original record's headers, from a dead letter's, and where the copy came from.

    >>> restored([("error", b"bad-headers"), ("original-seq", b"3")], "events.deadletter:0:9")
    [('seq', b'3'), ('redriven-from', b'events.deadletter:0:9')]
    """
    original = [
        (name[len(ORIGINAL_HEADER) :], value)
        for name, value in headers
        if name.startswith(ORIGINAL_HEADER)
    ]
    return [*original, ("redriven-from", position.encode())]


def _topics(settings: Settings, tenant: str | None) -> list[tuple[str, str | None]]:
    """(dead-letter topic, its owner) to read."""
    if settings.isolation != "strict":
        return [(settings.topic(DEADLETTER), None)]
    owners = [tenant] if tenant is not None else list(settings.tenants)
    return [(settings.topic(DEADLETTER, owner), owner) for owner in owners]


#: seconds without a record or an end-of-partition from the broker before a run gives up
QUIET_S = 30.0
#: copies in flight before the run waits for the broker's acknowledgements and notes them
BATCH = 500


async def redrive(
    settings: Settings,
    wanted: Wanted,
    *,
    progress: Callable[[RedriveReport], None] | None = None,
) -> RedriveReport:
    """Re-drive the dead letters ``wanted`` names, each once; what was done, and what not.
    A dry run reads and counts (``redriven``: what would be published) and publishes
    nothing."""
    from confluent_kafka import (
        OFFSET_BEGINNING,
        OFFSET_END,
        Consumer,
        KafkaError,
        Producer,
        TopicPartition,
    )

    report = RedriveReport()
    config = rdkafka_config(settings)
    consumer = Consumer(
        {
            **config,
            "group.id": f"{settings.group_id}-redrive",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            **settings.kafka_consumer,
        }
    )
    producer = Producer(
        {**config, "enable.idempotence": True, "acks": "all", **settings.kafka_producer}
    )
    store = redis_store(settings)
    client = store.client
    ttl_s = settings.replay_memory_s
    try:
        for topic, owner in _topics(settings, wanted.tenant):
            done_key = keys.redriven(owner, topic)
            metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if metadata is None or metadata.error is not None:
                report.problems.append(f"{topic}: not found")
                continue
            # each partition from its start (or the first letter at or after --since) to
            # its end, as the broker says when the consumer reaches it (partition EOF)
            starts = []
            for p in sorted(metadata.partitions):
                first = OFFSET_BEGINNING
                if wanted.since_ms is not None:
                    found = consumer.offsets_for_times(
                        [TopicPartition(topic, p, wanted.since_ms)], timeout=10
                    )[0]
                    first = found.offset if found.offset >= 0 else OFFSET_END
                starts.append(TopicPartition(topic, p, first))
            ends = {start.partition: True for start in starts}
            consumer.assign(starts)
            pending: list[tuple[str, list[bool]]] = []
            settle = functools.partial(
                _settle,
                producer,
                client,
                done_key=done_key,
                pending=pending,
                ttl_s=ttl_s,
                report=report,
            )
            heard = time.monotonic()
            while ends:
                message = consumer.poll(1.0)
                if message is None:
                    if time.monotonic() - heard > QUIET_S:
                        report.problems.append(f"{topic}: no answer for {QUIET_S:g} s; stopped")
                        break
                    continue
                heard = time.monotonic()
                partition = message.partition()
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        report.problems.append(f"{topic}[{partition}]: {error}")
                    ends.pop(partition, None)
                    continue
                if partition not in ends:
                    continue
                report.scanned += 1
                copy = await _copy(
                    message, topic, done_key=done_key, wanted=wanted, client=client, report=report
                )
                if copy is None:
                    continue
                member, target, headers = copy
                acknowledged: list[bool] = []
                producer.produce(
                    target,
                    value=message.value(),
                    key=message.key(),
                    headers=headers,
                    on_delivery=lambda err, _m, box=acknowledged: box.append(err is None),
                )
                pending.append((member, acknowledged))
                if len(pending) >= BATCH:
                    await settle()
                if progress is not None and report.scanned % 1000 == 0:
                    progress(report)
            await settle()
            consumer.unassign()
    finally:
        consumer.close()
        await client.aclose()
    return report


async def _copy(
    message: Any, topic: str, *, done_key: str, wanted: Wanted, client: Any, report: RedriveReport
) -> tuple[str, str, list[tuple[str, bytes]]] | None:
    """(its member in the re-driven set, target topic, headers) of a dead letter to
    publish again; None for one not wanted, already re-driven, empty, or a dry run."""
    headers = [(name, value or b"") for name, value in (message.headers() or [])]
    found = dict(headers)
    _, timestamp_ms = message.timestamp()
    if not wanted.matches(found, message.key(), timestamp_ms):
        return None
    report.matched += 1
    member = f"{message.partition()}:{message.offset()}"
    if await client.sismember(done_key, member):
        report.already += 1
        return None
    if "value-dropped" in found:
        report.empty += 1
        return None
    position = f"{topic}:{member}"
    target = wanted.to or found.get("source-topic", b"").decode()
    if not target:
        report.problems.append(f"{position}: no source-topic")
        return None
    if wanted.dry_run:
        report.redriven += 1
        return None
    return member, target, restored(headers, position)


async def _settle(
    producer: Any,
    client: Any,
    *,
    done_key: str,
    pending: list[tuple[str, list[bool]]],
    ttl_s: int,
    report: RedriveReport,
) -> None:
    """Wait for the broker's answers on the copies in flight; note the acknowledged ones."""
    if not pending:
        return
    producer.flush(60)
    done = [member for member, box in pending if box == [True]]
    report.redriven += len(done)
    missed = len(pending) - len(done)
    if missed:
        report.problems.append(f"{missed} copies not acknowledged by the broker")
    if done:
        await client.sadd(done_key, *done)
        await client.expire(done_key, ttl_s)
    pending.clear()
