"""The shell: records from an engine to the core, outputs to the producer, counted. No
logic of its own. Engines: ``workers/engine.py`` (direct) and ``workers/faust_engine.py``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import mode
import orjson
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from workers.core.errors import Reason, Rejected
from workers.core.records import (
    AUDIO_CHUNKS,
    INPUT_TOPICS,
    LISTENING_EVENTS,
    OUTPUT_TOPICS,
    Outcome,
    Record,
    dead_letter,
    tenant_topic,
)
from workers.pipeline.steps import AudioProcessor, ListeningProcessor, model_factories
from workers.runtime.admin import create_topics
from workers.runtime.direct import DirectEngine
from workers.runtime.faust_engine import FaustEngine, QuietWorker
from workers.runtime.http import HttpServer, build_http_app
from workers.runtime.metrics import Metrics
from workers.runtime.overload import OverloadPolicy
from workers.runtime.security import kafka_auth, redis_options
from workers.runtime.settings import Settings
from workers.state import RedisStore, StateStore
from workers.state.keyring import Keyring
from workers.state.model_cache import ModelRegistry

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRY_FIRST_S = 0.05
_RETRY_MAX_S = 2.0


async def with_retry(
    operation: str,
    call: Callable[[], Awaitable[T]],
    metrics: Metrics,
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> T:
    """Retry on state-store failures with capped backoff: the worker pauses, it never drops."""
    delay = _RETRY_FIRST_S
    while True:
        try:
            return await call()
        except (RedisError, OSError) as exc:
            metrics.state_errors.labels(operation).inc()
            if should_stop():
                raise
            log.warning("state store %s failed (%s); retrying in %.2f s", operation, exc, delay)
            await asyncio.sleep(delay)
            delay = min(_RETRY_MAX_S, delay * 2)


class Worker:
    """Everything one worker process runs: engine, store, models, metrics, HTTP."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: StateStore | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.store: StateStore = store or RedisStore.from_url(
            settings.redis_url.get_secret_value(),
            window_s=settings.popularity_window_s,
            **redis_options(settings),
        )
        self.models = ModelRegistry(
            self.store,
            model_factories(
                alarm_rate_listening=settings.alarm_rate_listening,
                alarm_rate_audio=settings.alarm_rate_audio,
            ),
            max_models=settings.max_live_models,
            keyring=(
                Keyring.parse(settings.snapshot_keys.get_secret_value())
                if settings.snapshot_keys is not None
                else None
            ),
        )
        self._positions: dict[tuple[str, int], int] = {}
        self._tenants = frozenset(settings.tenants)
        self.metrics = Metrics(registry, live_models=self.models.live, lags=self.partition_lags)
        # computed at scrape time, so they are never stale after a rebalance
        self.metrics.assigned_partitions.set_function(self.assigned_partitions)
        self.metrics.ready.set_function(lambda: float(self.is_ready()))
        self.metrics.models_live.set_function(lambda: len(self.models))
        self.metrics.model_restores.set_function(lambda: self.models.restored)
        self.audio = AudioProcessor(
            tenants=settings.tenants,
            store=self.store,
            models=self.models,
            model_rate=settings.model_sample_rate,
        )
        self.listening = ListeningProcessor(
            tenants=settings.tenants,
            store=self.store,
            models=self.models,
            window_s=settings.popularity_window_s,
        )
        self._stopping = False
        #: set by the engine when a stop begins: it finishes the records in hand, takes no more
        self.draining = False
        self.warmed = False
        self.overload = OverloadPolicy(
            enter=settings.overload_lag_enter, leave=settings.overload_lag_leave
        )
        self.engine = DirectEngine(self) if settings.engine == "direct" else FaustEngine(self)

    def warm_up(self) -> None:
        """Touch every code path once (schemas, FFT, resampler, models) before reporting ready."""
        from workers.core.schemas import SCHEMAS

        started = time.perf_counter()
        _ = SCHEMAS.validators
        self.audio.warm_up()
        for factory in model_factories().values():
            model = factory()
            if hasattr(model, "step"):
                model.step({"x": 0.5})
        self.warmed = True
        log.info("warm-up done in %.2f s", time.perf_counter() - started)

    def assigned_partitions(self) -> int:
        try:
            return len(self.engine.assignment())
        except Exception:
            return 0

    def fetch_age_s(self) -> float | None:
        try:
            return self.engine.last_fetch_age_s()
        except Exception:  # before the consumer exists
            return None

    def is_ready(self) -> bool:
        """Consuming: warmed up, not stopping, partitions assigned, and the broker answering
        fetches (a cut link leaves partitions assigned while nothing flows)."""
        if not self.warmed or self.draining or self._stopping or not self.assigned_partitions():
            return False
        age = self.fetch_age_s()
        return age is not None and age < self.settings.ready_fetch_stale_s

    def partition_lags(self) -> list[tuple[str, int, int]]:
        """(topic, partition, lag) for each assigned partition this worker has read from."""
        try:
            assigned = self.engine.assignment()
        except Exception:
            return []
        lags = []
        for tp in assigned:
            position = self._positions.get((tp.topic, tp.partition))
            if position is None:
                continue
            try:
                highwater = self.engine.highwater(tp)
            except Exception:
                continue
            if highwater is not None:
                lags.append((tp.topic, tp.partition, max(0, int(highwater) - position - 1)))
        return lags

    async def handle(self, records: Sequence[Record], done: Callable[[Record], None]) -> None:
        """Records from either engine: listening events in one pipelined call, then audio
        chunks one by one; ``done(record)`` once its outputs are with the producer (in input
        order within each topic)."""
        listening = [r for r in records if r.kind == LISTENING_EVENTS]
        if listening:
            self.metrics.records_in.labels(LISTENING_EVENTS).inc(len(listening))
            for outcome in await self._listen_batch(listening):
                await self._publish(outcome)
                done(outcome.record)
        for record in records:
            if record.kind == AUDIO_CHUNKS:
                self.metrics.records_in.labels(AUDIO_CHUNKS).inc()
                await self._publish(await self._guarded(record, self.audio.process))
                done(record)

    async def _listen_batch(self, records: list[Record]) -> list[Outcome]:
        try:
            return await with_retry(
                LISTENING_EVENTS,
                lambda: self.listening.process_batch(records),
                self.metrics,
                should_stop=lambda: self._stopping,
            )
        except (RedisError, OSError):
            raise
        except Exception:  # isolate the record that broke the batch: one at a time
            log.exception("batch of %d failed; processing its records one by one", len(records))
            return [await self._guarded(record, self._listen_one) for record in records]

    async def _listen_one(self, record: Record) -> Outcome:
        return (await self.listening.process_batch([record]))[0]

    async def _guarded(
        self, record: Record, process: Callable[[Record], Awaitable[Outcome]]
    ) -> Outcome:
        """Run a processor; infrastructure errors are retried, bugs become a dead letter."""
        try:
            return await with_retry(
                record.kind,
                lambda: process(record),
                self.metrics,
                should_stop=lambda: self._stopping,
            )
        except (RedisError, OSError):
            raise
        except Exception as exc:  # a bug must not kill the agent or lose the record
            log.exception(
                "internal error on %s[%d]@%d", record.topic, record.partition, record.offset
            )
            rejected = Rejected(Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            return Outcome(record, outputs=[dead_letter(record, rejected)], rejected=rejected)

    async def _publish(self, outcome: Outcome) -> None:
        record, m = outcome.record, self.metrics
        self._positions[(record.topic, record.partition)] = record.offset
        latency = time.perf_counter() - record.received
        latency_ms = round(latency * 1000.0, 3)
        owner = record.owner
        for output in outcome.outputs:
            # strict isolation: outputs (dead letters too) go to the owner's own topics
            topic = output.topic if owner is None else tenant_topic(owner, output.topic)
            if isinstance(output.value, bytes):
                value = output.value
            else:
                value = orjson.dumps({**output.value, "latency_ms": latency_ms})
            # Straight to the producer; both engines flush it before committing offsets.
            await self.engine.send(topic, output.key.encode(), value, list(output.headers) or None)
            m.records_out.labels(output.topic).inc()
        topic_in = record.kind  # metrics label the logical topic: bounded cardinality
        if outcome.rejected is not None:
            m.records_processed.labels(topic_in, "deadletter").inc()
            m.deadletters.labels(topic_in, outcome.rejected.reason.value).inc()
        else:
            m.records_processed.labels(topic_in, "ok").inc()
        if outcome.anomalies:
            kind = "audio" if topic_in == AUDIO_CHUNKS else "listening"
            m.anomalies.labels(kind).inc(outcome.anomalies)
        for stage, seconds in outcome.stages.items():
            m.stage_seconds.labels(topic_in, stage).observe(seconds)
        m.stage_seconds.labels(topic_in, "publish").observe(
            time.perf_counter() - record.received - latency
        )
        m.latency_seconds.labels(topic_in).observe(latency)
        if outcome.tenant in self._tenants:  # bounded: only allow-listed tenants get a series
            m.tenant_latency_seconds.labels(outcome.tenant, topic_in).observe(latency)
        if self.overload.degraded:
            m.degraded_records.labels(topic_in).inc()
        if record.timestamp_ms is not None:
            m.record_age.labels(topic_in).observe(
                max(0.0, record.received_wall - record.timestamp_ms / 1000.0)
            )
        if latency_ms > self.settings.budget_ms:
            m.over_budget.labels(topic_in).inc()

    async def watch_overload(self) -> None:
        lag = sum(lag for _, _, lag in self.partition_lags())
        degraded = self.overload.update(lag)
        if degraded != self.audio.degraded:
            log.warning(
                "overload policy %s (consumer lag %d records)",
                "engaged" if degraded else "released",
                lag,
            )
        self.audio.degraded = self.listening.degraded = degraded
        self.metrics.degraded.set(int(degraded))

    async def checkpoint(self) -> None:
        try:
            saved = await self.models.checkpoint()
        except (RedisError, OSError) as exc:
            self.metrics.state_errors.labels("checkpoint").inc()
            log.warning("model checkpoint failed (%s); will retry next interval", exc)
            return
        self.metrics.model_checkpoints.inc(saved)

    async def shutdown(self) -> None:
        """After the app stopped: last checkpoint, then close the store."""
        self._stopping = True
        await self.checkpoint()
        await self.store.close()


class ShellService(mode.Service):
    """HTTP endpoints and the worker's timers; stopped after the engine, it then writes the
    last checkpoint and closes the store."""

    def __init__(self, worker: Worker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.worker = worker
        self.http = HttpServer(
            build_http_app(worker.metrics.registry, is_ready=worker.is_ready),
            host="0.0.0.0",
            port=worker.settings.metrics_port,
        )

    async def on_start(self) -> None:
        settings = self.worker.settings
        if settings.create_topics and settings.engine == "faust":  # Faust declares inputs only
            await create_topics(
                settings.kafka_bootstrap,
                settings.topics(*INPUT_TOPICS, *OUTPUT_TOPICS),
                partitions=settings.topic_partitions,
                auth=kafka_auth(settings),
            )
        await self.http.start()
        self.add_future(self._every(settings.checkpoint_interval_s, self.worker.checkpoint))
        self.add_future(self._every(1.0, self.worker.watch_overload))

    async def _every(self, seconds: float, action: Callable[[], Awaitable[None]]) -> None:
        async for _ in self.itertimer(seconds, name=action.__name__):
            await action()

    async def on_stop(self) -> None:
        await self.worker.shutdown()
        await self.http.stop()


def run(settings: Settings) -> None:
    """``python -m workers run``: the production worker, until SIGTERM/SIGINT."""
    worker = Worker(settings)
    worker.warm_up()
    options: dict[str, Any] = {
        "loglevel": settings.log_level,
        "redirect_stdouts": False,
        "override_logging": True,
    }
    # The engine drains and commits before the shell checkpoints and closes the store.
    if isinstance(worker.engine, FaustEngine):
        QuietWorker(worker.engine.app, ShellService(worker), **options).execute_from_commandline()
    else:
        # mode.Worker stops its services in reverse order: the engine first here
        mode.Worker(ShellService(worker), worker.engine, **options).execute_from_commandline()
