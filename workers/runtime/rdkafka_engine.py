"""The librdkafka engine (``WORKERS_ENGINE=rdkafka``): confluent-kafka's consumer and
producer, the same lanes and guarantees as the direct engine (``consuming.py``).

Why: on the reference machine a do-nothing consume → produce loop costs 0.05 ms of CPU per
record on librdkafka against 0.18 ms on aiokafka at 1,000 events/s (BENCHMARKS.md): the
fetching, decoding and batching happen in librdkafka's C threads instead of the event loop.

How it meets the event loop:
- a consumer thread waits in ``poll`` (the GIL released), takes what else is fetched
  without waiting, turns the messages into records and hands each batch to the loop with
  one ``call_soon_threadsafe``; librdkafka calls the rebalance callbacks in that thread,
  which run ``revoked`` on the loop and wait for it (batches in hand finish, then commit);
- a producer thread serves delivery reports (``poll``); each settles its output's future
  on the loop, a whole poll's reports in one ``call_soon_threadsafe``;
- commits and flushes run in worker threads (``asyncio.to_thread``), never blocking the loop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import operator
import threading
import time
from typing import Any

import orjson
from aiokafka import errors as kafka_errors
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from workers.core.records import Record, received
from workers.runtime.consuming import TP, CommitRefused, LaneEngine
from workers.runtime.delivery import Sent, refused_now, too_large
from workers.runtime.engine import Headers, TopicPartitionLike
from workers.runtime.security import rdkafka_config

__all__ = ["RdkafkaEngine"]

log = logging.getLogger(__name__)

_POLL_S = 0.1

#: librdkafka's refusals that no resend fixes, as the errors ``delivery.is_retriable`` knows
_FOR_GOOD: dict[int, type[Exception]] = {
    KafkaError.MSG_SIZE_TOO_LARGE: kafka_errors.MessageSizeTooLargeError,
    KafkaError.INVALID_MSG_SIZE: kafka_errors.MessageSizeTooLargeError,
    KafkaError.RECORD_LIST_TOO_LARGE: kafka_errors.RecordTooLargeError,
    KafkaError.TOPIC_AUTHORIZATION_FAILED: kafka_errors.TopicAuthorizationFailedError,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: kafka_errors.ClusterAuthorizationFailedError,
    KafkaError.TOPIC_EXCEPTION: kafka_errors.InvalidTopicError,
    KafkaError.INVALID_MSG: kafka_errors.CorruptRecordException,
    KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT: kafka_errors.UnsupportedForMessageFormatError,
}
_GROUP_MOVED_ON = (
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.FENCED_INSTANCE_ID,
    KafkaError._ASSIGNMENT_LOST,  # local error codes start with _
    KafkaError._STATE,
)


#: ``Message.headers()``, called so that CPython checks its result. The binding decodes
#: header names as strict UTF-8 and, on a name that is not (Kafka allows any bytes), returns
#: a list with an exception still set: a plain ``m.headers()`` at a specialised call site
#: (3.11's adaptive interpreter) does not check, and the error surfaces later, anywhere.
#: Through ``methodcaller`` (PyObject_Call) it is raised at once, as a SystemError.
_read_headers = operator.methodcaller("headers")


def _as_exception(error: KafkaError) -> Exception:
    kind = _FOR_GOOD.get(error.code())
    return kind(error.str()) if kind is not None else KafkaException(error)


class _FetchClock:
    """What librdkafka's statistics (every second) tell: when a fetch was last answered (a
    broker's Fetch count grows only as its previous fetch is answered), and each partition's
    records waiting (``consumer_lag``: high watermark less the offset reached; -1: unknown)."""

    def __init__(self) -> None:
        self._fetches = -1
        self._at: float | None = None
        self.lags: dict[TP, int] = {}

    def on_stats(self, text: str) -> None:
        stats = orjson.loads(text)
        fetches = sum(
            int(b.get("req", {}).get("Fetch", 0)) for b in stats.get("brokers", {}).values()
        )
        if fetches > self._fetches:
            self._fetches, self._at = fetches, time.time()
        lags: dict[TP, int] = {}
        for topic, about in stats.get("topics", {}).items():
            for partition, numbers in about.get("partitions", {}).items():
                lag = int(numbers.get("consumer_lag", -1))
                if lag >= 0 and int(partition) >= 0:
                    lags[(topic, int(partition))] = lag
        self.lags = lags

    def age_s(self) -> float | None:
        return None if self._at is None else time.time() - self._at


class RdkafkaEngine(LaneEngine):
    """Consumes the input topics with librdkafka, in a thread, feeding the lanes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fetch_clock = _FetchClock()
        self._assignment: set[TP] = set()
        #: partitions this engine paused and has not resumed: librdkafka keeps a partition's
        #: pause across a rebalance that gives it back, while the lanes start afresh
        self._paused: set[TP] = set()
        self._paused_lock = threading.Lock()
        self._fetching = threading.Event()  # cleared: the consumer thread hands nothing over
        self._closing = threading.Event()
        self._consumer_thread: threading.Thread | None = None
        self._producer_thread: threading.Thread | None = None
        #: delivery reports waiting to be settled on the loop: (future, error or None)
        self._reports: collections.deque[tuple[asyncio.Future[Any], KafkaError | None]] = (
            collections.deque()
        )

    async def _open(self) -> None:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        base = rdkafka_config(s)
        self.producer = Producer(
            {
                **base,
                "linger.ms": s.producer_linger_ms,
                "acks": "all",
                # a retry cannot reorder a key's records, nor leave a changelog
                # (predictions.accounts) ending on a stale verdict
                "enable.idempotence": s.producer_idempotence,
                "message.max.bytes": 8 * 1024 * 1024,
                **s.kafka_producer,  # the operator's properties (none the worker owns)
            }
        )
        consumer_config = {
            **base,
            "group.id": s.consumer_group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": s.consumer_fetch[0],
            "fetch.min.bytes": s.consumer_fetch[1],
            "fetch.queue.backoff.ms": 0,
            "max.partition.fetch.bytes": 8 * 1024 * 1024,
            "queued.max.messages.kbytes": 32 * 1024,
            "session.timeout.ms": int(s.session_timeout_s * 1000),
            "heartbeat.interval.ms": int(min(1.0, s.session_timeout_s / 3) * 1000),
            # librdkafka's rebalance timeout is max.poll.interval.ms (at least the session)
            "max.poll.interval.ms": int(max(s.rebalance_timeout_s, s.session_timeout_s) * 1000),
            "partition.assignment.strategy": "roundrobin",
            "statistics.interval.ms": 1000,
            "stats_cb": self._fetch_clock.on_stats,
            "error_cb": lambda error: log.warning("kafka: %s", error),
            **({"group.instance.id": s.group_instance_id} if s.group_instance_id else {}),
            **s.kafka_consumer,  # the operator's properties (none the worker owns)
        }
        self.consumer = Consumer(consumer_config)
        self.consumer.subscribe(
            s.topics(*s.input_topics()),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._fetching.set()
        self._consumer_thread = threading.Thread(target=self._consume, name="consumer")
        self._producer_thread = threading.Thread(target=self._serve_reports, name="producer")
        self._consumer_thread.start()
        self._producer_thread.start()

    async def _stop_fetching(self) -> None:
        self._fetching.clear()

    async def _close(self) -> None:
        self._closing.set()
        for thread in (self._consumer_thread, self._producer_thread):
            if thread is not None:
                await asyncio.to_thread(thread.join)
        if self.producer is not None:
            await asyncio.to_thread(self._flush_now, 10.0)

    # --- what the worker asks -------------------------------------------------------------

    def assignment(self) -> set[TopicPartitionLike]:
        return {TopicPartition(*tp) for tp in self._assignment}

    def highwater(self, tp: TopicPartitionLike) -> int | None:
        if self.consumer is None or (tp.topic, tp.partition) not in self._assignment:
            return None
        try:
            _low, high = self.consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), cached=True
            )
        except (KafkaException, RuntimeError, TypeError):
            return None
        return int(high) if high >= 0 else None

    def last_fetch_age_s(self) -> float | None:
        return self._fetch_clock.age_s()

    def waiting(self, tp: TopicPartitionLike) -> int | None:
        if (tp.topic, tp.partition) not in self._assignment:
            return None
        return self._fetch_clock.lags.get((tp.topic, tp.partition))

    async def send(self, topic: str, key: bytes, value: bytes, headers: Headers | None) -> Sent:
        assert self.producer is not None
        assert self._loop is not None
        refused = too_large(key, value, headers, limit=self.max_message_bytes(topic))
        if refused is not None:  # the broker would refuse it: not sent
            return Sent(topic, key, value, headers, refused_now(refused))
        delivery: asyncio.Future[Any] = self._loop.create_future()
        reported = _reporter(self._reports, delivery)
        for _ in range(100):
            try:
                self.producer.produce(topic, value, key, headers=headers, on_delivery=reported)
                break
            except BufferError:  # the local queue is full: let the producer thread drain it
                await asyncio.sleep(0.01)
            except KafkaException as exc:  # refused before it left
                delivery = refused_now(_as_exception(exc.args[0]))
                break
        else:
            delivery = refused_now(KafkaException(KafkaError(KafkaError._QUEUE_FULL)))
        return Sent(topic, key, value, headers, delivery)

    # --- the client -------------------------------------------------------------------------

    def _assigned(self) -> set[TP]:
        return set(self._assignment)

    def _pause(self, tps: list[TP]) -> None:
        if self.consumer is not None:
            with self._paused_lock:
                self._paused.update(tps)
                self.consumer.pause([TopicPartition(*tp) for tp in tps])

    def _resume(self, tps: list[TP]) -> None:
        if self.consumer is not None:
            with self._paused_lock:
                self._paused.difference_update(tps)
                self.consumer.resume([TopicPartition(*tp) for tp in tps])

    async def _flush(self) -> None:
        if self.producer is not None:
            await asyncio.to_thread(self._flush_now, 30.0)

    async def _commit_offsets(self, offsets: dict[TP, int]) -> None:
        assert self.consumer is not None
        consumer = self.consumer
        partitions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            result = await asyncio.to_thread(
                consumer.commit, offsets=partitions, asynchronous=False
            )
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() in _GROUP_MOVED_ON:
                raise CommitRefused(error.str()) from exc
            raise
        failed = [tp for tp in result or () if tp.error is not None]
        if failed:
            why = ", ".join(f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in failed)
            raise CommitRefused(why)

    # --- threads ----------------------------------------------------------------------------

    def _flush_now(self, timeout: float) -> None:
        assert self.producer is not None
        self.producer.flush(timeout)
        self._settle_reports()

    def _serve_reports(self) -> None:
        assert self.producer is not None
        while not self._closing.is_set():
            self.producer.poll(_POLL_S)
            self._settle_reports()

    def _settle_reports(self) -> None:
        """Hand the delivery reports gathered so far to the loop, in one call."""
        if not self._reports or self._loop is None:
            return
        reports = []
        while self._reports:
            reports.append(self._reports.popleft())
        self._loop.call_soon_threadsafe(_settle, reports)

    def _consume(self) -> None:
        """The consumer thread: poll, take the rest without waiting, hand the batch over."""
        assert self.consumer is not None
        assert self._loop is not None
        consumer, loop, batch_max = self.consumer, self._loop, self.settings.batch_max
        try:
            while not self._closing.is_set():
                first = consumer.poll(_POLL_S)
                if first is None:
                    continue
                messages = [first, *consumer.consume(batch_max - 1, 0)]
                records = self._records(messages)
                if records and self._fetching.is_set():
                    loop.call_soon_threadsafe(self.arrived, records)
        except Exception as exc:  # a broken consumer must not leave a live, idle process
            log.exception("consumer thread failed")
            asyncio.run_coroutine_threadsafe(self.crash(exc), loop)
        finally:
            consumer.close()  # leaves the group (on_revoke sees _closing: already committed)

    def _records(self, messages: list[Message]) -> list[Record]:
        records = []
        for m in messages:
            error = m.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("fetch error: %s", error)
                continue
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            if (topic, partition) not in self._assignment:  # revoked while fetched
                continue
            _kind, timestamp = m.timestamp()
            try:
                headers: Any = _read_headers(m)
            except (UnicodeError, SystemError) as exc:  # the record stays: a bad-headers letter
                headers = exc
            records.append(
                received(
                    topic,
                    partition,
                    offset,
                    m.key(),
                    m.value(),
                    headers=headers,
                    timestamp_ms=timestamp if timestamp >= 0 else None,
                    committed=self.started_at((topic, partition), offset),
                    prefix=self.settings.topic_prefix,
                )
            )
        return records

    # --- rebalance callbacks (in the consumer thread, inside poll) --------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assignment = {(tp.topic, tp.partition) for tp in partitions}
        with self._paused_lock:  # given back while paused: a new owner starts fetching
            stale = [TopicPartition(*tp) for tp in self._assignment & self._paused]
            self._paused -= self._assignment
            if stale:
                consumer.assign(partitions)
                consumer.resume(stale)
                log.info("resumed %d partitions paused before the rebalance", len(stale))
        self.rebalances.assigned()
        log.info("assigned %d partitions", len(partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._give_up(partitions, lost=False)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._give_up(partitions, lost=True)

    def _give_up(self, partitions: list[TopicPartition], *, lost: bool) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._assignment -= gone
        if self._closing.is_set() or self._loop is None or self._loop.is_closed():
            return  # the stop already finished the batches in hand and committed
        run = asyncio.run_coroutine_threadsafe(self.revoked(gone, lost=lost), self._loop)
        try:
            run.result(timeout=self.settings.rebalance_timeout_s + self.settings.drain_timeout_s)
        except Exception:
            log.exception("handing partitions over")


def _reporter(
    reports: collections.deque[tuple[asyncio.Future[Any], KafkaError | None]],
    delivery: asyncio.Future[Any],
) -> Any:
    """librdkafka's delivery callback for one output: its report queued for the loop."""

    def reported(error: KafkaError | None, _message: Message) -> None:
        reports.append((delivery, error))

    return reported


def _settle(reports: list[tuple[asyncio.Future[Any], KafkaError | None]]) -> None:
    for delivery, error in reports:
        if delivery.done():
            continue
        if error is None:
            delivery.set_result(None)
        else:
            delivery.set_exception(_as_exception(error))
