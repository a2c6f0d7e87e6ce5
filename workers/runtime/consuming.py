"""What both consumer-loop engines share, whichever Kafka client they drive: lanes, commits
of settled records only, rebalances that finish the batches in hand, a stop that drains.

``LaneEngine`` holds the guarantees (RELIABILITY.md); its subclasses only talk to their
client: ``DirectEngine`` (``direct.py``, aiokafka in the event loop) and ``RdkafkaEngine``
(``rdkafka_engine.py``, librdkafka through confluent-kafka, its consumer in a thread).
A subclass hands fetched records to ``arrived`` and calls ``revoked`` from its client's
rebalance callback; it implements the client operations below the marked line.

- A record's offset becomes committable only once the broker acknowledged every one of its
  outputs (``delivery.py``: a commit flushes the producer, then checks each delivery; an
  output refused for good is replaced by a dead letter that fits, or the partition stops).
- A rebalance drops the queued records of revoked partitions (uncommitted: the next owner
  reads them), waits for the batches in hand, then commits what was done for them.
- A stop finishes the batches in hand (bounded by ``drain_timeout_s``), flushes, commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import abstractmethod
from collections.abc import Iterable
from typing import Any

import mode

from workers.core.records import Record
from workers.runtime.admin import DEFAULT_MAX_MESSAGE_BYTES, prepare_topics
from workers.runtime.delivery import Sent, Settlement
from workers.runtime.engine import Headers, RebalanceClock, RecordHandler, TopicPartitionLike
from workers.runtime.lanes import Lane, Lanes
from workers.runtime.settings import Settings

__all__ = ["TP", "CommitRefused", "LaneEngine"]

log = logging.getLogger(__name__)

#: a partition, as (topic, partition)
TP = tuple[str, int]


class CommitRefused(Exception):
    """The group moved on (a rebalance): the offsets were not committed, and the new owner
    replays their records."""


class LaneEngine(mode.Service):
    """Consumes the input topics into lanes, hands batches to the handler, commits."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self._handler: RecordHandler | None = None
        #: per partition, the offset this worker last committed (or started from)
        self._committed: dict[TP, int] = {}
        self._settlement: Settlement | None = None
        self.rebalances = RebalanceClock()
        #: each output topic's max.message.bytes (Kafka's default until read)
        self._limits: dict[str, int] = {}
        self.lanes: Lanes | None = None
        #: partitions not fetched while their lane's backlog is high
        self._held_back: set[TP] = set()
        self._stopping = False

    def run(
        self,
        handler: RecordHandler,
        shell: mode.Service,
        *,
        log_level: str,
        logging_config: dict[str, Any] | None = None,
    ) -> None:
        self._handler = handler
        self._settlement = Settlement(send=self.send, handler=handler, pause=self._block)
        # mode.Worker stops its services in reverse order: the engine first, then the shell
        mode.Worker(
            shell,
            self,
            loglevel=log_level,
            logging_config=logging_config,
            redirect_stdouts=False,
            override_logging=True,
        ).execute_from_commandline()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def max_message_bytes(self, topic: str) -> int:
        return self._limits.get(topic, DEFAULT_MAX_MESSAGE_BYTES)

    def blocked(self) -> dict[tuple[str, int], str]:
        return dict(self._settlement.blocked) if self._settlement is not None else {}

    # --- lifecycle ------------------------------------------------------------------------

    async def on_start(self) -> None:
        s = self.settings
        self._limits = await prepare_topics(s)
        assert self._handler is not None
        handle = self._handler.handle

        async def process(records: list[Record]) -> None:
            await handle(records, self._mark_done)
            self._hold_back_busy_lanes()  # a lane back under one batch fetches again

        self.lanes = Lanes(
            {
                kind: Lane(kind, process, batch_max=s.batch_max, on_error=self.crash)
                for kind in s.input_topics()
            }
        )
        self.lanes.start()
        await self._open()
        self.add_future(self._commit_every_interval())

    async def on_stop(self) -> None:
        """Finish the batches in hand and take no more, flush, commit, close."""
        self._stopping = True
        await self._stop_fetching()
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
            with contextlib.suppress(Exception):
                await self._commit()
            if self._settlement is None or not self._settlement.waiting():
                break
        await self._close()

    # --- records in, offsets out ----------------------------------------------------------

    def arrived(self, records: Iterable[Record]) -> None:
        """Fetched records (of assigned partitions, in offset order per partition)."""
        if self._stopping or self.lanes is None:
            return  # taken after the stop began: uncommitted, replayed by the next owner
        self.lanes.put(records)
        self._hold_back_busy_lanes()

    def started_at(self, tp: TP, offset: int) -> int:
        """Where this worker started on ``tp`` (its first record's offset, or its last
        commit): nothing below it is a re-read."""
        return self._committed.setdefault(tp, offset)

    def _hold_back_busy_lanes(self) -> None:
        """Stop fetching the partitions of a lane with a high backlog; fetch them again once
        it is down to a batch (partitions stopped for an undeliverable output stay so)."""
        if self.lanes is None:
            return
        busy = self.lanes.backlogged()
        if not busy and not self._held_back:
            return  # the usual case, after every batch: nothing to pause or resume
        free = self.lanes.drained()
        blocked = self._settlement.blocked if self._settlement is not None else {}
        pause, resume = [], []
        for tp in self._assigned():
            kind = self.settings.topic_kind(tp[0])
            if kind in busy and tp not in self._held_back:
                pause.append(tp)
                self._held_back.add(tp)
            elif kind in free and tp in self._held_back:
                self._held_back.discard(tp)
                if tp not in blocked:
                    resume.append(tp)
        if pause:
            self._pause(pause)
        if resume:
            self._resume(resume)

    def _block(self, tp: TP) -> None:
        self._pause([tp])

    def _mark_done(self, record: Record, sent: list[Sent]) -> None:
        assert self._settlement is not None
        self._settlement.add(record, sent)

    async def _commit_every_interval(self) -> None:
        async for _ in self.itertimer(self.settings.commit_interval_s, name="commit"):
            try:
                await self._commit()
            except Exception as exc:
                log.warning("offset commit failed (%s); retrying next interval", exc)

    async def _commit(self, only: set[TP] | None = None) -> None:
        """Flush the producer, then commit the records whose outputs were all acknowledged."""
        if self._settlement is None or not self._settlement.waiting():
            return
        await self._flush()
        done = await self._settlement.committable(only)
        offsets = {tp: offset for tp, offset in done.items() if self._committed.get(tp) != offset}
        if not offsets:
            return
        try:
            await self._commit_offsets(offsets)
        except CommitRefused as exc:  # the group moved on: the new owner replays them
            log.warning("offsets not committed (%s); their records will be replayed", exc)
            return
        self._committed.update(offsets)

    async def revoked(self, revoked: set[TP], *, lost: bool = False) -> None:
        """Partitions taken away: their queued records dropped, the batches in hand
        finished, what was done committed (not when ``lost``: the group moved on already)."""
        self.rebalances.revoked()
        if self.lanes is None:
            return
        self.lanes.drop(lambda r: (r.topic, r.partition) in revoked)  # the next owner's now
        self._held_back -= revoked
        async with self.lanes.held():  # the batches in hand finish first
            if not lost:
                with contextlib.suppress(Exception):
                    await self._commit(revoked)
            if self._settlement is not None:
                self._settlement.forget(revoked)
            for tp in revoked:
                self._committed.pop(tp, None)

    # --- the client: what a subclass implements --------------------------------------------

    @abstractmethod
    async def _open(self) -> None:
        """Start the producer and the consumer (subscribed, handing records to ``arrived``)."""

    @abstractmethod
    async def _stop_fetching(self) -> None:
        """Hand no more records over (returns within one poll)."""

    @abstractmethod
    async def _close(self) -> None:
        """Leave the group and close both clients (after the last commit)."""

    @abstractmethod
    def _assigned(self) -> set[TP]:
        """The input partitions assigned now."""

    @abstractmethod
    def _pause(self, tps: list[TP]) -> None: ...

    @abstractmethod
    def _resume(self, tps: list[TP]) -> None: ...

    @abstractmethod
    async def _flush(self) -> None:
        """Every output handed to the producer sent, and its delivery settled."""

    @abstractmethod
    async def _commit_offsets(self, offsets: dict[TP, int]) -> None:
        """Commit; raise ``CommitRefused`` when the group has moved on."""

    @abstractmethod
    def assignment(self) -> set[TopicPartitionLike]: ...

    @abstractmethod
    async def send(self, topic: str, key: bytes, value: bytes, headers: Headers | None) -> Sent: ...
