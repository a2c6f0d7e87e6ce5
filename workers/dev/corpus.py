"""An audio test corpus rendered by real programs: music by sox, speech by espeak-ng
(both Debian packages), with faults injected into some chunks.

Music: chord sequences of sox's synthesised instruments (plucked strings, organ-like
square and sawtooth waves, a triangle lead), at several tempi and keys, with reverb or
without. Speech: sentences spoken by espeak-ng in four voices and two rates (its pauses
between words are digital silence, which a naive dropout rule mistakes for dropouts).
Each clip becomes a stream of 0.5 s chunks; faults are injected into chunks after the
first few: 20-40 ms dropouts cut mid-waveform, clipping, dead air, noise bursts.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["FAULTS", "CorpusChunk", "available", "chunks", "inject", "music", "speech"]

FAULTS = ("dropout", "clipping", "dead_air", "noise_burst")
SENTENCES = (
    "The quick brown fox jumps over the lazy dog, then rests for a while in the sun.",
    "Streaming audio arrives in small chunks, and every one of them must be checked.",
    "Please remember to bring the blue folder, the red pen, and two cups of coffee.",
    "In the morning the market opens early; by noon the square is full of people.",
    "Numbers like three hundred and forty two are spoken slowly and very clearly.",
    "She said that the concert was wonderful, although the hall was rather cold.",
)
VOICES = ("en", "en-us", "en-gb-scotland", "en+f3")
INSTRUMENTS = ("pluck", "square", "sawtooth", "triangle")
Floats = npt.NDArray[np.float32]


def available() -> bool:
    return shutil.which("sox") is not None and shutil.which("espeak-ng") is not None


def _raw(inputs: list[str], effects: list[str], sr: int, data: bytes | None = None) -> Floats:
    """Run sox (``inputs``, then 32-bit float mono at ``sr`` on stdout, then ``effects``)."""
    out = subprocess.run(
        [
            "sox",
            *inputs,
            "-t",
            "raw",
            "-e",
            "floating-point",
            "-b",
            "32",
            "-c",
            "1",
            "-r",
            str(sr),
            "-",
            *effects,
        ],
        input=data,
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(out, dtype="<f4").copy()


def music(index: int, *, sr: int, seconds: float = 20.0) -> Floats:
    """A chord sequence by sox: instrument, tempo, key and reverb vary with ``index``."""
    rng = np.random.default_rng(1000 + index)
    instrument = INSTRUMENTS[(index // 2) % len(INSTRUMENTS)]  # clips alternate with speech
    beat = float(rng.choice([0.25, 0.4, 0.5, 0.75]))
    key = int(rng.integers(-12, 6))
    progression = [(0, 4, 7), (5, 9, 12), (7, 11, 14), (-3, 0, 4)]
    parts: list[Floats] = []
    total = 0.0
    while total < seconds:
        chord = progression[int(rng.integers(0, 4))]
        voices = [x for n in chord for x in (instrument, f"%{key + n}")]
        effects = ["fade", "q", "0.01", str(beat), str(beat * 0.3), "gain", "-12"]
        if index % 3 == 0:
            effects += ["reverb", "40"]
        synth = ["synth", str(beat), *voices, "remix", "-"]
        parts.append(_raw(["-r", "44100", "-c", "3", "-n"], [*synth, *effects], sr))
        total += beat
    clip = np.concatenate(parts)[: int(seconds * sr)]
    return (clip / max(1e-6, float(np.abs(clip).max())) * 0.6).astype(np.float32)


def speech(index: int, *, sr: int, seconds: float = 20.0) -> Floats:
    """Sentences spoken by espeak-ng, one after another, resampled to ``sr`` by sox."""
    # clips alternate with music: every voice at both speaking rates (and, in ``chunks``,
    # at both sample rates)
    voice = VOICES[(index // 2) % len(VOICES)]
    rate = (175, 140)[(index // 16) % 2]
    parts: list[Floats] = []
    i = index
    while sum(p.size for p in parts) < seconds * sr:
        wav = subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(rate), "--stdout", SENTENCES[i % len(SENTENCES)]],
            check=True,
            capture_output=True,
        ).stdout
        parts.append(_raw(["-t", "wav", "-"], [], sr, data=wav))
        i += 1
    return np.concatenate(parts)[: int(seconds * sr)].astype(np.float32)


@dataclass(frozen=True, slots=True)
class CorpusChunk:
    stream: str
    kind: str  # music | speech
    seq: int
    sample_rate: int
    samples: Floats
    fault: str | None


def inject(chunk: Floats, fault: str, rng: np.random.Generator, sr: int) -> Floats:
    """A copy of ``chunk`` with one ``fault`` of ``FAULTS`` in it, placed by ``rng``."""
    out = chunk.copy()
    if fault == "dropout":  # digital zeros cut into the waveform, and back as abruptly
        # anywhere the sound is on (20 ms envelope above a fifth of its peak), any phase
        window = sr // 50
        envelope = np.sqrt(np.convolve(out * out, np.ones(window) / window, mode="same"))
        audible = np.flatnonzero(envelope > 0.2 * float(envelope.max()))
        middle = audible[(audible > sr // 20) & (audible < out.size - sr // 10)]
        start = int(rng.choice(middle)) if middle.size else out.size // 3
        out[start : start + int(rng.uniform(0.020, 0.040) * sr)] = 0.0
    elif fault == "clipping":
        out = np.clip(out * rng.uniform(3.0, 6.0) / max(1e-6, float(np.abs(out).max())), -1.0, 1.0)
    elif fault == "dead_air":
        out[:] = 0.0
    else:  # a burst of noise over part of the chunk
        start = int(rng.integers(0, out.size // 2))
        width = int(rng.uniform(0.1, 0.3) * sr)
        out[start : start + width] += rng.uniform(-0.5, 0.5, min(width, out.size - start))
        out = np.clip(out, -1.0, 1.0)
    return out.astype(np.float32)


def chunks(
    *,
    streams: int = 12,
    seconds: float = 20.0,
    fault_rate: float = 0.15,
    seed: int = 0,
    first: int = 0,
) -> Iterator[CorpusChunk]:
    """Half music, half speech (clips ``first`` on), interleaved like live streams; faults
    after chunk 4."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(first, first + streams):
        kind = "music" if i % 2 == 0 else "speech"
        # espeak-ng speaks at 22.05 kHz: declared at 44.1 kHz it would be upsampled audio,
        # which rate_mismatch rightly flags; speech streams stay at or below its rate
        sr = (16000, 22050, 44100)[i % 3] if kind == "music" else (16000, 22050)[(i // 8) % 2]
        samples = (
            music(i, sr=sr, seconds=seconds)
            if kind == "music"
            else speech(i, sr=sr, seconds=seconds)
        )
        clips.append((f"{kind}:{i}", kind, sr, samples))
    n = int(seconds * 2)
    for seq in range(n):
        for stream, kind, sr, samples in clips:
            chunk = samples[seq * sr // 2 : (seq + 1) * sr // 2]
            if chunk.size < sr // 2:
                continue
            fault = None
            if seq >= 4 and rng.random() < fault_rate and float(np.abs(chunk).max()) > 0.05:
                fault = str(rng.choice(FAULTS))
                chunk = inject(chunk, fault, rng, sr)
            yield CorpusChunk(stream, kind, seq, sr, chunk, fault)
