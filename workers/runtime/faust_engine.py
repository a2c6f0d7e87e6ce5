"""The Faust engine (``WORKERS_ENGINE=faust``): Faust agents feed the same core.

Faust 0.15 needs three things from us to keep the worker's guarantees and speed: a
transport seam for its fetch wait (``faust_transport.py``), records acked only once their
outputs are produced (``InFlight``), and a stop that finishes the records in hand before
Faust cancels the agents (``FaustApp.before_stop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import faust
import mode
from aiokafka.errors import KafkaError
from faust.types import TP, EventT, StreamT

from workers.core.records import (
    AUDIO_CHUNKS,
    LISTENING_EVENTS,
    RECOMMEND_REQUESTS,
    Record,
    received,
)
from workers.runtime.admin import DEFAULT_MAX_MESSAGE_BYTES, prepare_topics
from workers.runtime.delivery import Sent, Settlement, refused_now, too_large
from workers.runtime.engine import Headers, RebalanceClock, RecordHandler, TopicPartitionLike
from workers.runtime.faust_transport import Transport, faust_credentials
from workers.runtime.settings import Settings

__all__ = ["FaustApp", "FaustEngine", "InFlight"]

log = logging.getLogger(__name__)


class FaustApp(faust.App):
    """A Faust app whose consumer uses ``fetch_max_wait_ms`` from settings (see transport.py),
    and which lets the worker finish its records in hand before Faust stops anything."""

    fetch_max_wait_ms: int = 10
    #: awaited first on stop, while the consumer and the agents still run (FaustEngine.drain)
    before_stop: Callable[[], Awaitable[None]] | None = None

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    async def on_stop(self) -> None:
        if self.before_stop is not None:
            await self.before_stop()
        await super().on_stop()


class InFlight:
    """Records an agent holds, from receipt until their outputs are handed to the producer.

    Each is acked as soon as its outputs are produced, so the next commit covers it. Faust
    also acks an event when it closes the iterator of an agent that was cancelled or crashed,
    which would commit a record interrupted mid-way, unprocessed; so when an agent is
    interrupted, the records it had not finished get one more reference (``incref``) and
    that ack can never be the last: they stay uncommitted and the next owner replays them.
    """

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def _add(self, n: int) -> None:
        self.count += n
        if self.count:
            self.idle.clear()
        else:
            self.idle.set()

    @contextlib.contextmanager
    def holding(self, events: Sequence[EventT[Any]]) -> Iterator[Callable[[int], None]]:
        """``release(i)`` acks ``events[i]``; on any exception the rest are pinned."""
        done = [False] * len(events)
        self._add(len(events))

        def release(i: int) -> None:
            events[i].ack()
            done[i] = True
            self._add(-1)

        try:
            yield release
        except BaseException:
            for event, finished in zip(events, done, strict=True):
                if not finished:
                    event.message.incref()
            raise
        finally:
            self._add(-done.count(False))


def create_app(settings: Settings) -> FaustApp:
    datadir = Path(tempfile.gettempdir()) / f"workers-faust-{settings.consumer_group}"
    app = FaustApp(
        settings.consumer_group,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers],
        value_serializer="raw",
        key_serializer="raw",
        autodiscover=False,
        web_enabled=False,
        datadir=str(datadir),
        topic_disable_leader=True,
        topic_allow_declare=settings.create_topics,
        topic_partitions=settings.topic_partitions,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=settings.group_instance_id,
        broker_client_id=settings.client_id,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(1.0, settings.session_timeout_s / 3),
        broker_commit_interval=settings.commit_interval_s,
        producer_linger=settings.producer_linger_ms / 1000.0,
        producer_acks=-1,
        stream_wait_empty=False,
        stream_recovery_delay=0.0,
        broker_credentials=faust_credentials(settings),
    )
    app.fetch_max_wait_ms = settings.consumer_fetch[0]
    return app


def to_record(event: EventT[Any], prefix: str = "") -> Record:
    m = event.message  # Faust's timestamp is in seconds
    timestamp_ms = int(m.timestamp * 1000) if m.timestamp else None
    return received(
        m.topic,
        m.partition,
        m.offset,
        m.key,
        m.value,
        headers=m.headers,
        timestamp_ms=timestamp_ms,
        prefix=prefix,
    )


class QuietFaustWorker(faust.Worker):
    """faust.Worker without its terminal spinner. To spin on every log line, the spinner
    sets the root logger to DEBUG, so every debug call in aiokafka, Faust and redis builds
    a log record even though none is shown: 3 % of the worker's CPU (measured)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None


