"""The two processors: records in, outputs (or one dead letter) out.

They call the pure core and the state store they are given; they know nothing of
Kafka or Prometheus, so they run the same in the worker and in unit tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import orjson

from workers.core.audio import (
    StreamingExtractor,
    StreamState,
    decode_pcm,
    downmix,
    header_text,
    parse_headers,
    quality_flags,
    resample,
)
from workers.core.audio.decode import ChunkHeaders
from workers.core.audio.resample import StreamResamplers
from workers.core.errors import Reason, Rejected
from workers.core.listening import BOT_DIRECTIONS, ListeningEvent, behaviour, parse_event, to_update
from workers.core.models import AnomalyDetector, PopularityModel, Verdict
from workers.core.records import (
    ANOMALY,
    AUDIO_FEATURES,
    POPULARITY,
    Outcome,
    Output,
    Record,
    Stopwatch,
    dead_letter,
)
from workers.state.model_cache import ModelRegistry
from workers.state.store import ListeningState, StateStore

log = logging.getLogger(__name__)

AUDIO_MODEL = "audio-anomaly"
LISTENING_MODEL = "listening-anomaly"
POPULARITY_MODEL = "popularity"
#: Quality faults that make a chunk anomalous whatever the model says (and keep it out of training).
AUDIO_FAULTS = ("clipping", "dropout", "seq_gap", "dc_offset", "rate_mismatch")
#: The feature-vector slice the audio anomaly model sees (chroma is content, not quality).
AUDIO_MODEL_FEATURES = (
    "rms_db",
    "peak_db",
    "zcr",
    "spectral_centroid",
    "spectral_bandwidth",
    "spectral_rolloff",
    "spectral_flatness",
    "onset_strength",
    "lufs_momentary",
    *(f"contrast_{i:02d}" for i in range(7)),
    *(f"mfcc_{i:02d}" for i in range(13)),
)


def model_factories(
    *, alarm_rate_listening: float = 0.05, alarm_rate_audio: float = 0.02
) -> dict[str, Callable[[], Any]]:
    """One factory per model kind: what a tenant gets the first time it is seen."""
    return {
        AUDIO_MODEL: partial(AnomalyDetector.create, alarm_rate=alarm_rate_audio),
        LISTENING_MODEL: partial(
            AnomalyDetector.create_tail_rank, BOT_DIRECTIONS, alarm_rate=alarm_rate_listening
        ),
        POPULARITY_MODEL: PopularityModel.create,
    }


def _position(record: Record) -> str:
    """Where a record came from: the same position again is a replay, not a duplicate."""
    return f"{record.topic}:{record.partition}:{record.offset}"


def _check_tenant(tenant: str, tenants: frozenset[str], record: Record) -> None:
    if record.owner is not None and tenant != record.owner:
        raise Rejected(
            Reason.TENANT_MISMATCH,
            f"record claims tenant {tenant!r} on {record.owner!r}'s topic {record.topic!r}",
        )
    if tenant not in tenants:
        raise Rejected(Reason.UNKNOWN_TENANT, f"tenant {tenant!r} is not served by this fleet")


class AudioProcessor:
    def __init__(
        self,
        *,
        tenants: Iterable[str],
        store: StateStore,
        models: ModelRegistry,
        model_rate: int,
    ) -> None:
        self._tenants = frozenset(tenants)
        self._store = store
        self._models = models
        self._model_rate = model_rate
        self._extractor = StreamingExtractor(sr=model_rate)
        self._resamplers = StreamResamplers(sr_out=model_rate)
        #: set by the overload policy: score without learning, skip the rate check
        self.degraded = False

    def warm_up(self) -> None:
        """Run the whole numeric path once so the first real chunk pays no set-up cost."""
        noise = np.random.default_rng(0).standard_normal((22050, 2)).astype(np.float32) * 0.1
        for sr in (44100, 48000, 16000):
            quality_flags(noise, sr=sr)
            mono = resample(downmix(noise), sr_in=sr, sr_out=self._model_rate)
            state, _ = self._extractor.step(StreamState(), mono)
            StreamState.from_bytes(state.to_bytes())

    async def process(self, record: Record) -> Outcome:
        watch = Stopwatch()
        outcome = Outcome(record)
        try:
            headers = parse_headers(header_text(record.headers))
            outcome.tenant = headers.tenant
            _check_tenant(headers.tenant, self._tenants, record)
            key = f"{headers.tenant}/{headers.stream}"
            if record.key is None or record.key != key.encode():
                raise Rejected(Reason.BAD_KEY, f"key must be {key!r}")
            watch.lap("validate")
            samples = decode_pcm(record.value or b"", headers=headers)
            watch.lap("decode")
            detector = await self._models.get(headers.tenant, AUDIO_MODEL)
            blob = await self._store.load_stream(headers.tenant, headers.stream)
            watch.lap("state")
            state = StreamState.from_bytes(blob) if blob else StreamState()
            if headers.seq <= state.seq:
                outcome.outputs = await self._replayed(record, headers, state.seq)
                outcome.stages = watch.stages
                return outcome
            flags = quality_flags(samples, sr=headers.sample_rate, check_rate=not self.degraded)
            flags["seq_gap"] = state.seq >= 0 and headers.seq != state.seq + 1
            flags["dropout"] = flags["dropout"] or flags["seq_gap"]  # missing audio is a dropout
            if flags["seq_gap"]:  # never splice audio across a gap: restart framing and filters
                state = StreamState(seq=state.seq)
                self._resamplers.reset(key)
            mono = self._resamplers.process(key, downmix(samples), sr_in=headers.sample_rate)
            state, features = self._extractor.step(state, mono)
            watch.lap("features")
            faults = [name for name in AUDIO_FAULTS if flags[name]]
            x = {name: features[name] for name in AUDIO_MODEL_FEATURES}
            verdict = detector.judge(x)  # learnt below, once the chunk is known to be new
            outputs = self._outputs(
                headers,
                frames=samples.shape[0],
                features=features,
                flags=flags,
                faults=faults,
                verdict=verdict,
                version=detector.version,
            )
            watch.lap("model")
            # state, position and outputs in one atomic step: a replay finds its outputs
            accepted, previous = await self._store.save_stream(
                headers.tenant,
                headers.stream,
                headers.seq,
                replace(state, seq=headers.seq).to_bytes(),
                position=_position(record),
                outputs=orjson.dumps([(o.topic, o.key, o.value) for o in outputs]),
            )
            watch.lap("state")
            if not accepted:  # another worker got there first, or the store saw it already
                outcome.outputs = await self._replayed(record, headers, previous)
                outcome.stages = watch.stages
                return outcome
            if not faults and not self.degraded:
                detector.learn(x, verdict.score)
            self._models.touched(headers.tenant, AUDIO_MODEL)
            watch.lap("model")
        except Rejected as rejected:
            outcome.rejected = rejected
            outcome.outputs.append(dead_letter(record, rejected, tenant=outcome.tenant))
            outcome.stages = watch.stages
            return outcome
        outcome.anomalies = int(verdict.is_anomaly or bool(faults))
        outcome.outputs = outputs
        outcome.stages = watch.stages
        return outcome

    async def _replayed(self, record: Record, headers: ChunkHeaders, latest: int) -> list[Output]:
        """The outputs saved with this very record (a re-read after a crash), marked as a
        replay; any other chunk at or below the stream's latest seq is a duplicate."""
        kept = await self._store.recent_chunk(headers.tenant, headers.stream, headers.seq)
        if kept is None or kept[0] != _position(record):
            raise Rejected(
                Reason.DUPLICATE_CHUNK,
                f"seq {headers.seq} is not after {latest} in stream {headers.stream!r}",
            )
        return [
            Output(topic, key, {**value, "replay": True})
            for topic, key, value in orjson.loads(kept[1])
        ]

    def _outputs(
        self,
        headers: ChunkHeaders,
        *,
        frames: int,
        features: dict[str, float],
        flags: dict[str, bool],
        faults: list[str],
        verdict: Verdict,
        version: int,
    ) -> list[Output]:
        key = f"{headers.tenant}/{headers.stream}"
        why = [name for name, on in flags.items() if on]
        if verdict.is_anomaly:
            why.append("model-score")
        # a measured fault (clipping, dropout, ...) is certain: it outranks any model score
        score = 1.0 if faults else verdict.score
        features_out = {
            "schema": "audio.features/v1",
            "tenant": headers.tenant,
            "stream": headers.stream,
            "seq": headers.seq,
            "track": headers.track,
            "ts": headers.ts,
            "sample_rate": self._model_rate,
            "duration_ms": round(1000 * frames / headers.sample_rate, 3),
            "features": features,
            "quality": flags,
            "replay": False,
        }
        anomaly_out = {
            "schema": "predictions.anomaly/v1",
            "tenant": headers.tenant,
            "kind": "audio",
            "subject": headers.stream,
            "ref": headers.seq,
            "score": round(score, 6),
            "percentile": round(verdict.percentile, 6),
            "threshold": round(verdict.threshold, 6),
            "is_anomaly": verdict.is_anomaly or bool(faults),
            "warming_up": verdict.warming_up,
            "reasons": why,
            "model_version": version,
            "replay": False,
        }
        return [Output(AUDIO_FEATURES, key, features_out), Output(ANOMALY, key, anomaly_out)]


