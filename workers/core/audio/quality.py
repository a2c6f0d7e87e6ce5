"""Rule-based quality flags on one decoded chunk (before downmix and resampling).

>>> import numpy as np
>>> flags = quality_flags(np.zeros((4000, 1), np.float32), sr=8000)
>>> flags["silence"], flags["clipping"]
(True, False)
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from workers.core.audio.decode import downmix

__all__ = [
    "CLIP_LEVEL",
    "CLIP_RUN",
    "CUT_SHARE",
    "DC_OFFSET",
    "DROPOUT_LEVEL",
    "DROPOUT_MS",
    "EDGE_SHARE",
    "RATE_CUTOFF_SHARE",
    "RATE_FLOOR_DB",
    "SILENCE_DBFS",
    "abrupt_gap",
    "longest_run",
    "noisiest",
    "quality_flags",
    "rate_mismatch",
]

SILENCE_DBFS = -60.0
#: Samples at or above this magnitude count as full scale (s16 32767/32768 included).
CLIP_LEVEL = 0.999
#: Consecutive full-scale samples in one channel that make a clip.
CLIP_RUN = 3
#: A run of digital silence at least this long inside otherwise audible audio is a dropout.
DROPOUT_MS = 20.0
DROPOUT_LEVEL = 1e-4
#: A dropout cuts the waveform on both sides: the samples just before and just after the
#: silence are at least CUT_SHARE of the RMS over the CONTEXT_MS beside them, or (a cut
#: landing near a zero crossing) within EDGE_MS of each edge the signal reaches EDGE_SHARE
#: of it; a pause decays into silence, or grows out of it, on one side at least...
CONTEXT_MS, CUT_SHARE, EDGE_MS, EDGE_SHARE = 20.0, 0.05, 1.0, 0.5
#: ...the sound on both sides is the same (their log spectra correlate at least this much)...
CONTINUITY = 0.5
#: ...and the silence interrupts sound: each side's RMS is at least this share of the chunk's
INTERRUPTS = 0.02
DC_OFFSET = 0.05
#: Rate mismatch: content that stops dead (everything above is this far below the peak)...
RATE_FLOOR_DB = 90.0
#: ...below this fraction of the declared Nyquist frequency was resampled up from a lower rate.
RATE_CUTOFF_SHARE = 0.55
_RATE_FFT = 8192
#: Sub-blocks: the chunk is cut into blocks of SUB_MS at its own rate, and its noisiest
#: stretch is the NOISY_BLOCKS flattest audible ones (100 ms in all)
SUB_MS, NOISY_BLOCKS = 20.0, 5
#: a sub-block quieter than this RMS (−60 dBFS) is silence: its flatness means nothing
AUDIBLE_RMS = 1e-3


def _runs(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """(starts, ends) of the runs of True in a 1-D mask; ends are exclusive."""
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges[::2], edges[1::2]


def _same_sound(before: npt.NDArray[np.float32], after: npt.NDArray[np.float32]) -> bool:
    """The sound after a gap is the one before it, as a dropout leaves it: the log magnitude
    spectra of the two sides correlate at ``CONTINUITY`` or more (a vowel before a stop
    consonant's closure and the burst after it do not)."""
    size = max(before.shape[0], after.shape[0])
    window = np.hanning(size)
    spectra = [
        np.log(np.abs(np.fft.rfft(np.pad(side, (0, size - side.shape[0])) * window)) + 1e-6)
        for side in (before, after)
    ]
    return float(np.corrcoef(spectra[0], spectra[1])[0, 1]) >= CONTINUITY


def abrupt_gap(mono: npt.NDArray[np.float32], quiet: npt.NDArray[np.bool_], *, sr: int) -> bool:
    """A dropout: a run of digital silence (at least ``DROPOUT_MS``) that cuts the waveform
    where it was on both sides (a pause is entered or left through the sound's own decay
    or onset, its edge near zero on one side at least), between two sides that are the
    same sound and both part of the chunk's sound."""
    starts, ends = _runs(quiet)
    n, min_len = quiet.shape[0], DROPOUT_MS * sr / 1000.0
    edge, context = max(2, int(EDGE_MS * sr / 1000)), int(CONTEXT_MS * sr / 1000)
    chunk_rms = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64)))) if n else 0.0
    for start, end in zip(starts, ends, strict=True):
        if end - start < min_len or start < edge or end + edge > n:
            continue
        before, after = mono[max(0, start - context) : start], mono[end : end + context]
        rms_before = float(np.sqrt(np.mean(np.square(before, dtype=np.float64))))
        rms_after = float(np.sqrt(np.mean(np.square(after, dtype=np.float64))))
        samples_cut = (
            abs(float(mono[start - 1])) >= CUT_SHARE * rms_before
            and abs(float(mono[end])) >= CUT_SHARE * rms_after
        )
        edges_cut = (
            float(np.abs(mono[start - edge : start]).max()) >= EDGE_SHARE * rms_before
            and float(np.abs(mono[end : end + edge]).max()) >= EDGE_SHARE * rms_after
        )
        if (
            min(rms_before, rms_after) >= max(INTERRUPTS * chunk_rms, DROPOUT_LEVEL)
            and (samples_cut or edges_cut)
            and _same_sound(before, after)
        ):
            return True
    return False


