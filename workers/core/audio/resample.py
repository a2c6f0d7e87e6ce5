"""Resampling to the model rate with soxr, the high-quality resampler librosa also uses.

``resample`` converts one block. ``StreamResamplers`` keeps one streaming soxr
resampler per audio stream, so chunk boundaries leave no filter edge artefacts; it
lives in worker memory (a restarted worker starts a fresh one: a few ms of filter
delay, not a discontinuity in the framing, which is carried in Redis).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import numpy.typing as npt
import soxr

__all__ = ["StreamResamplers", "resample"]

Samples = npt.NDArray[np.float32]


def resample(samples: Samples, *, sr_in: int, sr_out: int) -> Samples:
    """Mono float32 at ``sr_in`` -> mono float32 at ``sr_out`` (soxr "HQ")."""
    if sr_in == sr_out:
        return samples
    out: Samples = soxr.resample(samples, sr_in, sr_out, quality="HQ")
    return out.astype(np.float32, copy=False)


class StreamResamplers:
    """One streaming resampler per (stream key, input rate), least recently used dropped."""

    def __init__(self, *, sr_out: int, max_streams: int = 10_000) -> None:
        self.sr_out = sr_out
        self._max = max_streams
        self._live: OrderedDict[tuple[str, int], soxr.ResampleStream] = OrderedDict()

    def __len__(self) -> int:
        return len(self._live)

    def reset(self, stream: str) -> None:
        for k in [k for k in self._live if k[0] == stream]:
            del self._live[k]

    def process(self, stream: str, samples: Samples, *, sr_in: int) -> Samples:
        if sr_in == self.sr_out:
            return samples
        k = (stream, sr_in)
        resampler = self._live.get(k)
        if resampler is None:
            self.reset(stream)
            resampler = soxr.ResampleStream(sr_in, self.sr_out, 1, dtype="float32", quality="HQ")
            self._live[k] = resampler
            while len(self._live) > self._max:
                self._live.popitem(last=False)
        else:
            self._live.move_to_end(k)
        out: Samples = resampler.resample_chunk(np.ascontiguousarray(samples, dtype=np.float32))
        return out
