"""musicnn's input: a log-compressed mel spectrogram at 16 kHz, framed across chunks.

The network was trained on ``log10(1 + 10000·mel)`` of librosa's power mel spectrogram
(n_fft 512, hop 256, 96 Slaney bands, Hann window, centred frames) computed in float16.
This module computes the same in numpy, and keeps the float16 rounding so its inputs are
the reference's, bit for bit, with one deliberate difference: where the reference's
float16 product ``10000·mel`` overflows to infinity (mel power above 6.55, loud tonal
sound), this saturates at float16's largest value instead of feeding ``inf`` to the
network.

Streaming: a stream's samples are framed as one signal (the first frame centred on its
first sample), whatever its chunk sizes; the samples after the last whole frame are the
carry.

>>> import numpy as np
>>> frames, carry = log_mel_frames(np.zeros(16000, np.float32), carry=None)
>>> frames.shape, carry.shape
((62, 96), (384,))
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

__all__ = ["HOP", "N_FFT", "N_MELS", "SR", "log_mel_frames", "mel_filters"]

SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
_F16_MAX = float(np.finfo(np.float16).max)


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa's."""
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0
    mels = hz / f_sp
    high = hz >= min_log_hz
    mels[high] = min_log_mel + np.log(hz[high] / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0
    hz = f_sp * mels
    high = mels >= min_log_mel
    hz[high] = min_log_hz * np.exp(logstep * (mels[high] - min_log_mel))
    return hz


@functools.cache
def mel_filters() -> npt.NDArray[np.float32]:
    """(96, 257) Slaney-normalised triangular filters from 0 Hz to 8 kHz."""
    fft_hz = np.linspace(0.0, SR / 2, 1 + N_FFT // 2)
    low, high = _hz_to_mel(np.array([0.0, SR / 2.0]))
    edges = _mel_to_hz(np.linspace(float(low), float(high), N_MELS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


@functools.cache
def _window() -> npt.NDArray[np.float32]:
    n = np.arange(N_FFT)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)).astype(np.float32)  # periodic Hann


def log_mel_frames(
    samples: npt.NDArray[np.float32], *, carry: npt.NDArray[np.float32] | None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The network-ready frames (n, 96) of ``samples`` (mono, 16 kHz) and the new carry.

    ``carry=None`` starts a stream: half a frame of zeros goes first, as librosa's centred
    framing pads a whole signal.
    """
    head = np.zeros(N_FFT // 2, np.float32) if carry is None else carry
    x = np.concatenate((head, np.asarray(samples, np.float32)))
    n = 0 if x.shape[0] < N_FFT else 1 + (x.shape[0] - N_FFT) // HOP
    if n == 0:
        return np.zeros((0, N_MELS), np.float32), x
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][:n]
    spectrum = np.fft.rfft(frames * _window(), axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    mel = (power @ mel_filters().T).astype(np.float16)
    # the reference's float16 arithmetic, saturating where it would overflow to inf
    scaled = np.minimum(mel.astype(np.float32) * 10000.0, _F16_MAX).astype(np.float16)
    logged = np.log10(scaled + np.float16(1)).astype(np.float32)
    return logged, np.ascontiguousarray(x[n * HOP :])