class ListeningProcessor:
    def __init__(
        self, *, tenants: Iterable[str], store: StateStore, models: ModelRegistry, window_s: int
    ) -> None:
        self._tenants = frozenset(tenants)
        self._store = store
        self._models = models
        self._window_s = window_s
        #: set by the overload policy: score without learning
        self.degraded = False

    def _parse(self, record: Record, outcome: Outcome) -> ListeningEvent | None:
        try:
            event = parse_event(record.value, key=record.key)
            outcome.tenant = event.tenant
            _check_tenant(event.tenant, self._tenants, record)
        except Rejected as rejected:
            outcome.rejected = rejected
            outcome.outputs.append(dead_letter(record, rejected, tenant=outcome.tenant))
            return None
        return event

    async def process_batch(self, records: Sequence[Record]) -> list[Outcome]:
        """Process records in order; state for the whole batch is one Redis round trip."""
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
                to_update(event, window_s=self._window_s, position=_position(records[i]))
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
            else:
                await self._score(event, state, outcome, watch)
        for outcome, watch in zip(outcomes, watches, strict=True):
            outcome.stages = watch.stages
        return outcomes

    async def _score(
        self, event: ListeningEvent, state: ListeningState, outcome: Outcome, watch: Stopwatch
    ) -> None:
        detector = await self._models.get(event.tenant, LISTENING_MODEL)
        features = behaviour(state.user, state.current)
        # a replay was learnt the first time: score it again, learn nothing twice
        verdict = detector.step(features, learn=not state.replay and not self.degraded)
        self._models.touched(event.tenant, LISTENING_MODEL)
        why = detector.explain(features) if verdict.is_anomaly else []
        if verdict.is_anomaly:
            why.append("model-score")
        outcome.anomalies = int(verdict.is_anomaly)
        outcome.outputs.append(
            Output(
                ANOMALY,
                f"{event.tenant}/{event.user_id}",
                {
                    "schema": "predictions.anomaly/v1",
                    "tenant": event.tenant,
                    "kind": "listening",
                    "subject": event.user_id,
                    "ref": event.event_id,
                    "score": round(verdict.score, 6),
                    "percentile": round(verdict.percentile, 6),
                    "threshold": round(verdict.threshold, 6),
                    "is_anomaly": verdict.is_anomaly,
                    "warming_up": verdict.warming_up,
                    "reasons": why,
                    "features": {name: round(value, 6) for name, value in features.items()},
                    "replay": state.replay,
                    "model_version": detector.version,
                },
            )
        )
        popularity: PopularityModel = await self._models.get(event.tenant, POPULARITY_MODEL)
        if state.closed is not None and not state.replay and not self.degraded:
            closed, before, before_that = state.closed
            popularity.learn(current=before, previous=before_that, next_plays=closed.plays)
        window_ms = self._window_s * 1000
        window_start = (event.ts // window_ms) * window_ms
        elapsed = (event.ts - window_start + 1) / window_ms
        predicted = popularity.predict(
            current=state.current, previous=state.previous, elapsed=elapsed
        )
        self._models.touched(event.tenant, POPULARITY_MODEL)
        watch.lap("model")
        current = state.current
        outcome.outputs.append(
            Output(
                POPULARITY,
                f"{event.tenant}/{event.track_id}",
                {
                    "schema": "predictions.popularity/v1",
                    "tenant": event.tenant,
                    "track_id": event.track_id,
                    "ref": event.event_id,
                    "window_start": window_start,
                    "window_s": self._window_s,
                    "plays": current.plays,
                    "plays_previous": state.previous.plays,
                    "skips": current.skips,
                    "likes": current.likes,
                    "shares": current.shares,
                    "listeners": current.listeners,
                    "predicted_plays_next": round(predicted, 3),
                    "model_version": popularity.version,
                    "replay": state.replay,
                },
            )
        )
