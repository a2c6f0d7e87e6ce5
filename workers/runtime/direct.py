"""The direct engine: one aiokafka consumer loop in the event loop, feeding the core.

Faust 0.15's path from broker to agent costs what the 10 ms budget cannot pay (measured in
BENCHMARKS.md): its consumer runs in a second thread that hands records to the event loop
through the GIL, its fetcher wraps every message in ``wait_first``, and its streams and
``take_events`` buffer and ack per event. Here a batch from ``getmany`` goes straight to
the processors (listening events of the whole batch in one Redis pipeline), outputs go to
the producer, and offsets are tracked per partition.

Guarantees, the same as with Faust's agents (RELIABILITY.md):
- a record's offset becomes committable only once the broker acknowledged every one of
  its outputs (``delivery.py``: a commit flushes the producer, then checks each delivery;
  an output refused for good is replaced by a dead letter that fits, or the partition
  stops), so outputs are durable before their inputs are committed;
- a rebalance waits for the batch in hand, then commits what was done for the partitions
  being revoked; records of partitions no longer assigned are left to their new owner;
- a stop finishes the batch in hand (bounded by ``drain_timeout_s``), flushes, commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

import mode
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.consumer.consumer import RoundRobinPartitionAssignor
from aiokafka.errors import CommitFailedError, KafkaError

from workers.core.records import INPUT_TOPICS, OUTPUT_TOPICS, Record, topic_kind
from workers.runtime.admin import DEFAULT_MAX_MESSAGE_BYTES, create_topics, output_limits
from workers.runtime.delivery import Sent, Settlement, refused_now, too_large
from workers.runtime.engine import Headers, RebalanceClock, RecordHandler, TopicPartitionLike
from workers.runtime.kafka import last_fetch_age_s, to_record
from workers.runtime.lanes import Lane, Lanes
from workers.runtime.security import kafka_auth
from workers.runtime.settings import Settings

__all__ = ["DirectEngine"]

log = logging.getLogger(__name__)

_POLL_MS = 100


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, engine: DirectEngine) -> None:
        self.engine = engine

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.engine.rebalances.revoked()
        await self.engine.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.engine.rebalances.assigned()
        log.info("assigned %d partitions", len(assigned))


class DirectEngine(mode.Service):
    """Consumes the input topics, hands batches to the handler, produces, commits."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self._handler: RecordHandler | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        #: per partition, the offset this worker last committed (or started from)
        self._committed: dict[TopicPartition, int] = {}
        self._settlement: Settlement | None = None
        self.rebalances = RebalanceClock()
        #: each output topic's max.message.bytes (Kafka's default until read)
        self._limits: dict[str, int] = {}
        self.lanes: Lanes | None = None
        #: partitions not fetched while their lane's backlog is high
        self._held_back: set[TopicPartition] = set()
        self._stopping = False
        self._consuming: asyncio.Task[None] | None = None

    def run(self, handler: RecordHandler, shell: mode.Service, *, log_level: str) -> None:
        self._handler = handler
        self._settlement = Settlement(send=self.send, handler=handler, pause=self._pause)
        # mode.Worker stops its services in reverse order: the engine first, then the shell
        mode.Worker(
            shell, self, loglevel=log_level, redirect_stdouts=False, override_logging=True
        ).execute_from_commandline()

    @property
    def stopping(self) -> bool:
        return self._stopping

    # --- lifecycle ------------------------------------------------------------------------

    async def on_start(self) -> None:
        s = self.settings
        auth = kafka_auth(s)
        if s.create_topics:
            await create_topics(
                s.kafka_bootstrap,
                s.topics(*INPUT_TOPICS, *OUTPUT_TOPICS),
                partitions=s.topic_partitions,
                auth=auth,
            )
        self._limits = await output_limits(s)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers,
            client_id=f"{s.group_id}-{os.getpid()}",
            linger_ms=s.producer_linger_ms,
            acks="all",
            max_request_size=8 * 1024 * 1024,
            **auth,
        )
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers,
            client_id=f"{s.group_id}-{os.getpid()}",
            group_id=s.group_id,
            group_instance_id=s.group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            max_poll_records=s.batch_max,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(1.0, s.session_timeout_s / 3) * 1000),
            rebalance_timeout_ms=int(s.rebalance_timeout_s * 1000),
            partition_assignment_strategy=(RoundRobinPartitionAssignor,),
            **auth,
        )
        self.consumer.subscribe(s.topics(*INPUT_TOPICS), listener=_Rebalance(self))
        await self.consumer.start()
        assert self._handler is not None
        handle = self._handler.handle
        self.lanes = Lanes(
            {
                kind: Lane(
                    kind,
                    lambda records: handle(records, self._mark_done),
                    batch_max=s.batch_max,
                    on_error=self.crash,
                )
                for kind in INPUT_TOPICS
            }
        )
        self.lanes.start()
        self._consuming = asyncio.create_task(self._consume(), name="consume")
        self.add_future(self._commit_every_interval())

    async def on_stop(self) -> None:
        """Finish the batches in hand and take no more, flush, commit, close."""
        self._stopping = True
        if self._consuming is not None:
            with contextlib.suppress(Exception):
                await self._consuming  # returns within one poll
        if self.lanes is not None:
            # records fetched but not started stay uncommitted: the next owner reads them
            self.lanes.drop(lambda _: True)
            try:
                async with asyncio.timeout(self.settings.drain_timeout_s):
                    async with self.lanes.held():
                        pass
            except TimeoutError:
                log.warning(
                    "stopping with records unfinished: they stay uncommitted and are replayed"
                )
            await self.lanes.stop()
        for _ in range(3):  # resends and replacements are acknowledged by the next flush
            with contextlib.suppress(KafkaError):
                await self._commit()
            if self._settlement is None or not self._settlement.waiting():
                break
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    # --- what the worker asks -------------------------------------------------------------

    def assignment(self) -> set[TopicPartitionLike]:
        return set(self.consumer.assignment()) if self.consumer is not None else set()

    def highwater(self, tp: TopicPartitionLike) -> int | None:
        if self.consumer is None or tp not in self.consumer.assignment():
            return None
        highwater: int | None = self.consumer.highwater(tp)  # type: ignore[arg-type]
        return highwater

    def last_fetch_age_s(self) -> float | None:
        return last_fetch_age_s(self.consumer) if self.consumer is not None else None

    async def send(self, topic: str, key: bytes, value: bytes, headers: Headers | None) -> Sent:
        assert self.producer is not None
        refused = too_large(key, value, headers, limit=self.max_message_bytes(topic))
        if refused is not None:  # the broker would refuse it: not sent
            return Sent(topic, key, value, headers, refused_now(refused))
        try:
            delivery = await self.producer.send(topic, value, key=key, headers=headers)
        except KafkaError as exc:  # refused before it left (unknown topic, closed, ...)
            delivery = refused_now(exc)
        return Sent(topic, key, value, headers, delivery)

    def max_message_bytes(self, topic: str) -> int:
        return self._limits.get(topic, DEFAULT_MAX_MESSAGE_BYTES)

    def blocked(self) -> dict[tuple[str, int], str]:
        return dict(self._settlement.blocked) if self._settlement is not None else {}

    def _pause(self, tp: tuple[str, int]) -> None:
        if self.consumer is not None:
            self.consumer.pause(TopicPartition(*tp))

    # --- the loop ---------------------------------------------------------------------------

    async def _consume(self) -> None:
        try:
            await self._consume_batches()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken consumer must not leave a live, idle process
            log.exception("consume loop failed")
            await self.crash(exc)

    async def _consume_batches(self) -> None:
        assert self.consumer is not None
        assert self.lanes is not None
        while not self._stopping:
            self._hold_back_busy_lanes()
            batches = await self.consumer.getmany(
                timeout_ms=_POLL_MS, max_records=self.settings.batch_max
            )
            if not batches or self._stopping:
                continue  # records taken after the stop began stay uncommitted: replayed
            assigned = self.consumer.assignment()
            for tp, messages in batches.items():
                if tp not in assigned or not messages:  # revoked while fetched
                    continue
                # where this worker started on the partition: nothing below is re-read
                committed = self._committed.setdefault(tp, messages[0].offset)
                self.lanes.put(to_record(m, committed=committed) for m in messages)

    def _hold_back_busy_lanes(self) -> None:
        """Stop fetching the partitions of a lane with a high backlog; fetch them again once
        it is down to a batch (partitions stopped for an undeliverable output stay so)."""
        assert self.consumer is not None
        assert self.lanes is not None
        busy, free = self.lanes.backlogged(), self.lanes.drained()
        blocked = self._settlement.blocked if self._settlement is not None else {}
        for tp in self.consumer.assignment():
            kind = topic_kind(tp.topic)
            if kind in busy and tp not in self._held_back:
                self.consumer.pause(tp)
                self._held_back.add(tp)
            elif kind in free and tp in self._held_back:
                self._held_back.discard(tp)
                if (tp.topic, tp.partition) not in blocked:
                    self.consumer.resume(tp)

    def _mark_done(self, record: Record, sent: list[Sent]) -> None:
        assert self._settlement is not None
        self._settlement.add(record, sent)

    async def _commit_every_interval(self) -> None:
        async for _ in self.itertimer(self.settings.commit_interval_s, name="commit"):
            try:
                await self._commit()
            except KafkaError as exc:
                log.warning("offset commit failed (%s); retrying next interval", exc)

    async def _commit(self, only: set[TopicPartition] | None = None) -> None:
        """Flush the producer, then commit the records whose outputs were all acknowledged."""
        if self.consumer is None or self.producer is None or self._settlement is None:
            return
        if not self._settlement.waiting():
            return
        await self.producer.flush()
        done = await self._settlement.committable(
            None if only is None else {(tp.topic, tp.partition) for tp in only}
        )
        offsets = {
            TopicPartition(*tp): offset
            for tp, offset in done.items()
            if self._committed.get(TopicPartition(*tp)) != offset
        }
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as exc:  # the group moved on: the new owner replays them
            log.warning("offsets not committed (%s); their records will be replayed", exc)
            return
        self._committed.update(offsets)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in revoked}
        if self.lanes is None:
            return
        self.lanes.drop(lambda r: (r.topic, r.partition) in gone)  # the next owner's now
        self._held_back -= revoked
        async with self.lanes.held():  # the batches in hand finish first
            with contextlib.suppress(KafkaError):
                await self._commit(revoked)
            if self._settlement is not None:
                self._settlement.forget((tp.topic, tp.partition) for tp in revoked)
            for tp in revoked:
                self._committed.pop(tp, None)
