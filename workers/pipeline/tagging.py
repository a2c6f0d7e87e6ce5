"""The tagger's step: an audio chunk in, the tags of the 3 s windows it completes out.

It runs in its own worker role (``run --role tagger``) and consumer group, beside the core
worker that extracts features from the same chunks: the network costs tens of
milliseconds per window, which must never delay the core's 10 ms path. A chunk the core
worker dead-letters (bad headers, bad samples) is left to it: the tagger counts it as
ignored and publishes nothing, so every input still ends as exactly one dead letter.

Like the feature lane, the stream's framing state and the chunk's outputs are saved in
one atomic step (its own keys: ``lane="tags"``), so a chunk is tagged once, whichever
tagger reads it, and one read again after a crash has its saved outputs emitted again,
marked ``replay``. The stream's mean embedding is then stored under its track (or the
stream), where the recommendations' similarity search finds it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import orjson

from workers.core.audio import decode_pcm, downmix
from workers.core.audio.resample import StreamResamplers
from workers.core.chunks import ChunkHeaders, check_chunk
from workers.core.errors import Reason, Rejected
from workers.core.payloads import as_replay, tags_payload
from workers.core.records import TAGS, Outcome, Output, Record, Stopwatch
from workers.core.tagging import Patch, TagModel, TagState, frame, patch_seconds
from workers.core.tagging.artifacts import SpectrumState, Verdict, accumulate, judge
from workers.core.tagging.melspec import SR
from workers.core.tagging.network import Output as NetworkOutput
from workers.core.tagging.stems import shares, stem_energies
from workers.pipeline.process import with_retry
from workers.state.catalogue import unit_bytes
from workers.state.protocol import Embedding, Refused, StateStore

__all__ = ["TaggerPipeline", "TaggingStep"]

log = logging.getLogger(__name__)

LANE = "tags"


def _analyse(
    model: TagModel, frames: npt.NDArray[np.float32], spectrum: SpectrumState
) -> tuple[NetworkOutput, npt.NDArray[np.float64], Verdict]:
    """The windows' tags and embeddings, their stem energies, and the stream's AI verdict:
    everything that costs CPU, in one call off the event loop."""
    result = model.run(frames)
    stems = np.stack([stem_energies(f) for f in frames])
    return result, stems, judge(spectrum)


class TaggingStep:
    def __init__(
        self,
        *,
        tenants: Iterable[str],
        store: StateStore,
        model: TagModel,
        every: int = 1,
        degraded_every: int = 8,
    ) -> None:
        """``every``: tag one window in that many; ``degraded_every`` times fewer while
        the tagger is behind (overload), so it catches up instead of taking more CPU."""
        self._tenants = frozenset(tenants)
        self._store = store
        self.model = model
        self._every = every
        self._degraded_every = degraded_every
        self._resamplers = StreamResamplers(sr_out=SR)

    def warm_up(self) -> None:
        self.model.run(np.zeros((1, 187, 96), np.float32))

    async def process(self, record: Record, *, degraded: bool = False) -> Outcome:
        watch = Stopwatch()
        outcome = Outcome(record)
        try:
            headers = check_chunk(record, self._tenants)
            samples = decode_pcm(record.value or b"", headers=headers)
        except Rejected as rejected:  # the core worker's dead letter
            outcome.ignored = rejected.reason
            return outcome
        outcome.tenant = headers.tenant
        watch.lap("validate")
        t, stream = headers.tenant, headers.stream
        blob = await self._store.load_stream(t, stream, LANE)
        state = TagState.from_bytes(blob) if blob else TagState()
        watch.lap("state")
        if headers.seq <= state.seq:
            return await self._kept(outcome, headers)
        key = f"{t}/{stream}"  # streams are per tenant: two may share an id
        if state.seq >= 0 and headers.seq != state.seq + 1:  # a gap: frame afresh after it
            state = replace(state, started=False, frames=state.frames[:0])
            self._resamplers.reset(key)
        mono = downmix(samples)
        audio = self._resamplers.process(key, mono, sr_in=headers.sample_rate)
        # the AI flag's spectrum at the stream's own rate: resampling would move its peaks
        spectrum = accumulate(state.spectrum, mono, rate=headers.sample_rate)
        state = replace(state, seq=headers.seq, track=headers.track or "", spectrum=spectrum)
        every = self._every * (self._degraded_every if degraded else 1)
        state, patches = frame(state, audio, every=every)
        watch.lap("framing")
        outputs: list[Output] = []
        if patches:
            frames = np.stack([p.frames for p in patches])
            result, stems, verdict = await asyncio.to_thread(
                _analyse, self.model, frames, state.spectrum
            )
            watch.lap("network")
            state = state.with_tagged(result.probabilities, result.embeddings, stems)
            outputs = self._outputs(
                headers, state=state, patches=patches, result=result, stems=stems, verdict=verdict
            )
        embedding = None
        if patches:  # the stream's mean embedding, into the catalogue in the same step
            vector = unit_bytes(state.mean_embedding())
            embedding = Embedding(headers.track or stream, vector, self.model.name)
        saved = await self._store.save_stream(
            t,
            stream,
            headers.seq,
            state.to_bytes(),
            position=record.position,
            outputs=orjson.dumps([(o.topic, o.key, o.value) for o in outputs]),
            record_time_ms=record.time_ms,
            lane=LANE,
            embedding=embedding,
        )
        if isinstance(saved, Refused):
            outcome.ignored = saved.reason
            return outcome
        if not saved.accepted:  # another tagger got there first
            return await self._kept(outcome, headers)
        # past the quota its tags still go out; it is just not searchable
        outcome.catalogue_refused = embedding is not None and not saved.item_kept
        watch.lap("state")
        outcome.outputs = outputs
        outcome.stages = watch.stages
        return outcome

    def _outputs(
        self,
        headers: ChunkHeaders,
        *,
        state: TagState,
        patches: list[Patch],
        result: NetworkOutput,
        stems: npt.NDArray[np.float64],
        verdict: Verdict,
    ) -> list[Output]:
        aggregate = {
            "windows": state.tagged,
            **self.model.describe(state.mean_tags()),
            "stems": shares(state.stem_sums),
        }
        ai_music = verdict.payload()
        out = []
        for patch, scores, embedding, energies in zip(
            patches, result.probabilities, result.embeddings, stems, strict=True
        ):
            start, end = patch_seconds(patch.index)
            out.append(
                Output(
                    TAGS,
                    f"{headers.tenant}/{headers.stream}",
                    tags_payload(
                        tenant=headers.tenant,
                        stream=headers.stream,
                        track=headers.track,
                        seq=headers.seq,
                        window={"index": patch.index, "start_s": start, "end_s": end},
                        described=self.model.describe(scores),
                        embedding=[round(float(v), 4) for v in embedding],
                        heard={"stems": shares(energies), "ai_music": ai_music},
                        aggregate=aggregate,
                        version=self.model.version,
                    ),
                )
            )
        return out

    async def _kept(self, outcome: Outcome, headers: ChunkHeaders) -> Outcome:
        """The outputs saved with this very record, again (a replay); nothing for a
        repeated seq from another record (the core worker dead-letters it)."""
        kept = await self._store.kept_chunk(
            headers.tenant, headers.stream, outcome.record.position, LANE
        )
        if kept is None:
            outcome.ignored = Reason.DUPLICATE_CHUNK
            return outcome
        saved = orjson.loads(kept.outputs)
        mark = (lambda v: v) if kept.own else as_replay
        outcome.outputs = [Output(topic, key, mark(value)) for topic, key, value in saved]
        return outcome


class TaggerPipeline:
    """The tagger role's records in, outcomes out: chunk by chunk, the store's absences
    waited out. A fault of the tagger on a record is logged and counted (``ignored``),
    never dead-lettered: the core worker answers for every input."""

    def __init__(
        self, step: TaggingStep, *, on_retry: Callable[[str], None] = lambda _: None
    ) -> None:
        self.tagging = step
        self._on_retry = on_retry

    def warm_up(self) -> None:
        self.tagging.warm_up()

    async def run(self, records: Sequence[Record], *, degraded: bool) -> AsyncIterator[Outcome]:
        for record in records:
            try:
                yield await with_retry(
                    "tags",
                    functools.partial(self.tagging.process, record, degraded=degraded),
                    on_retry=self._on_retry,
                )
            except Exception:
                log.exception(
                    "tagger error on %s[%d]@%d", record.topic, record.partition, record.offset
                )
                yield Outcome(record, ignored=Reason.INTERNAL_ERROR)
