"""Lanes: each input topic's records processed on their own, beside the other topic's.

One consumer fetches both input topics; its records go to the lane of their topic, and each
lane processes its records in order, one batch at a time, as soon as it is free. So an
audio chunk never waits for a batch of listening events to finish, nor the reverse, and a
lane's batch is whatever arrived while it was busy: one record when traffic is light (no
wait for a batch to fill), up to ``batch_max`` under load (one Redis round trip for many
events). The wait a record can see before its batch starts is bounded by the batch ahead
of it in its own lane, never by a timer.

A lane whose backlog grows past ``high`` tells the engine to stop fetching its partitions
(``backlogged``) until it is back under ``batch_max``, so memory stays bounded and the
other lane keeps flowing.

>>> import asyncio
>>> from workers.core.records import Record
>>> async def demo() -> list[list[int]]:
...     seen: list[list[int]] = []
...     async def process(records: list[Record]) -> None:
...         seen.append([r.offset for r in records])
...         await asyncio.sleep(0.01)
...     lane = Lane("events", process, batch_max=3)
...     lane.start()
...     lane.put([Record('listening.events', 0, i, None, None) for i in range(5)])
...     await asyncio.sleep(0.05)
...     await lane.stop()
...     return seen
>>> asyncio.run(demo())
[[0, 1, 2], [3, 4]]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from workers.core.records import Record

__all__ = ["Lane", "Lanes"]

log = logging.getLogger(__name__)

Process = Callable[[list[Record]], Awaitable[None]]


@dataclass(eq=False)
class Lane:
    name: str
    process: Process
    batch_max: int
    #: records waiting, in arrival order (per partition: offset order)
    queue: deque[Record] = field(default_factory=deque)
    #: called with the exception when ``process`` fails: the engine stops
    on_error: Callable[[BaseException], Awaitable[None]] | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _busy: asyncio.Lock = field(default_factory=asyncio.Lock)
    _task: asyncio.Task[None] | None = None

    @property
    def high(self) -> int:
        """The backlog past which the lane's partitions stop being fetched."""
        return 2 * self.batch_max

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"lane-{self.name}")

    def put(self, records: Iterable[Record]) -> None:
        self.queue.extend(records)
        if self.queue:
            self._ready.set()

    def drop(self, gone: Callable[[Record], bool]) -> int:
        """Forget waiting records for which ``gone`` is true (not processed: never
        committed, so whoever reads their partition next processes them)."""
        kept = [r for r in self.queue if not gone(r)]
        dropped = len(self.queue) - len(kept)
        self.queue = deque(kept)
        if not self.queue:
            self._ready.clear()
        return dropped

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Once the batch in hand is done, no batch starts until the block ends."""
        async with self._busy:
            yield

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            async with self._busy:
                take = min(self.batch_max, len(self.queue))
                batch = [self.queue.popleft() for _ in range(take)]
                if not self.queue:
                    self._ready.clear()
                if not batch:
                    continue
                try:
                    await self.process(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a broken lane must not leave a live, idle process
                    log.exception("lane %s failed", self.name)
                    if self.on_error is not None:
                        await self.on_error(exc)
                    return


@dataclass
class Lanes:
    """The lanes of one engine, by input topic kind (``Record.kind``)."""

    lanes: dict[str, Lane]

    def start(self) -> None:
        for lane in self.lanes.values():
            lane.start()

    def put(self, records: Iterable[Record]) -> None:
        by_kind: dict[str, list[Record]] = {}
        for record in records:
            by_kind.setdefault(record.kind, []).append(record)
        for kind, batch in by_kind.items():
            self.lanes[kind].put(batch)

    def backlogged(self) -> set[str]:
        """Kinds whose lane is past its high mark (stop fetching them)."""
        return {kind for kind, lane in self.lanes.items() if len(lane.queue) > lane.high}

    def drained(self) -> set[str]:
        """Kinds whose lane is back under one batch (fetch them again)."""
        return {kind for kind, lane in self.lanes.items() if len(lane.queue) <= lane.batch_max}

    def drop(self, gone: Callable[[Record], bool]) -> int:
        return sum(lane.drop(gone) for lane in self.lanes.values())

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Every lane's batch in hand done, and no new one started, until the block ends."""
        async with contextlib.AsyncExitStack() as stack:
            for lane in self.lanes.values():
                await stack.enter_async_context(lane.held())
            yield

    async def stop(self) -> None:
        for lane in self.lanes.values():
            await lane.stop()
