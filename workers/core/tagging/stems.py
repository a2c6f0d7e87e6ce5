"""How much voice, harmony and percussion a window holds, without separation weights.

On the window's own mel spectrogram (the tagger's input, 187 frames × 96 bands, turned
back into band energies), in magnitudes:

1. **Voice, by what does not repeat** (REPET-SIM, Rafii and Pardo 2012): each frame's
   background is the median of the frames most like it (cosine similarity, at least
   ``GAP`` frames away so a sustained sound does not explain itself), capped by the frame;
   what is left above it does not repeat: the voice.
2. **Harmony and percussion in the background** (median-filtering HPSS, FitzGerald
   2010): harmonic sound is smooth along time, percussive sound along frequency; each
   background bin is shared between the two by soft (Wiener) masks.

Shares are of the energy the three parts hold, so they sum to 1. What it cannot do:
separate audio (that needs weights we cannot ship), or tell a lead instrument playing a
melody that never repeats from a voice.

>>> import numpy as np
>>> held = np.zeros((187, 96), np.float32)
>>> held[:, 20] = 2.0  # one band, steady: a held note
>>> shares(stem_energies(held))
{'vocals': 0.0, 'harmonic': 1.0, 'percussive': 0.0}
"""

from __future__ import annotations

import functools

import bottleneck as bn
import numpy as np
import numpy.typing as npt

from workers.core.tagging.melspec import N_MELS, SR, _hz_to_mel, _mel_to_hz

__all__ = ["STEMS", "shares", "stem_energies"]

STEMS = ("vocals", "harmonic", "percussive")
GAP = 16  # frames (0.256 s) between a frame and those that may explain it
NEIGHBOURS = 10
HARMONIC_FRAMES = 45  # 0.72 s along time
PERCUSSIVE_BANDS = 17
MASK_POWER = 2  # Wiener masks


@functools.cache
def _band_widths() -> npt.NDArray[np.float64]:
    """Hz under each Slaney-normalised band: mel power × width ≈ the band's energy."""
    low, high = _hz_to_mel(np.array([0.0, SR / 2.0]))
    edges = _mel_to_hz(np.linspace(float(low), float(high), N_MELS + 2))
    return (edges[2:] - edges[:-2]) / 2.0


def _median(x: npt.NDArray[np.float64], size: int, *, axis: int) -> npt.NDArray[np.float64]:
    """A centred running median of odd ``size`` along ``axis``, edges repeated (as
    ``scipy.ndimage.median_filter`` with ``mode="nearest"``): bottleneck's trailing
    median over the padded rows, a quarter of the CPU of either numpy or scipy here."""
    pad = [(0, 0), (0, 0)]
    pad[axis] = (size // 2, size // 2)
    trailing: npt.NDArray[np.float64] = bn.move_median(np.pad(x, pad, mode="edge"), size, axis=axis)
    return trailing[size - 1 :] if axis == 0 else trailing[:, size - 1 :]


def stem_energies(frames: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """Energies (vocals, harmonic, percussive) of one window of log-mel ``frames``."""
    energy = np.maximum(np.power(10.0, frames.astype(np.float64)) - 1.0, 0.0) / 10000.0
    magnitude = np.sqrt(energy * _band_widths())
    n = magnitude.shape[0]
    norms = np.linalg.norm(magnitude, axis=1) + 1e-12
    unit = magnitude / norms[:, None]
    similarity = unit @ unit.T
    near = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :]) < GAP
    similarity[near] = -np.inf
    k = min(NEIGHBOURS, max(n - 2 * GAP, 1))
    chosen = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    middle = (k - 1) // 2, k // 2
    alike = np.partition(magnitude[chosen], middle, axis=1)[:, middle, :].mean(axis=1)
    background = np.minimum(alike, magnitude)
    voice = magnitude - background
    smooth_time = _median(background, HARMONIC_FRAMES, axis=0)
    smooth_freq = _median(background, PERCUSSIVE_BANDS, axis=1)
    h2, p2 = smooth_time**MASK_POWER, smooth_freq**MASK_POWER
    harmonic_mask = h2 / np.maximum(h2 + p2, 1e-30)
    power = background**2
    return np.array(
        [
            float((voice**2).sum()),
            float((power * harmonic_mask).sum()),
            float((power * (1.0 - harmonic_mask)).sum()),
        ]
    )


def shares(energies: npt.NDArray[np.float64]) -> dict[str, float]:
    """``{"vocals": …, "harmonic": …, "percussive": …}``, summing to 1 (all 0 in silence)."""
    total = float(energies.sum())
    if total <= 0:
        return dict.fromkeys(STEMS, 0.0)
    return {name: round(float(e) / total, 4) for name, e in zip(STEMS, energies, strict=True)}
