"""ITU-R BS.1770 loudness: K-weighting, momentary (400 ms) and short-term (3 s) LUFS.

The K-weighting filter (a high shelf and a high pass) is designed for any sample rate
with the RBJ biquad formulas, as pyloudnorm does (at 48 kHz they give the standard's
coefficients); its state carries across chunks.

>>> import numpy as np
>>> sr = 48000
>>> tone = np.sin(2 * np.pi * 997 * np.arange(sr) / sr)
>>> round(lufs(mean_square(k_weight(tone, sr=sr)[0])), 2)  # BS.1770: 0 dBFS 997 Hz = -3.01
-3.05
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

__all__ = [
    "BLOCK_S",
    "MOMENTARY_BLOCKS",
    "SHORT_TERM_BLOCKS",
    "SILENCE_LUFS",
    "k_filter",
    "k_weight",
    "lufs",
    "mean_square",
]

Floats = npt.NDArray[np.float64]
BLOCK_S = 0.1
MOMENTARY_BLOCKS = 4  # 400 ms
SHORT_TERM_BLOCKS = 30  # 3 s
SILENCE_LUFS = -120.0


def _biquad(*, kind: str, gain_db: float, q: float, fc: float, sr: int) -> tuple[Floats, Floats]:
    """RBJ cookbook high shelf / high pass, the design pyloudnorm uses for BS.1770."""
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * fc / sr
    cos_w0, alpha = math.cos(w0), math.sin(w0) / (2.0 * q)
    if kind == "high_shelf":
        root = 2.0 * math.sqrt(amp) * alpha
        b = np.array(
            [
                amp * ((amp + 1) + (amp - 1) * cos_w0 + root),
                -2.0 * amp * ((amp - 1) + (amp + 1) * cos_w0),
                amp * ((amp + 1) + (amp - 1) * cos_w0 - root),
            ]
        )
        a = np.array(
            [
                (amp + 1) - (amp - 1) * cos_w0 + root,
                2.0 * ((amp - 1) - (amp + 1) * cos_w0),
                (amp + 1) - (amp - 1) * cos_w0 - root,
            ]
        )
    else:  # high pass
        b = np.array([(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2])
        a = np.array([1 + alpha, -2.0 * cos_w0, 1 - alpha])
    return b / a[0], a / a[0]


@lru_cache(maxsize=16)
def k_filter(sr: int) -> tuple[Floats, Floats]:
    """The two K-weighting stages combined into one 4th-order filter (b, a)."""
    b1, a1 = _biquad(kind="high_shelf", gain_db=4.0, q=1 / math.sqrt(2), fc=1500.0, sr=sr)
    b2, a2 = _biquad(kind="high_pass", gain_db=0.0, q=0.5, fc=38.0, sr=sr)
    return np.convolve(b1, b2), np.convolve(a1, a2)


def k_weight(samples: npt.ArrayLike, *, sr: int, zi: Floats | None = None) -> tuple[Floats, Floats]:
    """K-weighted samples and the filter state to carry into the next chunk."""
    b, a = k_filter(sr)
    state = np.zeros(4) if zi is None else zi
    out, new_state = lfilter(b, a, np.asarray(samples, dtype=np.float64), zi=state)
    return out, new_state


def mean_square(samples: Floats) -> float:
    return float(np.mean(samples * samples)) if samples.size else 0.0


def lufs(mean_sq: float) -> float:
    """Loudness of a mono mean square: -0.691 + 10 log10(z), floored at -120 LUFS."""
    return -0.691 + 10.0 * math.log10(mean_sq) if mean_sq > 1e-12 else SILENCE_LUFS
