"""The worker: wires the store, the pipeline and the metrics once, and is the
engine's record handler (records in, outputs to the producer, counted).

It is handed its engine (``engine.py``); it never builds one and never reaches into it
beyond the ``Engine`` protocol. ``main.py`` runs it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from workers.core.errors import Reason
from workers.core.events import ON_STRENGTH, forecaster
from workers.core.listening_state import ModelsAfter
from workers.core.models.accounts import MIN_REFERENCE
from workers.core.models.protocol import ModelQuality
from workers.core.models.reference import warming
from workers.core.payloads import encode
from workers.core.records import (
    AUDIO_CHUNKS,
    DEADLETTER,
    LISTENING_EVENTS,
    Outcome,
    Record,
    trace_of,
    with_trace,
)
from workers.core.tagging import TagModel
from workers.pipeline.audio import AudioStep
from workers.pipeline.listening import ListeningStep
from workers.pipeline.process import RecordPipeline
from workers.pipeline.recommend import RecommendStep
from workers.pipeline.tagging import TaggerPipeline, TaggingStep
from workers.runtime.delivery import Sent
from workers.runtime.engine import Engine
from workers.runtime.metrics import Metrics
from workers.runtime.overload import OverloadPolicy
from workers.runtime.publishing import Message, replacements
from workers.runtime.security import redis_store
from workers.runtime.settings import VERSION, Settings
from workers.state import MemoryStore, RedisStore, StateStore
from workers.state.catalogue import Catalogue, MemoryCatalogue, RedisCatalogue

__all__ = ["Worker"]

log = logging.getLogger(__name__)


class Worker:
    """Everything one worker process runs besides its engine: store, pipeline,
    metrics, and the policy that reads them (overload, readiness)."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine,
        store: StateStore | None = None,
        catalogue: Catalogue | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.store: StateStore = store or redis_store(
            settings, wait_replicas=settings.redis_wait_replicas
        )
        self._positions: dict[tuple[str, int], int] = {}
        #: per partition, the Kafka timestamp of the record last processed (ms)
        self._times: dict[tuple[str, int], int] = {}
        self._progress_at: dict[tuple[str, int], float] = {}
        #: the tenants' store-kept models, as the latest event this worker saw left them
        self._models_seen: dict[str, ModelsAfter] = {}
        self._tenants = frozenset(settings.tenants)
        self.metrics = Metrics(
            registry,
            models=self.model_quality,
            lags=self.partition_lags,
            stalls=self.partition_stalls,
            blocked=engine.blocked,
            rebalances=lambda: (engine.rebalances.count, engine.rebalances.seconds),
            build={
                "version": VERSION,
                "role": settings.role,
                "engine": settings.engine,
                "group": settings.consumer_group,
            },
        )
        # computed at scrape time, so they are never stale after a rebalance
        self.metrics.assigned_partitions.set_function(lambda: len(self.engine.assignment()))
        self.metrics.ready.set_function(lambda: float(self.is_ready()))
        self.catalogue: Catalogue = catalogue or _catalogue_for(self.store, settings)
        self.pipeline: RecordPipeline | TaggerPipeline = self._pipeline(settings)
        self.warmed = False
        tagger = settings.role == "tagger"
        self.overload = OverloadPolicy(
            enter_s=settings.tagger_overload_lag_enter_s
            if tagger
            else settings.overload_lag_enter_s,
            leave_s=settings.tagger_overload_lag_leave_s
            if tagger
            else settings.overload_lag_leave_s,
        )

    def _pipeline(self, settings: Settings) -> RecordPipeline | TaggerPipeline:
        """The role's steps: the core's three lanes, or the tagger's one."""
        on_retry = lambda operation: self.metrics.state_errors.labels(operation).inc()  # noqa: E731
        if settings.role == "tagger":
            model = TagModel.load(settings.tagger_model, weights_dir=settings.tagger_weights_dir)
            return TaggerPipeline(
                TaggingStep(
                    tenants=settings.tenants,
                    store=self.store,
                    model=model,
                    every=settings.tagger_every,
                    degraded_every=settings.tagger_degraded_every,
                ),
                on_retry=on_retry,
            )
        return RecordPipeline(
            audio=AudioStep(
                tenants=settings.tenants,
                store=self.store,
                model_rate=settings.model_sample_rate,
                alarm_rate=settings.alarm_rate_audio,
            ),
            listening=ListeningStep(
                tenants=settings.tenants,
                store=self.store,
                window_s=settings.popularity_window_s,
                skew_ms=settings.clock_skew_s * 1000,
            ),
            recommend=RecommendStep(
                tenants=settings.tenants,
                store=self.store,
                catalogue=self.catalogue,
                exact_limit=settings.similarity_exact_limit,
                max_items=settings.similarity_max_items,
                memory_bytes=settings.similarity_memory_mb << 20,
                rate_per_tenant=settings.recommend_rate_per_tenant,
            ),
            store=self.store,
            on_retry=on_retry,
        )

    def warm_up(self) -> None:
        """Touch every code path once (schemas, FFT, resampler) before reporting ready."""
        from workers.core.schemas import SCHEMAS

        started = time.perf_counter()
        _ = SCHEMAS.validators
        self.pipeline.warm_up()
        self.warmed = True
        log.info("warm-up done in %.2f s", time.perf_counter() - started)

    def is_ready(self) -> bool:
        """Consuming: warmed up, not stopping, partitions assigned, and the broker answering
        fetches (a cut link leaves partitions assigned while nothing flows)."""
        if not self.warmed or self.engine.stopping or not self.engine.assignment():
            return False
        age = self.engine.last_fetch_age_s()
        return age is not None and age < self.settings.ready_fetch_stale_s

    def partition_lags(self) -> list[tuple[str, int, int]]:
        """(topic, partition, lag) for each assigned partition this worker has read from."""
        lags = []
        for tp in self.engine.assignment():
            position = self._positions.get((tp.topic, tp.partition))
            highwater = self.engine.highwater(tp)
            if position is not None and highwater is not None:
                lags.append((tp.topic, tp.partition, max(0, int(highwater) - position - 1)))
        return lags

    def waiting_partitions(self) -> dict[str, list[int]]:
        """Per tenant, the partitions of ``listening.events`` this worker owns with records
        waiting (every served tenant's records may be in a shared topic's partitions)."""
        behind = {(topic, partition) for topic, partition, lag in self.partition_lags() if lag}
        out: dict[str, list[int]] = {}
        for tp in self.engine.assignment():
            if self.settings.topic_kind(tp.topic) != LISTENING_EVENTS:
                continue
            waiting = self.engine.waiting(tp)
            if not (waiting or (tp.topic, tp.partition) in behind):
                continue
            owner = self.settings.topic_owner(tp.topic)
            for tenant in (owner,) if owner is not None else self._tenants:
                out.setdefault(tenant, []).append(tp.partition)
        return out

    async def report_event_time(self) -> None:
        """Tell each tenant's event-time clock which of its partitions this worker is
        still reading (they hold its low watermark back, however slowly they drain)."""
        if self.settings.role != "core":
            return
        now_ms = int(time.time() * 1000)
        for tenant, partitions in self.waiting_partitions().items():
            try:
                await self.store.report_waiting(tenant, sorted(partitions), now_ms=now_ms)
            except Exception as exc:  # the next report, a second later, says it again
                log.warning("event time of %s not reported (%s)", tenant, exc)

    def model_quality(self) -> list[tuple[str, str, ModelQuality]]:
        """(tenant, model, quality) of the tenants' listening models, for the metrics."""
        out = []
        for tenant, models in self._models_seen.items():
            out.append(
                (
                    tenant,
                    "listening-anomaly",
                    ModelQuality(
                        inputs=models.inputs,
                        drifts=0,
                        threshold=ON_STRENGTH,
                        warming_up=warming(models.listener.ranks, MIN_REFERENCE),
                    ),
                )
            )
            out.append((tenant, "popularity", forecaster(models.forecaster).quality()))
        return out

    def partition_stalls(self) -> list[tuple[str, int, float]]:
        """(topic, partition, seconds) since a partition with records waiting last moved."""
        now = time.monotonic()
        return [
            (topic, partition, now - self._progress_at.get((topic, partition), now))
            for topic, partition, lag in self.partition_lags()
            if lag > 0
        ]

    async def handle(
        self, records: Sequence[Record], done: Callable[[Record, list[Sent]], None]
    ) -> None:
        """The engine's handler: outcomes as the pipeline gives them, each published, then
        ``done(record, sent)`` (in input order within each topic)."""
        m = self.metrics
        for kind, count in Counter(r.kind for r in records).items():
            m.child(m.records_in, kind).inc(count)
            m.child(m.batch_records, kind).observe(count)
        async for outcome in self.pipeline.run(records, degraded=self.overload.degraded):
            done(outcome.record, await self._publish(outcome))

    def undelivered(self, record: Record, refused: list[Sent]) -> list[Message] | None:
        """Outputs of ``record`` the broker refused for good: dead letters that fit instead."""
        deadletter_topic = self.settings.topic(DEADLETTER, record.owner)
        for sent in refused:
            log.warning(
                "output of %s[%d]@%d to %s refused: %r",
                record.topic,
                record.partition,
                record.offset,
                sent.topic,
                sent.delivery.exception(),
                extra=record.place(),
            )
            self.metrics.outputs_refused.labels(self.settings.topic_kind(sent.topic)).inc()
        instead = replacements(
            record,
            refused,
            limit=self.engine.max_message_bytes(deadletter_topic),
            deadletter_topic=deadletter_topic,
        )
        if instead and any(not sent.topic.endswith(DEADLETTER) for sent in refused):
            self.metrics.deadletters.labels(record.kind, Reason.OUTPUT_REJECTED.value).inc()
        return instead

    async def _publish(self, outcome: Outcome) -> list[Sent]:
        record, m = outcome.record, self.metrics
        self._positions[(record.topic, record.partition)] = record.offset
        self._times[(record.topic, record.partition)] = record.time_ms
        self._progress_at[(record.topic, record.partition)] = time.monotonic()
        latency = time.perf_counter() - record.received
        latency_ms = round(latency * 1000.0, 3)
        owner = record.owner
        sent: list[Sent] = []
        trace = trace_of(record)  # the input's trace context, for each of its outputs
        for output in outcome.outputs:
            # strict isolation: outputs (dead letters too) go to the owner's own topics
            topic = self.settings.topic(output.topic, owner)
            value = (
                output.value
                if isinstance(output.value, bytes)
                else encode(output.value, latency_ms=latency_ms)
            )
            # the engines commit the input once the broker acknowledged every output
            headers = with_trace(output.headers, trace)
            sent.append(await self.engine.send(topic, output.key.encode(), value, headers or None))
            m.child(m.records_out, output.topic).inc()
        if outcome.on_delivered is not None:
            _when_delivered(sent, outcome.on_delivered)
        topic_in = record.kind  # metrics label the logical topic: bounded cardinality
        done = "ok"
        if outcome.rejected is not None:
            done = "deadletter"
            m.child(m.deadletters, topic_in, outcome.rejected.reason.value).inc()
        elif outcome.ignored is not None:  # the tagger leaves it to the core worker
            done = "ignored"
        m.child(m.records_processed, topic_in, done).inc()
        tenant = outcome.tenant if outcome.tenant in self._tenants else "other"  # allow-listed
        m.child(m.tenant_records, tenant, topic_in, done).inc()
        if outcome.anomalies:
            kind = "audio" if topic_in == AUDIO_CHUNKS else "listening"
            m.child(m.anomalies, kind).inc(outcome.anomalies)
        for stage, seconds in outcome.stages.items():
            m.child(m.stage_seconds, topic_in, stage).observe(seconds)
        m.child(m.stage_seconds, topic_in, "publish").observe(
            time.perf_counter() - record.received - latency
        )
        m.child(m.latency_seconds, topic_in).observe(latency)
        if outcome.models is not None and outcome.tenant in self._tenants:
            self._models_seen[outcome.tenant] = outcome.models
        if outcome.late:
            m.child(m.late_events, topic_in).inc()
        if outcome.early:
            m.child(m.early_events, topic_in).inc()
        if outcome.catalogue_refused and outcome.tenant in self._tenants:
            m.child(m.catalogue_refused, outcome.tenant).inc()
        if outcome.tenant in self._tenants:  # bounded: only allow-listed tenants get a series
            m.child(m.tenant_latency_seconds, outcome.tenant, topic_in).observe(latency)
        if self.overload.degraded:
            m.child(m.degraded_records, topic_in).inc()
        if record.timestamp_ms is not None:
            m.child(m.record_age, topic_in).observe(
                max(0.0, record.received_wall - record.timestamp_ms / 1000.0)
            )
        if latency_ms > self.settings.budget_ms:
            m.child(m.over_budget, topic_in).inc()
        return sent

    def behind_s(self) -> float:
        """How far behind its input the worker is: over the partitions with records
        waiting, the age of the record last processed (0 when it keeps up)."""
        now_ms = time.time() * 1000
        ages = [
            now_ms - self._times[(topic, partition)]
            for topic, partition, lag in self.partition_lags()
            if lag > 0 and (topic, partition) in self._times
        ]
        return max(0.0, max(ages, default=0.0) / 1000)

    async def watch_overload(self) -> None:
        behind = self.behind_s()
        was = self.overload.degraded
        degraded = self.overload.update(behind)
        if degraded != was:
            log.warning(
                "overload policy %s (%.1f s behind the input)",
                "engaged" if degraded else "released",
                behind,
            )
        self.metrics.degraded.set(int(degraded))
        self.metrics.behind.set(round(behind, 3))

    async def shutdown(self) -> None:
        """After the engine stopped: close the store (the models live in it)."""
        await self.store.close()


def _when_delivered(sent: list[Sent], callback: Callable[[bool], None]) -> None:
    """``callback(all acknowledged)`` once the broker has answered for every output."""
    waiting = len(sent)
    failed = False

    def answered(delivery: asyncio.Future[Any]) -> None:
        nonlocal waiting, failed
        waiting -= 1
        failed = failed or delivery.cancelled() or delivery.exception() is not None
        if waiting == 0:
            callback(not failed)

    if not sent:
        callback(True)
    for item in sent:
        item.delivery.add_done_callback(answered)


def _catalogue_for(store: StateStore, settings: Settings) -> Catalogue:
    """The catalogue beside the store: the same Redis connections, or the same memory."""
    if isinstance(store, RedisStore):
        return RedisCatalogue(
            store.client, limits=settings.state_limits(), model=settings.tagger_model
        )
    if isinstance(store, MemoryStore):
        return MemoryCatalogue(store, model=settings.tagger_model)
    raise TypeError(f"no catalogue for a {type(store).__name__}")
