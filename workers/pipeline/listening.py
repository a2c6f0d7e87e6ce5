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
from workers.core.listening_state import ListeningState
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

#: what a verdict is about: ("account", tenant, user_id) or ("track", tenant, track_id)
Subject = tuple[str, str, str]

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
        self._noting: dict[Subject, str] = {}
        #: verdicts acknowledged by the broker, to be noted
        self._to_note: dict[Subject, str] = {}
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

    def _delivered(self, notes: list[tuple[Subject, str]], acknowledged: bool) -> None:
        """A record's verdicts (a listener's, a track's) were answered for by the broker:
        acknowledged, they are remembered as published (in the background, batched);
        refused, they are forgotten, so the next event publishes them again. A crash before
        the note is stored leaves a verdict unremembered: a re-read publishes it again."""
        if not acknowledged:
            for subject, marker in notes:
                if self._noting.get(subject) == marker:
                    del self._noting[subject]
            return
        first = not self._to_note
        self._to_note.update(notes)
        if first:  # the first of this loop turn: one note for them all
            asyncio.get_running_loop().call_soon(self._note_verdicts)

    def _note_verdicts(self) -> None:
        """Have the store remember the verdicts acknowledged, off the records' path: until
        it has, this step overlays them itself (``_noting``). Best effort: a note that fails
        only means a verdict is published again."""
        if not self._to_note:  # already noted (``noted`` ran first)
            return
        published, self._to_note = self._to_note, {}
        task = asyncio.create_task(self._note(published))
        self._notes.add(task)
        task.add_done_callback(self._notes.discard)

    async def noted(self) -> None:
        """Wait until the verdicts acknowledged so far have reached the store (or failed)."""
        self._note_verdicts()
        if self._notes:
            await asyncio.gather(*self._notes)

    async def _note(self, published: dict[Subject, str]) -> None:
        try:
            await self._store.note_accounts(
                [(t, who, m) for (kind, t, who), m in published.items() if kind == "account"]
            )
            await self._store.note_tracks(
                [(t, what, m) for (kind, t, what), m in published.items() if kind == "track"]
            )
        except Exception as exc:  # nothing depends on the note but a repeated verdict
            log.warning("verdicts not noted (%s): they will be published again", exc)
        finally:
            for key, marker in published.items():
                if self._noting.get(key) == marker:
                    del self._noting[key]

    def _overlaid(self, state: ListeningState, listener: Subject, track: Subject) -> ListeningState:
        """The state with the verdicts this step published and has not yet seen stored (in
        this batch too) in place of the store's."""
        models = state.models
        if models is None:
            return state
        account = self._noting.get(listener)
        published = self._noting.get(track)
        if account is None and published is None:
            return state
        if account is not None:
            models = replace(models, account=replace(models.account, published=account))
        if published is not None:
            models = replace(models, track_published=published)
        return replace(state, models=models)

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
            listener: Subject = ("account", event.tenant, event.user_id)
            track: Subject = ("track", event.tenant, event.track_id)
            after = self._overlaid(state, listener, track)
            judged = judge_event(event, after, window_s=self._window_s)
            watch.lap("model")
            outcome.outputs.extend(judged.outputs)
            outcome.anomalies = int(judged.anomalous)
            notes = [
                (subject, marker)
                for subject, marker in (
                    (listener, judged.account_marker),
                    (track, judged.track_marker),
                )
                if marker is not None
            ]
            if notes:
                self._noting.update(notes)
                outcome.on_delivered = functools.partial(self._delivered, notes)
        for outcome, watch in zip(outcomes, watches, strict=True):
            outcome.stages = watch.stages
        return outcomes