def noisiest(mono: npt.NDArray[np.float32], *, sr: int) -> tuple[float, float]:
    """(flatness, dBFS) of the chunk's noisiest 100 ms: the spectral flatness its
    ``NOISY_BLOCKS`` flattest audible 20 ms sub-blocks all reach, and their RMS.

    Measured at the chunk's own rate, before resampling: a burst of noise fills the whole
    band, which a 16 kHz stream resampled to the model's rate leaves empty at the top, and
    a 100 ms burst inside a 500 ms chunk is not diluted by the chunk's other 400 ms.

    >>> sr = 16000
    >>> t = np.arange(sr // 2) / sr
    >>> tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    >>> noisy = tone.copy()
    >>> noisy[1000:3000] += np.random.default_rng(0).uniform(-0.5, 0.5, 2000).astype(np.float32)
    >>> [round(noisiest(x, sr=sr)[0], 2) for x in (tone, noisy)]
    [0.0, 0.38]
    """
    size = int(SUB_MS * sr / 1000)
    count = mono.shape[0] // size if size else 0
    if count < NOISY_BLOCKS:
        return 0.0, -200.0
    blocks = mono[: count * size].reshape(count, size).astype(np.float64)
    rms = np.sqrt(np.einsum("ij,ij->i", blocks, blocks) / size)
    power = np.abs(np.fft.rfft(blocks * np.hanning(size), axis=1)) ** 2
    power = np.maximum(power, 1e-20)
    flatness = np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)
    flatness = np.where(rms > AUDIBLE_RMS, flatness, 0.0)
    flattest = np.argpartition(flatness, count - NOISY_BLOCKS)[count - NOISY_BLOCKS :]
    level = float(np.sqrt(np.mean(np.square(rms[flattest]))))
    return float(flatness[flattest].min()), 20.0 * float(np.log10(max(level, 1e-10)))


def longest_run(mask: npt.NDArray[np.bool_]) -> int:
    """Length of the longest run of True in a 1-D mask."""
    if not mask.any():
        return 0
    starts, ends = _runs(mask)
    return int((ends - starts).max())


def quality_flags(
    samples: npt.NDArray[np.float32],
    *,
    sr: int,
    check_rate: bool = True,
    mono: npt.NDArray[np.float32] | None = None,
) -> dict[str, bool]:
    """Flags for one chunk of shape (frames, channels); ``mono``: its downmix, when the
    caller has it already."""
    mono = downmix(samples) if mono is None else mono
    rms = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64)))) if mono.size else 0.0
    silence = 20 * np.log10(max(rms, 1e-10)) < SILENCE_DBFS
    full_scale = np.abs(samples) >= CLIP_LEVEL
    clipping = any(longest_run(full_scale[:, c]) >= CLIP_RUN for c in range(samples.shape[1]))
    quiet = np.abs(mono) < DROPOUT_LEVEL
    # a cut to digital silence *and* an abrupt recovery: a pause that fades is no dropout
    dropout = (not silence) and abrupt_gap(mono, quiet, sr=sr)
    dc_offset = abs(float(mono.mean())) > DC_OFFSET if mono.size else False
    return {
        "silence": bool(silence),
        "clipping": bool(clipping),
        "dropout": bool(dropout),
        "dc_offset": bool(dc_offset),
        "rate_mismatch": check_rate and (not silence) and rate_mismatch(mono),
    }


@functools.cache
def _hann(n: int) -> npt.NDArray[np.float64]:
    return np.hanning(n)


def rate_mismatch(mono: npt.NDArray[np.float32]) -> bool:
    """True when the content ends in a brick wall well below the declared Nyquist frequency.

    That is what audio resampled up from a lower rate looks like (22.05 kHz content declared
    as 48 kHz stops dead at 11 kHz). Band-limited content without a wall (a bass line, a
    low tone) cannot be told apart from a true low-pass, so it is not flagged.
    """
    n = min(_RATE_FFT, 1 << (mono.shape[0].bit_length() - 1)) if mono.shape[0] else 0
    if n < 1024:
        return False
    block = mono[:n].astype(np.float64) * _hann(n)
    power = np.abs(np.fft.rfft(block)) ** 2
    level = 10 * np.log10(np.convolve(power, np.ones(8) / 8, mode="same") + 1e-30)
    loud = np.flatnonzero(level > level.max() - RATE_FLOOR_DB)
    cutoff = int(loud[-1]) / (power.shape[0] - 1)
    # a wall, not a slope: content right up to the cutoff, nothing at all past it
    near = level[max(0, int(loud[-1]) - power.shape[0] // 50) : int(loud[-1])]
    has_content_at_edge = near.size > 0 and near.max() > level.max() - 60.0
    return bool(0.1 < cutoff < RATE_CUTOFF_SHARE and has_content_at_edge)
