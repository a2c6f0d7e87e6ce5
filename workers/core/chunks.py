"""Audio chunks on the wire, and what the worker makes of one (pure).

``check_chunk`` checks a record (headers against the schema, tenant, key);
``analyse_chunk`` computes a chunk's quality flags, features and anomaly verdict from the
stream's state, and builds the outputs. Neither touches a store: the pipeline step
(``workers/pipeline/audio.py``) loads the state before and saves it after.

>>> h = parse_headers({"tenant": "acme", "stream": "s1", "seq": "0", "sample-rate": "8000",
...                    "channels": "2", "encoding": "s16le"})
>>> h.tenant, h.seq, h.sample_rate
('acme', 0, 8000)
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from workers.core.audio import (
    StreamingExtractor,
    StreamState,
    downmix,
    noisiest,
    quality_flags,
    resample,
)
from workers.core.audio.decode import Samples
from workers.core.audio.resample import StreamResamplers
from workers.core.errors import Reason, Rejected
from workers.core.eventtime import check_ts
from workers.core.eventtime import now_ms as clock_ms
from workers.core.models.stream_context import (
    ContextVerdict,
    StreamContext,
    dump_context,
    load_context,
)
from workers.core.payloads import anomaly_payload, features_payload
from workers.core.records import (
    ANOMALY,
    AUDIO_FEATURES,
    Output,
    Record,
    check_readable,
    check_tenant,
)
from workers.core.schemas import SCHEMAS
from workers.core.tenants import TENANT_PATTERN, is_valid_id

__all__ = [
    "AUDIO_FAULTS",
    "AUDIO_HEADERS",
    "AUDIO_MODEL_FEATURES",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "STREAM_RULES",
    "ChunkAnalysis",
    "ChunkHeaders",
    "StreamMemory",
    "analyse_chunk",
    "check_chunk",
    "header_text",
    "parse_headers",
    "stream_rules",
    "warm_up",
]

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000
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
    "burst_flatness",
    *(f"contrast_{i:02d}" for i in range(7)),
    *(f"mfcc_{i:02d}" for i in range(13)),
)


@dataclass(frozen=True, slots=True)
class ChunkHeaders:
    tenant: str
    stream: str
    seq: int
    sample_rate: int
    channels: int
    encoding: str
    track: str | None = None
    ts: int | None = None


#: the headers the contract defines for a chunk (schema ``audio.chunk.headers``)
AUDIO_HEADERS = frozenset(
    ("tenant", "stream", "seq", "sample-rate", "channels", "encoding", "track", "ts")
)


def header_text(raw: object) -> dict[str, str]:
    """Kafka headers (a list of (name, bytes) pairs) as a dict of text; later repeats win.

    The contract's headers must be UTF-8; any other header (a producer's tracing or
    serialiser headers, which may be binary) is not the worker's to judge, and is left out
    when it is not text.

    >>> header_text([("tenant", b"acme"), ("x-trace", bytes([255]))])
    {'tenant': 'acme'}
    """
    if not raw:
        return {}
    items = raw.items() if isinstance(raw, Mapping) else raw
    text: dict[str, str] = {}
    for name, value in items:  # type: ignore[attr-defined]
        if isinstance(value, bytes | bytearray):
            try:
                text[str(name)] = bytes(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                if str(name) in AUDIO_HEADERS:
                    raise Rejected(Reason.BAD_HEADERS, f"header {name!r} is not UTF-8") from exc
        elif value is not None:
            text[str(name)] = str(value)
    return text


def parse_headers(headers: Mapping[str, str], *, now_ms: int | None = None) -> ChunkHeaders:
    """Validate audio headers against the schema, then the numeric ranges and the event
    time (``now_ms``, default: the clock, bounds a future ``ts``)."""
    error = SCHEMAS.first_error("audio.chunk.headers", dict(headers))
    if error is not None:
        raise Rejected(Reason.BAD_HEADERS, error)
    for name in ("tenant", "stream", "track"):
        # JSON Schema's "$" lets a trailing newline through in Python's re: ids become keys
        if name in headers and not (
            is_valid_id(headers[name])
            if name != "tenant"
            else TENANT_PATTERN.fullmatch(headers[name])
        ):
            raise Rejected(Reason.BAD_HEADERS, f"{name}: {headers[name]!r} is not a valid id")
    sample_rate = int(headers["sample-rate"])
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise Rejected(
            Reason.BAD_HEADERS,
            f"sample-rate {sample_rate} outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}",
        )
    ts = headers.get("ts")
    if ts is not None:
        check_ts(int(ts), now_ms=clock_ms() if now_ms is None else now_ms)
    return ChunkHeaders(
        tenant=headers["tenant"],
        stream=headers["stream"],
        seq=int(headers["seq"]),
        sample_rate=sample_rate,
        channels=int(headers["channels"]),
        encoding=headers["encoding"],
        track=headers.get("track"),
        ts=int(ts) if ts is not None else None,
    )


def check_chunk(record: Record, tenants: frozenset[str]) -> ChunkHeaders:
    """A chunk record's headers, validated with its tenant and key (samples: ``decode_pcm``).

    A ``ts`` header is bounded by the record's own timestamp, not by a worker's clock: the
    core worker and the tagger read the same record at different times, and must judge it
    the same (one refusing what the other accepts would give a chunk tags *and* a dead
    letter)."""
    check_readable(record)
    headers = parse_headers(header_text(record.headers), now_ms=record.time_ms)
    check_tenant(headers.tenant, tenants, record)
    key = f"{headers.tenant}/{headers.stream}"
    if record.key is None or record.key != key.encode():
        raise Rejected(Reason.BAD_KEY, f"key must be {key!r}")
    return headers


#: The stream memory's serialised layout: format, framing state length.
_MEMORY = struct.Struct("<B I")
_MEMORY_FORMAT = 2


@dataclass(frozen=True)
class StreamMemory:
    """Everything a stream carries from chunk to chunk, saved atomically after each one:
    its framing state (features) and its anomaly model (its own recent past)."""

    framing: StreamState
    context: StreamContext

    @classmethod
    def fresh(cls, *, alarm_rate: float = 0.02) -> StreamMemory:
        width = len(AUDIO_MODEL_FEATURES)
        context = StreamContext.empty(width, alarm_rate=alarm_rate, names=AUDIO_MODEL_FEATURES)
        return cls(StreamState(), context)

    @property
    def seq(self) -> int:
        return self.framing.seq

    def to_bytes(self) -> bytes:
        framing = self.framing.to_bytes()
        return _MEMORY.pack(_MEMORY_FORMAT, len(framing)) + framing + dump_context(self.context)

    @classmethod
    def from_bytes(cls, blob: bytes, *, alarm_rate: float = 0.02) -> StreamMemory:
        """A saved stream; one saved before streams had a model of their own starts one."""
        if blob[:1] != bytes([_MEMORY_FORMAT]):
            return cls(StreamState.from_bytes(blob), cls.fresh(alarm_rate=alarm_rate).context)
        _, size = _MEMORY.unpack_from(blob)
        start = _MEMORY.size
        framing = StreamState.from_bytes(blob[start : start + size])
        return cls(framing, load_context(blob[start + size :], names=AUDIO_MODEL_FEATURES))


#: Rules that judge a chunk against its own stream's recent sound (``stream_rules``).
STREAM_RULES = ("dead_air", "noise_burst")
#: chunks a stream must have had before its context can judge
CONTEXT_MIN = 3
#: dead air: a silent chunk (``silence``) in a stream whose recent level is above this
LOUD_DB = -40.0
#: a noise burst: the chunk is this much louder than the stream's recent level...
BURST_DB = 1.0
#: ...and noisier than its recent sound: its zero-crossing rate or spectral flatness this
#: many recent deviations above the stream's mean
BURST_SIGMAS = 4.0
#: or its noisiest 100 ms (``noisiest``) are this many recent deviations flatter than the
#: stream's usually are, flatter than this (a tonal sound stays far below), and at least as
#: loud as the stream's recent level: a burst too short to move the chunk's means
NOISY_FLATNESS = 0.1
_RMS, _ZCR, _FLATNESS, _BURST = (
    AUDIO_MODEL_FEATURES.index(name)
    for name in ("rms_db", "zcr", "spectral_flatness", "burst_flatness")
)


def stream_rules(
    flags: Mapping[str, bool], x: np.ndarray, context: StreamContext, *, burst_db: float
) -> list[str]:
    """The rules that fire on a chunk judged against the stream's recent sound: dead air in
    a stream that was loud (a quiet intro is not), a burst of noise in one that was sounding
    but not noisy (sound starting after a quiet intro is not). ``burst_db``: the level of
    the chunk's noisiest 100 ms, whose flatness is ``x``'s ``burst_flatness``."""
    if context.n < CONTEXT_MIN:
        return []
    fired = []
    level = float(context.mean[_RMS])
    if flags["silence"] and level > LOUD_DB:
        fired.append("dead_air")
    deviations = context.deviations(x)
    noisier = any(
        x[i] > context.mean[i] and deviations[i] >= BURST_SIGMAS for i in (_ZCR, _FLATNESS)
    )
    noisy_stretch = (
        x[_BURST] > max(NOISY_FLATNESS, context.mean[_BURST])
        and deviations[_BURST] >= BURST_SIGMAS
        and burst_db >= level
    )
    if level > LOUD_DB and ((x[_RMS] > level + BURST_DB and noisier) or noisy_stretch):
        fired.append("noise_burst")
    return fired


@dataclass(frozen=True, slots=True)
class ChunkAnalysis:
    """One chunk, analysed: the stream's next memory (having learnt it), the outputs."""

    memory: StreamMemory
    outputs: list[Output]
    faults: list[str]
    verdict: ContextVerdict

    @property
    def anomalous(self) -> bool:
        return self.verdict.is_anomaly or bool(self.faults)


