"""Records in, outcomes out: both steps, in order, with the retry policy.

A batch's listening events go to the listening step together (one store round trip), then
its audio chunks one by one. Outcomes are yielded as soon as they are known, so the caller
publishes and acknowledges each record without waiting for the rest of its batch.

Failures: ``StateUnavailable`` (the store cannot answer now) is retried with capped
backoff, for as long as it lasts: nothing is dropped, the partition waits (and
``workers_partition_stalled_seconds`` says so). A change the store refuses for good comes
back as that record's dead letter (``state-error``, ``quota-exceeded``, …). Any other
exception is a fault of the record being processed: that record alone becomes a dead
letter (``internal-error``) and the rest of its batch flows on.

Every dead letter's source position is noted in the store before it is published; a record
that becomes a dead letter again (it was read again after a crash) gets a dead letter
marked ``replay``, so a consumer keeping one per source position can drop it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from workers.core.errors import Reason, Rejected
from workers.core.records import (
    AUDIO_CHUNKS,
    LISTENING_EVENTS,
    RECOMMEND_REQUESTS,
    Outcome,
    Record,
    as_replayed,
    dead_letter,
)
from workers.pipeline.audio import AudioStep
from workers.pipeline.listening import ListeningStep
from workers.pipeline.recommend import RecommendStep
from workers.state.protocol import StateStore, StateUnavailable

__all__ = ["RecordPipeline", "with_retry"]

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_FIRST_S = 0.05
RETRY_MAX_S = 2.0


async def with_retry(
    operation: str,
    call: Callable[[], Awaitable[T]],
    *,
    on_retry: Callable[[str], None] = lambda _: None,
) -> T:
    """``call()``, again after each ``StateUnavailable`` (backoff from 50 ms to 2 s)."""
    delay = RETRY_FIRST_S
    while True:
        try:
            return await call()
        except StateUnavailable as exc:
            on_retry(operation)
            log.warning("state store %s failed (%s); retrying in %.2f s", operation, exc, delay)
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX_S, delay * 2)


class RecordPipeline:
    def __init__(
        self,
        *,
        audio: AudioStep,
        listening: ListeningStep,
        store: StateStore,
        recommend: RecommendStep,
        on_retry: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.audio = audio
        self.listening = listening
        self.recommend = recommend
        self._store = store
        self._on_retry = on_retry

    def warm_up(self) -> None:
        self.audio.warm_up()

    async def run(self, records: Sequence[Record], *, degraded: bool) -> AsyncIterator[Outcome]:
        """Outcomes of ``records``: listening events (in order), then audio chunks and
        recommendation requests (in order)."""
        events = [r for r in records if r.kind == LISTENING_EVENTS]
        if events:
            for outcome in await self._noted(await self._listen(events, degraded=degraded)):
                yield outcome
        for record in records:
            if record.kind == AUDIO_CHUNKS:
                audio = await self._guarded(
                    record, lambda r: self.audio.process(r, degraded=degraded)
                )
                (noted,) = await self._noted([audio])
                yield noted
            elif record.kind == RECOMMEND_REQUESTS:
                answer = await self._guarded(record, self.recommend.process)
                (noted,) = await self._noted([answer])
                yield noted

    async def _noted(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Note the dead letters' source positions; mark those noted before as replays."""
        letters = [o for o in outcomes if o.rejected is not None]
        if not letters:
            return outcomes
        first = await with_retry(
            "deadletters",
            lambda: self._store.note_dead_letters(
                [(o.record.owner, o.record.position) for o in letters]
            ),
            on_retry=self._on_retry,
        )
        for outcome, new in zip(letters, first, strict=True):
            if not new:
                outcome.outputs = [as_replayed(output) for output in outcome.outputs]
        return outcomes

    async def _listen(self, records: list[Record], *, degraded: bool) -> list[Outcome]:
        try:
            return await with_retry(
                LISTENING_EVENTS,
                lambda: self.listening.process_batch(records, degraded=degraded),
                on_retry=self._on_retry,
            )
        except Exception:  # isolate the record that broke the batch: one at a time
            log.exception("batch of %d failed; processing its records one by one", len(records))
            return [
                await self._guarded(
                    record,
                    lambda r: self._listen_one(r, degraded=degraded),
                )
                for record in records
            ]

    async def _listen_one(self, record: Record, *, degraded: bool) -> Outcome:
        return (await self.listening.process_batch([record], degraded=degraded))[0]

    async def _guarded(
        self, record: Record, process: Callable[[Record], Awaitable[Outcome]]
    ) -> Outcome:
        """Run a step on one record: the store's absences are waited out, a fault of the
        record becomes its dead letter."""
        try:
            return await with_retry(record.kind, lambda: process(record), on_retry=self._on_retry)
        except Exception as exc:
            log.exception(
                "internal error on %s[%d]@%d", record.topic, record.partition, record.offset
            )
            rejected = Rejected(Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            return Outcome(record, outputs=[dead_letter(record, rejected)], rejected=rejected)
