"""The direct engine: one aiokafka consumer loop in the event loop, feeding the lanes.

Faust 0.15's path from broker to agent costs what the 10 ms budget cannot pay (measured in
BENCHMARKS.md): its consumer runs in a second thread that hands records to the event loop
through the GIL, its fetcher wraps every message in ``wait_first``, and its streams and
``take_events`` buffer and ack per event. Here a batch from ``getmany`` goes straight to the
lanes (``consuming.py``: the guarantees, shared with the librdkafka engine), outputs go to
the producer, and offsets are tracked per partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.consumer.consumer import RoundRobinPartitionAssignor
from aiokafka.errors import CommitFailedError, KafkaError

from workers.runtime.consuming import TP, CommitRefused, LaneEngine
from workers.runtime.delivery import Sent, refused_now, too_large
from workers.runtime.engine import Headers, TopicPartitionLike
from workers.runtime.kafka import last_fetch_age_s, to_record, tolerate_header_names
from workers.runtime.security import kafka_auth

__all__ = ["DirectEngine"]

log = logging.getLogger(__name__)

_POLL_MS = 100


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, engine: DirectEngine) -> None:
        self.engine = engine

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.engine.revoked({(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.engine.rebalances.assigned()
        log.info("assigned %d partitions", len(assigned))


class DirectEngine(LaneEngine):
    """Consumes the input topics with aiokafka, in the event loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self._consuming: asyncio.Task[None] | None = None

    async def _open(self) -> None:
        s = self.settings
        auth = kafka_auth(s)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers,
            client_id=s.client_id,
            linger_ms=s.producer_linger_ms,
            acks="all",
            enable_idempotence=s.producer_idempotence,
            max_request_size=8 * 1024 * 1024,
            **auth,
        )
        await self.producer.start()
        tolerate_header_names()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers,
            client_id=s.client_id,
            group_id=s.consumer_group,
            group_instance_id=s.group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=s.consumer_fetch[0],
            fetch_min_bytes=s.consumer_fetch[1],
            max_poll_records=s.batch_max,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(1.0, s.session_timeout_s / 3) * 1000),
            rebalance_timeout_ms=int(s.rebalance_timeout_s * 1000),
            partition_assignment_strategy=(RoundRobinPartitionAssignor,),
            **auth,
        )
        self.consumer.subscribe(s.topics(*s.input_topics()), listener=_Rebalance(self))
        await self.consumer.start()
        self._consuming = asyncio.create_task(self._consume(), name="consume")

    async def _stop_fetching(self) -> None:
        if self._consuming is not None:
            with contextlib.suppress(Exception):
                await self._consuming  # returns within one poll

    async def _close(self) -> None:
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

    def waiting(self, tp: TopicPartitionLike) -> int | None:
        return None  # aiokafka's position is a coroutine: the worker uses what it read

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

    # --- the client -------------------------------------------------------------------------

    def _assigned(self) -> set[TP]:
        if self.consumer is None:
            return set()
        return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def _pause(self, tps: list[TP]) -> None:
        if self.consumer is not None:
            self.consumer.pause(*(TopicPartition(*tp) for tp in tps))

    def _resume(self, tps: list[TP]) -> None:
        if self.consumer is not None:
            self.consumer.resume(*(TopicPartition(*tp) for tp in tps))

    async def _flush(self) -> None:
        if self.producer is not None:
            await self.producer.flush()

    async def _commit_offsets(self, offsets: dict[TP, int]) -> None:
        assert self.consumer is not None
        try:
            await self.consumer.commit({TopicPartition(*tp): o for tp, o in offsets.items()})
        except CommitFailedError as exc:
            raise CommitRefused(str(exc)) from exc

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
        while not self._stopping:
            batches = await self.consumer.getmany(
                timeout_ms=_POLL_MS, max_records=self.settings.batch_max
            )
            if not batches or self._stopping:
                continue  # records taken after the stop began stay uncommitted: replayed
            assigned = self.consumer.assignment()
            for tp, messages in batches.items():
                if tp not in assigned or not messages:  # revoked while fetched
                    continue
                start = self.started_at((tp.topic, tp.partition), messages[0].offset)
                prefix = self.settings.topic_prefix
                self.arrived(to_record(m, committed=start, prefix=prefix) for m in messages)
