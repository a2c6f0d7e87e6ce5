"""Mixtures with known parts, for judging the stems: an espeak-ng voice over sox harmony
and sox percussion, each part's energy share known.

Percussion is a drum loop rendered by sox: a kick (a sine falling from 150 to 45 Hz), a
snare (band-passed pink noise) and a hi-hat (high-passed white noise), on a grid at the
clip's tempo with some hits left out. Harmony is ``corpus.music`` (sox's chords), voice
``corpus.speech``. ``mixture`` scales each part to a drawn share of the energy; the
instrumental twin of a mixture is the same harmony and percussion without the voice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from workers.dev import corpus

__all__ = ["Mixture", "drums", "mixture"]

Floats = npt.NDArray[np.float32]
SR = 16000


def _hit(effects: list[str], seconds: float) -> Floats:
    return corpus._raw(["-r", str(SR), "-n"], ["synth", str(seconds), *effects], SR)


def drums(index: int, *, seconds: float) -> Floats:
    """A drum loop: kick, snare and hi-hat on a sixteenth-note grid, tempo by ``index``."""
    rng = np.random.default_rng(5000 + index)
    step = float(rng.choice([0.11, 0.125, 0.14, 0.16]))
    kick = _hit(["sine", "150-45", "fade", "q", "0", "0.15", "0.12"], 0.15)
    snare = _hit(
        ["pinknoise", "fade", "q", "0.001", "0.15", "0.13", "bandpass", "1800", "1.5q"], 0.15
    )
    hat = _hit(["whitenoise", "fade", "q", "0", "0.06", "0.05", "highpass", "5000"], 0.06)
    out = np.zeros(int(seconds * SR) + SR, np.float32)
    for i in range(int(seconds / step)):
        at = int(i * step * SR)
        beat = i % 16
        for sound, hits, gain in (
            (kick, (0, 6, 8), 1.0),
            (snare, (4, 12), 0.6),
            (hat, range(0, 16, 2), 0.25),
        ):
            if beat in hits and rng.random() > 0.1:
                out[at : at + sound.size] += gain * sound
    return out[: int(seconds * SR)]


@dataclass(frozen=True)
class Mixture:
    audio: Floats  # 16 kHz mono
    instrumental: Floats  # the same without the voice
    #: the true shares of the energy (vocals, harmonic, percussive); instrumental: no voice
    shares: tuple[float, float, float]
    instrumental_shares: tuple[float, float, float]


def mixture(index: int, *, seconds: float = 12.0) -> Mixture:
    """Voice, harmony and percussion at drawn shares of the energy (each 0.1-0.7)."""
    rng = np.random.default_rng(7000 + index)
    parts = [
        corpus.speech(2 * index + 1, sr=SR, seconds=seconds),
        corpus.music(2 * index, sr=SR, seconds=seconds),
        drums(index, seconds=seconds),
    ]
    n = min(p.size for p in parts)
    parts = [p[:n].astype(np.float64) for p in parts]
    want = rng.dirichlet([2.0, 2.0, 2.0])
    want = np.clip(want, 0.1, 0.7)
    want /= want.sum()
    scaled = [
        p * np.sqrt(w / max(float(np.mean(p * p)), 1e-12)) for p, w in zip(parts, want, strict=True)
    ]
    energy = np.array([float(np.sum(p * p)) for p in scaled])
    mix = sum(scaled)
    instrumental = scaled[1] + scaled[2]
    peak = max(float(np.abs(mix).max()), float(np.abs(instrumental).max()), 1e-6) / 0.8
    true = energy / energy.sum()
    inst = np.array([0.0, energy[1], energy[2]]) / (energy[1] + energy[2])
    return Mixture(
        (mix / peak).astype(np.float32),
        (instrumental / peak).astype(np.float32),
        tuple(round(float(x), 4) for x in true),  # type: ignore[arg-type]
        tuple(round(float(x), 4) for x in inst),  # type: ignore[arg-type]
    )
