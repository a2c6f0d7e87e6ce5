"""The audio step: a chunk record in, its features and anomaly score (or a dead letter) out.

Orchestration only: ``check_chunk`` and ``analyse_chunk`` (``core/chunks.py``) do the work,
the store keeps each stream's state. The stream's state, the chunk's record position and
its outputs are saved in one atomic step, so a chunk re-read after a crash is recognised
and its saved outputs are emitted again (marked ``replay``), never computed or learnt twice.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from workers.core.audio import StreamingExtractor, StreamState, decode_pcm
from workers.core.audio.resample import StreamResamplers
from workers.core.chunks import (
    ChunkHeaders,
    analyse_chunk,
    check_chunk,
    learn_saved_chunk,
    warm_up,
)
from workers.core.errors import Reason, Rejected
from workers.core.eventtime import now_ms as clock_ms
from workers.core.models import AnomalyDetector
from workers.core.models.kinds import AUDIO_MODEL
from workers.core.payloads import as_replay
from workers.core.records import Outcome, Output, Record, Stopwatch, dead_letter
from workers.state.model_cache import ModelRegistry
from workers.state.protocol import Refused, StateStore

__all__ = ["AudioStep"]


class AudioStep:
    def __init__(
        self, *, tenants: Iterable[str], store: StateStore, models: ModelRegistry, model_rate: int
    ) -> None:
        self._tenants = frozenset(tenants)
        self._store = store
        self._models = models
        self._extractor = StreamingExtractor(sr=model_rate)
        self._resamplers = StreamResamplers(sr_out=model_rate)

    def warm_up(self) -> None:
        warm_up(self._extractor)

    async def process(self, record: Record, *, degraded: bool = False) -> Outcome:
        """``degraded`` (overload): score without learning, skip the sample-rate check."""
        watch = Stopwatch()
        outcome = Outcome(record)
        try:
            headers = check_chunk(record, self._tenants)
            outcome.tenant = headers.tenant
            watch.lap("validate")
            samples = decode_pcm(record.value or b"", headers=headers)
            watch.lap("decode")
            detector = await self._models.get(headers.tenant, AUDIO_MODEL)
            blob = await self._store.load_stream(headers.tenant, headers.stream)
            watch.lap("state")
            state = StreamState.from_bytes(blob) if blob else StreamState()
            if headers.seq <= state.seq:
                outcome.outputs = await self._kept(record, headers, state.seq, detector)
                return outcome
            analysis = analyse_chunk(
                headers,
                samples,
                state,
                extractor=self._extractor,
                resamplers=self._resamplers,
                detector=detector,
                degraded=degraded,
            )
            watch.lap("features")
            saved = await self._store.save_stream(
                headers.tenant,
                headers.stream,
                headers.seq,
                analysis.state.to_bytes(),
                position=record.position,
                outputs=orjson.dumps([(o.topic, o.key, o.value) for o in analysis.outputs]),
                now_ms=clock_ms(),
            )
            watch.lap("state")
            if isinstance(saved, Refused):
                raise Rejected(saved.reason, saved.detail)
            if not saved.accepted:  # another worker got there first, or the store saw it
                outcome.outputs = await self._kept(record, headers, saved.previous, detector)
                return outcome
            if analysis.learnable and not degraded:
                detector.learn_one(analysis.x, analysis.verdict.score)
            self._models.touched(headers.tenant, AUDIO_MODEL)
            watch.lap("model")
            outcome.anomalies = int(analysis.anomalous)
            outcome.outputs = analysis.outputs
        except Rejected as rejected:
            outcome.rejected = rejected
            outcome.outputs = [dead_letter(record, rejected, tenant=outcome.tenant)]
        finally:
            outcome.stages = watch.stages
        return outcome

    async def _kept(
        self, record: Record, headers: ChunkHeaders, latest: int, detector: AnomalyDetector
    ) -> list[Output]:
        """The outputs saved with this very record, emitted again: marked as a replay when an
        earlier reader saved them; as they were when this process did (a retry of a save
        whose answer was lost), and then learnt now, as the first read would have. Any other
        chunk at or below the stream's latest seq is a duplicate."""
        kept = await self._store.kept_chunk(headers.tenant, headers.stream, record.position)
        if kept is None:
            raise Rejected(
                Reason.DUPLICATE_CHUNK,
                f"seq {headers.seq} is not after {latest} in stream {headers.stream!r}",
            )
        saved = [(topic, key, value) for topic, key, value in orjson.loads(kept.outputs)]
        if not kept.own:
            return [Output(topic, key, as_replay(value)) for topic, key, value in saved]
        learn_saved_chunk(detector, saved)
        self._models.touched(headers.tenant, AUDIO_MODEL)
        return [Output(topic, key, value) for topic, key, value in saved]
