"""The listening step: a batch of event records in, per record its anomaly score and
popularity outlook (or a dead letter) out. The state of the whole batch, and the tenants'
models judging and learning each event, are one call to the store (one Redis round trip);
the rest is ``core`` (parse, explain, forecast)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace

from workers.core.errors import Rejected
from workers.core.events import judge_event
from workers.core.eventtime import now_ms as clock_ms
from workers.core.listening import MAX_SKEW_MS, ListeningEvent, parse_event, to_update
from workers.core.records import (
    Outcome,
    Record,
    Stopwatch,
    check_readable,
    check_tenant,
    dead_letter,
)
from workers.state.protocol import Refused, StateStore

__all__ = ["ListeningStep"]

log = logging.getLogger(__name__)


class ListeningStep:
    def __init__(
        self,
        *,
        tenants: Iterable[str],
        store: StateStore,
        window_s: int,
        skew_ms: int = MAX_SKEW_MS,
    ) -> None:
        self._tenants = frozenset(tenants)
        self._store = store
        self._window_s = window_s
        self._skew_ms = skew_ms
        #: verdicts published whose note to the store is still on its way
        self._noting: dict[tuple[str, str], str] = {}
        #: verdicts acknowledged by the broker, to be noted
        self._to_note: dict[tuple[str, str], str] = {}
        self._notes: set[asyncio.Task[None]] = set()

    def _parse(self, record: Record, outcome: Outcome, now_ms: int) -> ListeningEvent | None:
        try:
            check_readable(record)
            event = parse_event(record.value, key=record.key, now_ms=now_ms)
            outcome.tenant = event.tenant
            check_tenant(event.tenant, self._tenants, record)
        except Rejected as rejected:
            self._reject(outcome, rejected)
            return None
        return event

    def _delivered(self, listener: tuple[str, str], marker: str, acknowledged: bool) -> None:
        """A verdict's output was answered for by the broker: acknowledged, it is remembered
        as published (in the background, batched); refused, it is forgotten, so the
        listener's next event publishes it again. A crash before the note is stored leaves
        the verdict unremembered: a re-read of the record publishes it again."""
        if not acknowledged:
            if self._noting.get(listener) == marker:
                del self._noting[listener]
            return
        self._to_note[listener] = marker
        if len(self._to_note) == 1:  # the first of this loop turn: one note for them all
            asyncio.get_running_loop().call_soon(self._note_accounts)

    def _note_accounts(self) -> None:
        """Have the store remember the verdicts acknowledged, off the records' path: until
        it has, this step overlays them itself (``_noting``). Best effort: a note that fails
        only means a listener's verdict is published again."""
        published, self._to_note = self._to_note, {}
        task = asyncio.create_task(self._note(published))
        self._notes.add(task)
        task.add_done_callback(self._notes.discard)

    async def noted(self) -> None:
        """Wait until the notes on their way have reached the store (or failed)."""
        if self._notes:
            await asyncio.gather(*self._notes)

    async def _note(self, published: dict[tuple[str, str], str]) -> None:
        try:
            await self._store.note_accounts([(t, u, m) for (t, u), m in published.items()])
        except Exception as exc:  # nothing depends on the note but a repeated verdict
            log.warning("account verdicts not noted (%s): they will be published again", exc)
        finally:
            for key, marker in published.items():
                if self._noting.get(key) == marker:
                    del self._noting[key]

    @staticmethod
    def _reject(outcome: Outcome, rejected: Rejected) -> None:
        outcome.rejected = rejected
        outcome.outputs = [dead_letter(outcome.record, rejected, tenant=outcome.tenant)]

    async def process_batch(
        self, records: Sequence[Record], *, degraded: bool = False
    ) -> list[Outcome]:
        """Process records in order. The tenants' models learn every event whatever the
        worker's load (``degraded`` changes nothing here): a backlog must not change what
        they learn."""
        now_ms = clock_ms()
        outcomes = [Outcome(record) for record in records]
        watches = [Stopwatch() for _ in records]
        parsed: list[tuple[int, ListeningEvent]] = []
        for i, (record, outcome) in enumerate(zip(records, outcomes, strict=True)):
            event = self._parse(record, outcome, now_ms)
            watches[i].lap("validate")
            if event is not None:
                parsed.append((i, event))
        batch_watch = Stopwatch()
        states = await self._store.apply_listening(
            [
                to_update(
                    event,
                    window_s=self._window_s,
                    position=records[i].position,
                    record_time_ms=records[i].time_ms,
                    now_ms=now_ms,
                    skew_ms=self._skew_ms,
                    read_time_ms=int(records[i].received_wall * 1000),
                )
                for i, event in parsed
            ],
            now_ms=now_ms,
        )
        batch_watch.lap("state")
        state_share = batch_watch.stages["state"] / max(1, len(parsed))
        for (i, event), state in zip(parsed, states, strict=True):
            outcome, watch = outcomes[i], watches[i]
            watch.stages["state"] = state_share
            watch.restart()
            if isinstance(state, Refused):
                self._reject(outcome, Rejected(state.reason, state.detail))
                continue
            outcome.late, outcome.early, outcome.models = state.late, state.early, state.models
            listener = (event.tenant, event.user_id)
            marked = self._noting.get(listener)
            if marked is not None and state.models and state.models.account:
                # a verdict published earlier (in this batch too) may not be stored yet
                account = replace(state.models.account, published=marked)
                after = replace(state, models=replace(state.models, account=account))
            else:
                after = state
            judged = judge_event(event, after, window_s=self._window_s)
            watch.lap("model")
            outcome.outputs.extend(judged.outputs)
            outcome.anomalies = int(judged.anomalous)
            if judged.account_marker is not None:
                self._noting[listener] = judged.account_marker
                outcome.on_delivered = functools.partial(
                    self._delivered, listener, judged.account_marker
                )
        for outcome, watch in zip(outcomes, watches, strict=True):
            outcome.stages = watch.stages
        return outcomes
