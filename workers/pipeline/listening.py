"""The listening step: a batch of event records in, per record its anomaly score and
popularity outlook (or a dead letter) out. The state of the whole batch is one call to the
store (one Redis round trip); the rest is ``core`` (parse, judge)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from workers.core.errors import Reason, Rejected
from workers.core.events import judge_event
from workers.core.listening import ListeningEvent, parse_event, to_update
from workers.core.models.kinds import LISTENING_MODEL, POPULARITY_MODEL
from workers.core.records import Outcome, Record, Stopwatch, check_tenant, dead_letter, position
from workers.state.model_cache import ModelRegistry
from workers.state.protocol import StateStore

__all__ = ["ListeningStep"]


class ListeningStep:
    def __init__(
        self, *, tenants: Iterable[str], store: StateStore, models: ModelRegistry, window_s: int
    ) -> None:
        self._tenants = frozenset(tenants)
        self._store = store
        self._models = models
        self._window_s = window_s

    def _parse(self, record: Record, outcome: Outcome) -> ListeningEvent | None:
        try:
            event = parse_event(record.value, key=record.key)
            outcome.tenant = event.tenant
            check_tenant(event.tenant, self._tenants, record)
        except Rejected as rejected:
            outcome.rejected = rejected
            outcome.outputs.append(dead_letter(record, rejected, tenant=outcome.tenant))
            return None
        return event

    async def process_batch(
        self, records: Sequence[Record], *, degraded: bool = False
    ) -> list[Outcome]:
        """Process records in order; ``degraded`` (overload): score without learning."""
        outcomes = [Outcome(record) for record in records]
        watches = [Stopwatch() for _ in records]
        parsed: list[tuple[int, ListeningEvent]] = []
        for i, (record, outcome) in enumerate(zip(records, outcomes, strict=True)):
            event = self._parse(record, outcome)
            watches[i].lap("validate")
            if event is not None:
                parsed.append((i, event))
        batch_watch = Stopwatch()
        states = await self._store.apply_listening(
            [
                to_update(event, window_s=self._window_s, position=position(records[i]))
                for i, event in parsed
            ]
        )
        batch_watch.lap("state")
        state_share = batch_watch.stages["state"] / max(1, len(parsed))
        for (i, event), state in zip(parsed, states, strict=True):
            outcome, watch = outcomes[i], watches[i]
            watch.stages["state"] = state_share
            watch.restart()
            if state is None:
                rejected = Rejected(
                    Reason.DUPLICATE_EVENT, f"event_id {event.event_id!r} was already processed"
                )
                outcome.rejected = rejected
                outcome.outputs.append(dead_letter(outcome.record, rejected, tenant=event.tenant))
                continue
            judged = judge_event(
                event,
                state,
                detector=await self._models.get(event.tenant, LISTENING_MODEL),
                popularity=await self._models.get(event.tenant, POPULARITY_MODEL),
                window_s=self._window_s,
                learn=not degraded,
            )
            self._models.touched(event.tenant, LISTENING_MODEL)
            self._models.touched(event.tenant, POPULARITY_MODEL)
            watch.lap("model")
            outcome.outputs.extend(judged.outputs)
            outcome.anomalies = int(judged.anomalous)
        for outcome, watch in zip(outcomes, watches, strict=True):
            outcome.stages = watch.stages
        return outcomes
