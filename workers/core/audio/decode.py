"""Audio chunk headers and PCM decoding: bytes + headers -> float32 samples.

>>> import numpy as np
>>> h = parse_headers({"tenant": "acme", "stream": "s1", "seq": "0", "sample-rate": "8000",
...                    "channels": "2", "encoding": "s16le"})
>>> decode_pcm(np.array([0, 16384, -32768, 0], "<i2").tobytes(), headers=h).shape
(2, 2)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from workers.core.errors import Reason, Rejected
from workers.core.eventtime import check_ts
from workers.core.eventtime import now_ms as clock_ms
from workers.core.schemas import SCHEMAS
from workers.core.tenants import TENANT_PATTERN, is_valid_id

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000
#: Longest chunk accepted, in seconds of audio; longer chunks are `oversized`.
MAX_CHUNK_SECONDS = 10.0
_BYTES_PER_SAMPLE = {"s16le": 2, "f32le": 4}

Samples = npt.NDArray[np.float32]


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


def header_text(raw: object) -> dict[str, str]:
    """Kafka headers (a list of (name, bytes) pairs) as a dict of text; later repeats win."""
    if not raw:
        return {}
    items = raw.items() if isinstance(raw, Mapping) else raw
    text: dict[str, str] = {}
    for name, value in items:  # type: ignore[attr-defined]
        if isinstance(value, bytes | bytearray):
            try:
                text[str(name)] = bytes(value).decode("utf-8")
            except UnicodeDecodeError as exc:
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


def decode_pcm(payload: bytes, *, headers: ChunkHeaders) -> Samples:
    """Interleaved PCM -> float32 array of shape (frames, channels), full scale = 1.0."""
    if not payload:
        raise Rejected(Reason.EMPTY_VALUE, "audio chunk has no samples")
    frame_bytes = _BYTES_PER_SAMPLE[headers.encoding] * headers.channels
    if len(payload) % frame_bytes:
        raise Rejected(
            Reason.TRUNCATED_PCM,
            f"{len(payload)} bytes is not a whole number of {frame_bytes}-byte frames "
            f"({headers.encoding}, {headers.channels} channels)",
        )
    n_frames = len(payload) // frame_bytes
    if n_frames > MAX_CHUNK_SECONDS * headers.sample_rate:
        raise Rejected(
            Reason.OVERSIZED,
            f"{n_frames / headers.sample_rate:.1f} s chunk exceeds {MAX_CHUNK_SECONDS:.0f} s",
        )
    samples: Samples
    if headers.encoding == "s16le":
        samples = np.frombuffer(payload, dtype="<i2").astype(np.float32) * np.float32(1 / 32768)
    else:
        samples = np.frombuffer(payload, dtype="<f4").astype(np.float32)
        if not np.isfinite(samples).all():
            bad = int(np.size(samples) - np.count_nonzero(np.isfinite(samples)))
            raise Rejected(Reason.NON_FINITE_SAMPLES, f"{bad} NaN or infinite samples")
    return samples.reshape(n_frames, headers.channels)


def downmix(samples: Samples) -> Samples:
    """(frames, channels) -> mono (frames,), the mean of the channels."""
    mono: Samples = (
        np.ascontiguousarray(samples[:, 0])
        if samples.shape[1] == 1
        else samples.mean(axis=1, dtype=np.float32)
    )
    return mono
