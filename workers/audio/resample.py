"""Resampling to the model rate with soxr (the same high-quality resampler librosa uses)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr


def resample(
    samples: npt.NDArray[np.float32], *, sr_in: int, sr_out: int
) -> npt.NDArray[np.float32]:
    """Mono float32 at ``sr_in`` -> mono float32 at ``sr_out`` (soxr "HQ")."""
    if sr_in == sr_out:
        return samples
    out: npt.NDArray[np.float32] = soxr.resample(samples, sr_in, sr_out, quality="HQ")
    return out.astype(np.float32, copy=False)