def analyse_chunk(
    headers: ChunkHeaders,
    samples: Samples,
    memory: StreamMemory,
    *,
    extractor: StreamingExtractor,
    resamplers: StreamResamplers,
    degraded: bool = False,
) -> ChunkAnalysis:
    """Quality flags, features and the anomaly verdict of a chunk that follows ``memory``;
    the memory returned has learnt the chunk, unless it has a measured fault (not the
    stream's normal sound). A ``degraded`` worker (behind its input) skips the sample-rate
    check, a second FFT: ``rate_mismatch`` is then left out of ``quality`` (not checked),
    and what the stream's model learns does not change."""
    key = f"{headers.tenant}/{headers.stream}"
    state = memory.framing
    native = downmix(samples)
    flags = quality_flags(samples, sr=headers.sample_rate, check_rate=not degraded, mono=native)
    flags["seq_gap"] = state.seq >= 0 and headers.seq != state.seq + 1
    flags["dropout"] = flags["dropout"] or flags["seq_gap"]  # missing audio is a dropout
    if flags["seq_gap"]:  # never splice audio across a gap: restart framing and filters
        state = StreamState(seq=state.seq)
        resamplers.reset(key)
    mono = resamplers.process(key, native, sr_in=headers.sample_rate)
    state, features = extractor.step(state, mono)
    features["burst_flatness"], features["burst_db"] = noisiest(native, sr=headers.sample_rate)
    x = np.array([features[name] for name in AUDIO_MODEL_FEATURES])
    fired = stream_rules(flags, x, memory.context, burst_db=features["burst_db"])
    faults = [name for name in AUDIO_FAULTS if flags[name]] + fired
    context = copy.deepcopy(memory.context)
    verdict = context.judge(x)
    reasons = [name for name, on in flags.items() if on] + fired
    if verdict.is_anomaly:
        reasons.extend(context.explain_one(x))
        reasons.append("model-score")
    if not faults:
        context.learn_one(x, verdict.score)
    context.alarms += int(verdict.is_anomaly or bool(faults))
    outputs = [
        Output(
            AUDIO_FEATURES,
            key,
            features_payload(
                tenant=headers.tenant,
                stream=headers.stream,
                seq=headers.seq,
                track=headers.track,
                ts=headers.ts,
                sample_rate=extractor.sr,
                duration_ms=1000 * samples.shape[0] / headers.sample_rate,
                features=features,
                quality=flags
                if not degraded
                else {k: v for k, v in flags.items() if k != "rate_mismatch"},
            ),
        ),
        Output(
            ANOMALY,
            key,
            anomaly_payload(
                tenant=headers.tenant,
                kind="audio",
                subject=headers.stream,
                ref=headers.seq,
                # a measured fault (clipping, dropout, ...) is certain: it outranks any score
                score=1.0 if faults else verdict.score,
                percentile=verdict.percentile,
                threshold=verdict.threshold,
                is_anomaly=verdict.is_anomaly or bool(faults),
                warming_up=verdict.warming_up,
                reasons=reasons,
                model_version=context.version,
                replay=False,
            ),
        ),
    ]
    return ChunkAnalysis(
        memory=StreamMemory(replace(state, seq=headers.seq), context),
        outputs=outputs,
        faults=faults,
        verdict=verdict,
    )


def warm_up(extractor: StreamingExtractor) -> None:
    """Run the whole numeric path once so the first real chunk pays no set-up cost."""
    noise = np.random.default_rng(0).standard_normal((22050, 2)).astype(np.float32) * 0.1
    for sr in (44100, 48000, 16000):
        quality_flags(noise, sr=sr)
        noisiest(downmix(noise), sr=sr)
        mono = resample(downmix(noise), sr_in=sr, sr_out=extractor.sr)
        state, _ = extractor.step(StreamState(), mono)
        StreamState.from_bytes(state.to_bytes())
