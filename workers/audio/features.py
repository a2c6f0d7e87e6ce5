"""The feature engine: every spectral feature from one shared STFT of the block.

>>> import numpy as np
>>> sr = 22050
>>> tone = np.sin(2 * np.pi * 440 * np.arange(sr // 2) / sr).astype(np.float32)
>>> features = extract(tone, sr=sr)
>>> round(features["spectral_centroid"] / 10) * 10
440
>>> len(FEATURE_NAMES)
42
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy.fft import dct

from workers.audio.filters import chroma_filterbank, mel_filterbank

N_FFT = 2048
HOP = 512
N_MELS = 128
N_MFCC = 20
N_CHROMA = 12
ROLL_PERCENT = 0.85
_AMIN = 1e-10
_TOP_DB = 80.0

FEATURE_NAMES: tuple[str, ...] = (
    "rms",
    "rms_db",
    "peak_db",
    "zcr",
    "dc_offset",
    "spectral_centroid",
    "spectral_bandwidth",
    "spectral_rolloff",
    "spectral_flatness",
    "onset_strength",
    *(f"mfcc_{i:02d}" for i in range(N_MFCC)),
    *(f"chroma_{i:02d}" for i in range(N_CHROMA)),
)

Floats = npt.NDArray[np.float64]


def frame(samples: npt.NDArray[np.floating], *, n_fft: int = N_FFT, hop: int = HOP) -> Floats:
    """(n_frames, n_fft) view of the block; a block shorter than one frame is zero-padded."""
    x = np.asarray(samples, dtype=np.float64)
    if x.shape[0] < n_fft:
        x = np.pad(x, (0, n_fft - x.shape[0]))
    windows = np.lib.stride_tricks.sliding_window_view(x, n_fft)
    return windows[::hop]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class FeatureEngine:
    """Precomputed window, filterbanks and frequencies for one (sr, n_fft, hop)."""

    sr: int
    n_fft: int = N_FFT
    hop: int = HOP
    window: Floats = field(init=False, repr=False)
    mel: Floats = field(init=False, repr=False)
    chroma: Floats = field(init=False, repr=False)
    freqs: Floats = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # A periodic Hann window, as scipy.signal.get_window("hann") and librosa use.
        n = np.arange(self.n_fft)
        object.__setattr__(self, "window", 0.5 - 0.5 * np.cos(2 * np.pi * n / self.n_fft))
        object.__setattr__(self, "mel", mel_filterbank(sr=self.sr, n_fft=self.n_fft, n_mels=N_MELS))
        object.__setattr__(
            self, "chroma", chroma_filterbank(sr=self.sr, n_fft=self.n_fft, n_chroma=N_CHROMA)
        )
        object.__setattr__(self, "freqs", np.linspace(0, self.sr / 2, 1 + self.n_fft // 2))

    def extract(self, samples: npt.NDArray[np.floating]) -> dict[str, float]:
        frames = frame(samples, n_fft=self.n_fft, hop=self.hop)
        magnitude = np.abs(np.fft.rfft(frames * self.window, axis=1)).T  # (bins, frames)
        power = magnitude**2
        out: dict[str, float] = {}

        rms_frames = np.sqrt(np.mean(frames**2, axis=1))
        rms = float(rms_frames.mean())
        out["rms"] = rms
        out["rms_db"] = float(20 * np.log10(max(rms, 1e-10)))
        x = np.asarray(samples, dtype=np.float64)
        out["peak_db"] = float(
            20 * np.log10(max(float(np.max(np.abs(x))) if x.size else 0.0, 1e-10))
        )
        signs = np.signbit(frames)
        out["zcr"] = float(np.mean(signs[:, 1:] != signs[:, :-1]))
        out["dc_offset"] = float(x.mean()) if x.size else 0.0

        total = magnitude.sum(axis=0)
        safe_total = np.where(total > 0, total, 1.0)
        centroid = (self.freqs[:, None] * magnitude).sum(axis=0) / safe_total
        out["spectral_centroid"] = float(centroid.mean())
        normalised = magnitude / safe_total
        deviation = (self.freqs[:, None] - centroid[None, :]) ** 2
        out["spectral_bandwidth"] = float(np.sqrt((normalised * deviation).sum(axis=0)).mean())
        cumulative = np.cumsum(magnitude, axis=0)
        threshold = ROLL_PERCENT * cumulative[-1]
        rolloff_bin = np.argmax(cumulative >= threshold[None, :], axis=0)
        out["spectral_rolloff"] = float(self.freqs[rolloff_bin].mean())
        clipped = np.maximum(_AMIN, power)
        flatness = np.exp(np.mean(np.log(clipped), axis=0)) / np.mean(clipped, axis=0)
        out["spectral_flatness"] = float(flatness.mean())

        mel_db = _power_to_db(self.mel @ power)
        onset = (
            np.maximum(0.0, np.diff(mel_db, axis=1)).mean(axis=0)
            if mel_db.shape[1] > 1
            else np.zeros(1)
        )
        out["onset_strength"] = float(onset.mean())
        mfcc = _dct_matrix(N_MFCC, N_MELS) @ mel_db
        for i, value in enumerate(mfcc.mean(axis=1)):
            out[f"mfcc_{i:02d}"] = float(value)

        chroma = self.chroma @ power
        peak = chroma.max(axis=0, keepdims=True)
        chroma = chroma / np.where(peak > np.finfo(np.float64).tiny, peak, 1.0)
        for i, value in enumerate(chroma.mean(axis=1)):
            out[f"chroma_{i:02d}"] = float(value)
        return out


def _power_to_db(power: Floats) -> Floats:
    db = 10.0 * np.log10(np.maximum(_AMIN, power))
    return np.maximum(db, db.max() - _TOP_DB) if db.size else db


@lru_cache(maxsize=4)
def _dct_matrix(n_out: int, n_in: int) -> Floats:
    """Orthonormal DCT-II as a matrix (first n_out rows), so MFCC is one matmul."""
    matrix: Floats = dct(np.eye(n_in), type=2, norm="ortho", axis=0)[:n_out]
    return matrix


@lru_cache(maxsize=8)
def engine(sr: int) -> FeatureEngine:
    return FeatureEngine(sr=sr)


def extract(samples: npt.NDArray[np.floating], *, sr: int) -> Mapping[str, float]:
    """Full feature set of one mono block at ``sr`` (frames of 2048, hop 512, no centring)."""
    return engine(sr).extract(samples)
