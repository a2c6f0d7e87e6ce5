"""Mel and chroma filterbanks, computed in NumPy with librosa's definitions.

librosa builds the same matrices but its first call pays ~10 s of numba compilation;
these take milliseconds and are cached per (sr, n_fft). Parity with
``librosa.filters.mel`` (Slaney scale and norm) and ``librosa.filters.chroma`` is tested.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

__all__ = ["chroma_filterbank", "hz_to_mel", "mel_filterbank", "mel_to_hz"]

Matrix = npt.NDArray[np.float64]

_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: npt.ArrayLike) -> Matrix:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(hz, dtype=np.float64)
    mels = f / _F_SP
    log_region = f >= _MIN_LOG_HZ
    return np.where(
        log_region,
        _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP,
        mels,
    )


def mel_to_hz(mel: npt.ArrayLike) -> Matrix:
    m = np.asarray(mel, dtype=np.float64)
    return np.where(
        m >= _MIN_LOG_MEL,
        _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)),
        _F_SP * m,
    )


@lru_cache(maxsize=16)
def mel_filterbank(*, sr: int, n_fft: int, n_mels: int = 128) -> Matrix:
    """(n_mels, 1 + n_fft // 2) triangular filters, area-normalised (``norm="slaney"``)."""
    fft_freqs = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    mel_freqs = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2))
    widths = np.diff(mel_freqs)
    ramps = np.subtract.outer(mel_freqs, fft_freqs)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_freqs[2 : n_mels + 2] - mel_freqs[:n_mels]))[:, None]
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=16)
def chroma_filterbank(*, sr: int, n_fft: int, n_chroma: int = 12) -> Matrix:
    """(n_chroma, 1 + n_fft // 2) Gaussian pitch-class filters (librosa's defaults, tuning 0)."""
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    octaves = np.log2(frequencies / (440.0 / 16.0))
    bins = n_chroma * octaves
    bins = np.concatenate(([bins[0] - 1.5 * n_chroma], bins))
    bin_widths = np.concatenate((np.maximum(bins[1:] - bins[:-1], 1.0), [1.0]))
    distance = np.subtract.outer(bins, np.arange(0, n_chroma, dtype=np.float64)).T
    half = round(n_chroma / 2.0)
    distance = np.remainder(distance + half + 10 * n_chroma, n_chroma) - half
    weights = np.exp(-0.5 * (2 * distance / bin_widths[None, :]) ** 2)
    norms = np.sqrt((weights**2).sum(axis=0, keepdims=True))
    weights = weights / np.where(norms < np.finfo(np.float64).tiny, 1.0, norms)
    weights *= np.exp(-0.5 * (((bins / n_chroma - 5.0) / 2.0) ** 2))[None, :]
    weights = np.roll(weights, -3 * (n_chroma // 12), axis=0)
    result = np.ascontiguousarray(weights[:, : 1 + n_fft // 2])
    result.setflags(write=False)
    return result
