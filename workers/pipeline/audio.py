"""The audio step: a chunk record in, its features and anomaly score (or a dead letter) out.

Orchestration only: ``check_chunk`` and ``analyse_chunk`` (``core/chunks.py``) do the work,
the store keeps each stream's memory (its framing state and its own anomaly model). The
memory after a chunk, the chunk's record position and its outputs are saved in one atomic
step, so a chunk is learnt exactly once, whichever worker reads it, and a chunk re-read
after a crash is recognised and its saved outputs are emitted again (marked ``replay``).
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from workers.core.audio import StreamingExtractor, decode_pcm
from workers.core.audio.resample import StreamResamplers
from workers.core.chunks import ChunkHeaders, StreamMemory, analyse_chunk, check_chunk, warm_up
from workers.core.errors import Reason, Rejected
from workers.core.payloads import as_replay
from workers.core.records import Outcome, Output, Record, Stopwatch, dead_letter
from workers.state.protocol import Refused, StateStore

__all__ = ["AudioStep"]


class AudioStep:
    def __init__(
        self,
        *,
        tenants: Iterable[str],
        store: StateStore,
        model_rate: int,
        alarm_rate: float = 0.02,
    ) -> None:
        self._tenants = frozenset(tenants)
        self._store = store
        self._alarm_rate = alarm_rate
        self._extractor = StreamingExtractor(sr=model_rate)
        self._resamplers = StreamResamplers(sr_out=model_rate)

    def warm_up(self) -> None:
        warm_up(self._extractor)

    async def process(self, record: Record, *, degraded: bool = False) -> Outcome:
        """``degraded`` (the worker is behind its input): the sample-rate check is skipped."""
        watch = Stopwatch()
        outcome = Outcome(record)
        try:
            headers = check_chunk(record, self._tenants)
            outcome.tenant = headers.tenant
            watch.lap("validate")
            samples = decode_pcm(record.value or b"", headers=headers)
            watch.lap("decode")
            blob = await self._store.load_stream(headers.tenant, headers.stream)
            watch.lap("state")
            memory = (
                StreamMemory.from_bytes(blob, alarm_rate=self._alarm_rate)
                if blob
                else StreamMemory.fresh(alarm_rate=self._alarm_rate)
            )
            if headers.seq <= memory.seq:
                outcome.outputs = await self._kept(record, headers, memory.seq)
                return outcome
            analysis = analyse_chunk(
                headers,
                samples,
                memory,
                extractor=self._extractor,
                resamplers=self._resamplers,
                degraded=degraded,
            )
            watch.lap("features")
            saved = await self._store.save_stream(
                headers.tenant,
                headers.stream,
                headers.seq,
                analysis.memory.to_bytes(),
                position=record.position,
                outputs=orjson.dumps([(o.topic, o.key, o.value) for o in analysis.outputs]),
                record_time_ms=record.time_ms,
            )
            watch.lap("state")
            if isinstance(saved, Refused):
                raise Rejected(saved.reason, saved.detail)
            if not saved.accepted:  # another worker got there first, or the store saw it
                outcome.outputs = await self._kept(record, headers, saved.previous)
                return outcome
            outcome.anomalies = int(analysis.anomalous)
            outcome.outputs = analysis.outputs
        except Rejected as rejected:
            outcome.rejected = rejected
            outcome.outputs = [dead_letter(record, rejected, tenant=outcome.tenant)]
        finally:
            outcome.stages = watch.stages
        return outcome

    async def _kept(self, record: Record, headers: ChunkHeaders, latest: int) -> list[Output]:
        """The outputs saved with this very record, emitted again: marked as a replay when an
        earlier reader saved them, as they were when this process did (a retry of a save
        whose answer was lost). The stream's memory already learnt the chunk either way.
        Any other chunk at or below the stream's latest seq is a duplicate."""
        kept = await self._store.kept_chunk(headers.tenant, headers.stream, record.position)
        if kept is None:
            raise Rejected(
                Reason.DUPLICATE_CHUNK,
                f"seq {headers.seq} is not after {latest} in stream {headers.stream!r}",
            )
        saved = orjson.loads(kept.outputs)
        if kept.own:
            return [Output(topic, key, value) for topic, key, value in saved]
        return [Output(topic, key, as_replay(value)) for topic, key, value in saved]