class FaustEngine:
    """Faust's agents as the engine: what the worker asks of it, and the agents."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.in_flight = InFlight()
        self._handler: RecordHandler | None = None
        self._settlement: Settlement | None = None
        self._stopping = False
        #: each output topic's max.message.bytes (Kafka's default until read)
        self.limits: dict[str, int] = {}
        # Strict isolation subscribes to each served tenant's topics by name: Faust 0.15's
        # aiokafka driver cannot subscribe by pattern (its subscribe says so: "XXX pattern
        # does not work"), and only allow-listed tenants would be served anyway.
        topics = self.settings.topics
        self.app.agent(self.app.topic(*topics(AUDIO_CHUNKS)), name="audio")(self._audio_agent)
        if settings.role == "core":
            self.app.agent(self.app.topic(*topics(LISTENING_EVENTS)), name="listening")(
                self._listening_agent
            )
            self.app.agent(self.app.topic(*topics(RECOMMEND_REQUESTS)), name="recommend")(
                self._audio_agent  # one record at a time, as audio
            )
        self.app.before_stop = self.drain
        self._started = False
        self.rebalances = RebalanceClock()
        self.app.on_partitions_revoked.connect(self._revoked)
        self.app.on_partitions_assigned.connect(self._assigned)

    async def _revoked(self, sender: Any, /, *_: Any, signal: Any, **__: Any) -> None:
        self.rebalances.revoked()

    async def _assigned(self, sender: Any, /, *_: Any, signal: Any, **__: Any) -> None:
        self.rebalances.assigned()

    def run(
        self,
        handler: RecordHandler,
        shell: mode.Service,
        *,
        log_level: str,
        logging_config: dict[str, Any] | None = None,
    ) -> None:
        self._handler = handler
        self._settlement = Settlement(send=self.send, handler=handler, pause=self._pause)
        self._started = True
        QuietFaustWorker(
            self.app,
            _TopicsService(self),  # Faust declares its input topics only
            shell,
            loglevel=log_level,
            logging_config=logging_config,
            redirect_stdouts=False,
            override_logging=True,
        ).execute_from_commandline()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def assignment(self) -> set[TopicPartitionLike]:
        return set(self.app.consumer.assignment()) if self._started else set()

    def highwater(self, tp: TopicPartitionLike) -> int | None:
        if not self._started or tp not in self.app.consumer.assignment():
            return None
        return self.app.consumer.highwater(tp)  # type: ignore[arg-type]

    def waiting(self, tp: TopicPartitionLike) -> int | None:
        return None  # the worker uses what it read

    def last_fetch_age_s(self) -> float | None:
        if not self._started:
            return None
        return self.app.consumer.last_fetch_age_s()  # type: ignore[attr-defined,no-any-return]

    async def send(self, topic: str, key: bytes, value: bytes, headers: Headers | None) -> Sent:
        # The transport producer, not Topic.send: that one adds a future, a channel hop and a
        # debug log record per message (measured).
        refused = too_large(key, value, headers, limit=self.max_message_bytes(topic))
        if refused is not None:  # the broker would refuse it: not sent
            return Sent(topic, key, value, headers, refused_now(refused))
        delivery: asyncio.Future[Any]
        try:
            delivery = asyncio.ensure_future(
                await self.app.producer.send(topic, key, value, None, None, headers)
            )
        except KafkaError as exc:  # refused before it left (unknown topic, closed, ...)
            delivery = refused_now(exc)
        return Sent(topic, key, value, headers, delivery)

    def max_message_bytes(self, topic: str) -> int:
        return self.limits.get(topic, DEFAULT_MAX_MESSAGE_BYTES)

    def blocked(self) -> dict[tuple[str, int], str]:
        return dict(self._settlement.blocked) if self._settlement is not None else {}

    def _pause(self, tp: tuple[str, int]) -> None:
        self.app.consumer.pause_partitions([TP(*tp)])

    async def _audio_agent(self, stream: StreamT[Any]) -> None:
        async for event in stream.events():
            await self._handle([event])

    async def _listening_agent(self, stream: StreamT[Any]) -> None:
        # Micro-batches with a bounded wait: under load a batch fills at once and costs one
        # pipelined Redis round trip; when idle, an event waits at most batch_wait_ms.
        within = self.settings.batch_wait_ms / 1000.0
        batches = stream.take_events(self.settings.batch_max, within=within)  # type: ignore[attr-defined]
        async for events in batches:
            await self._handle(events)

    async def _handle(self, events: Sequence[EventT[Any]]) -> None:
        """One topic's events: each acked once the broker acknowledged all its outputs, then
        nothing more is taken once a stop has begun."""
        assert self._handler is not None
        assert self._settlement is not None
        with self.in_flight.holding(events) as release:
            records = [to_record(event, self.settings.topic_prefix) for event in events]
            await self._handler.handle(records, self._settlement.add)
            tps = {(r.topic, r.partition) for r in records}
            settled: dict[tuple[str, int], int] = {}
            for _ in range(3):  # resends and replacements are acknowledged by the next flush
                await self.app.producer.flush()
                settled |= await self._settlement.committable(tps)
                if not self._settlement.waiting():
                    break
            for i, record in enumerate(records):  # acked in order; a blocked one stays pinned
                if record.offset < settled.get((record.topic, record.partition), -1):
                    release(i)
        if self._stopping:  # take nothing more: Faust cancels the agent when it stops
            await asyncio.Event().wait()

    async def drain(self) -> None:
        """On stop, before Faust pauses the consumer and cancels the agents: finish the
        records in hand and take no more, so the last commit covers all of them and a
        graceful stop neither loses nor repeats anything (bounded by drain_timeout_s)."""
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.in_flight.idle.wait(), self.settings.drain_timeout_s)
        if self.in_flight.count:
            log.warning(
                "stopping with %d records unfinished: they stay uncommitted and are replayed",
                self.in_flight.count,
            )


class _TopicsService(mode.Service):
    """Creates every missing topic (Faust declares its input topics only) and reads the
    output topics' size limits."""

    def __init__(self, engine: FaustEngine, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine

    async def on_start(self) -> None:
        self.engine.limits = await prepare_topics(self.engine.settings)
