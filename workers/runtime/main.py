"""``python -m workers run``: build the engine and the worker, start the shell, consume."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import mode

from workers.runtime.engine import Engine
from workers.runtime.http import HttpServer, build_http_app
from workers.runtime.logs import logging_config
from workers.runtime.preflight import StartRefused, check_redis, check_settings
from workers.runtime.settings import Settings
from workers.runtime.worker import Worker

__all__ = ["ShellService", "build_engine", "run"]

log = logging.getLogger(__name__)


class ShellService(mode.Service):
    """HTTP endpoints and the worker's timers; stopped after the engine, it then closes the
    store."""

    def __init__(self, worker: Worker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.worker = worker
        self.http = HttpServer(
            build_http_app(worker.metrics.registry, is_ready=worker.is_ready),
            host="0.0.0.0",
            port=worker.settings.metrics_port,
        )

    async def on_start(self) -> None:
        await self.http.start()
        self.add_future(self._every(1.0, "watch_overload"))
        self.add_future(self._every(1.0, "report_event_time"))

    async def _every(self, seconds: float, name: str) -> None:
        action: Callable[[], Awaitable[None]] = getattr(self.worker, name)
        async for _ in self.itertimer(seconds, name=name):
            await action()

    async def on_stop(self) -> None:
        await self.worker.shutdown()
        await self.http.stop()


def _as_tagger(settings: Settings) -> None:
    """A tagger yields the CPU to the core workers of its host and uses the BLAS threads it
    is given (one by default: scale by processes, as the core worker does)."""
    from threadpoolctl import threadpool_limits

    if settings.tagger_nice:
        os.nice(settings.tagger_nice)
    threadpool_limits(settings.tagger_threads)
    log.info("tagger: nice %d, %d BLAS thread(s)", settings.tagger_nice, settings.tagger_threads)


def build_engine(settings: Settings) -> Engine:
    """The engine ``WORKERS_ENGINE`` names (only the one chosen is imported)."""
    if settings.engine == "faust":
        try:
            from workers.runtime.faust_engine import FaustEngine
        except ImportError as missing:  # faust-streaming is the `faust` extra
            raise StartRefused(
                "WORKERS_ENGINE=faust needs the faust extra "
                f"(pip install 'music-stream-workers[faust]'): {missing}"
            ) from missing
        return FaustEngine(settings)
    if settings.engine == "direct":
        from workers.runtime.direct import DirectEngine

        return DirectEngine(settings)
    from workers.runtime.rdkafka_engine import RdkafkaEngine

    return RdkafkaEngine(settings)


def run(settings: Settings) -> None:
    """The production worker, until SIGTERM/SIGINT: the engine drains and commits before the
    shell closes the store. Settings that cannot serve, or a Redis that would lose state
    silently, stop it before it starts (``preflight.py``: ``StartRefused``)."""
    check_settings(settings)
    asyncio.run(check_redis(settings))
    if settings.role == "tagger":
        _as_tagger(settings)
    engine = build_engine(settings)
    worker = Worker(settings, engine=engine)
    worker.warm_up()
    engine.run(
        worker,
        ShellService(worker),
        log_level=settings.log_level,
        logging_config=logging_config(settings.log_format, settings.log_level),
    )
