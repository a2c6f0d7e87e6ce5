"""PCM decoding: bytes in a declared format -> float32 samples (frames, channels).

>>> import numpy as np
>>> from types import SimpleNamespace
>>> fmt = SimpleNamespace(encoding="s16le", channels=2, sample_rate=8000)
>>> decode_pcm(np.array([0, 16384, -32768, 0], "<i2").tobytes(), headers=fmt).shape
(2, 2)
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from workers.core.errors import Reason, Rejected

__all__ = [
    "MAX_CHUNK_SECONDS",
    "MAX_F32_MAGNITUDE",
    "PcmFormat",
    "Samples",
    "decode_pcm",
    "downmix",
]

#: Largest |sample| accepted in f32le (+24 dBFS): float audio may exceed full scale a little
#: (it clips on output), far beyond is a producer bug, and keeps every feature finite.
MAX_F32_MAGNITUDE = 16.0
#: Longest chunk accepted, in seconds of audio; longer chunks are `oversized`.
MAX_CHUNK_SECONDS = 10.0
_BYTES_PER_SAMPLE = {"s16le": 2, "f32le": 4}

Samples = npt.NDArray[np.float32]


class PcmFormat(Protocol):
    """How a chunk's bytes are laid out (``ChunkHeaders`` is one)."""

    @property
    def encoding(self) -> str: ...

    @property
    def channels(self) -> int: ...

    @property
    def sample_rate(self) -> int: ...


def decode_pcm(payload: bytes, *, headers: PcmFormat) -> Samples:
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
        peak = float(np.abs(samples).max())
        if peak > MAX_F32_MAGNITUDE:
            raise Rejected(
                Reason.SAMPLES_OUT_OF_RANGE,
                f"peak {peak:.3g} exceeds {MAX_F32_MAGNITUDE:g} (full scale is 1.0): "
                "not float audio, or the wrong encoding",
            )
    return samples.reshape(n_frames, headers.channels)


def downmix(samples: Samples) -> Samples:
    """(frames, channels) -> mono (frames,), the mean of the channels.

    Below 8 channels, column by column: the same float32 sums, in the same order, as
    ``samples.mean(axis=1, dtype=np.float32)`` (numpy adds fewer than 8 values one after
    the other), which reduced each short row on its own and cost a sixth of a chunk's
    whole audio path; from 8 on, numpy's own pairwise sum.
    """
    if samples.shape[1] == 1:
        return np.ascontiguousarray(samples[:, 0])
    if samples.shape[1] >= 8:
        wide: Samples = samples.mean(axis=1, dtype=np.float32)
        return wide
    mono: Samples = samples[:, 0].astype(np.float32, copy=True)
    for channel in range(1, samples.shape[1]):
        mono += samples[:, channel]
    mono /= np.float32(samples.shape[1])
    return mono
