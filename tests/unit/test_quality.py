import numpy as np
import pytest

from workers.core.audio import quality_flags
from workers.core.audio.quality import longest_run

SR = 16000
T = np.arange(SR // 2) / SR
TONE = (0.3 * np.sin(2 * np.pi * 440 * T)).astype(np.float32)[:, None]


@pytest.mark.parametrize(("mask", "run"), [([], 0), ([0, 0], 0), ([1, 0, 1, 1], 2), ([1, 1, 1], 3)])
def test_longest_run(mask: list[int], run: int) -> None:
    assert longest_run(np.array(mask, dtype=bool)) == run


def flags(samples: np.ndarray) -> dict[str, bool]:
    return quality_flags(samples.astype(np.float32), sr=SR)


def test_clean_tone_has_no_flags() -> None:
    assert not any(flags(TONE).values())


def test_silence() -> None:
    assert flags(np.zeros((SR // 2, 1)))["silence"]
    assert flags(TONE * 1e-4)["silence"]


def test_clipping_needs_a_run_of_full_scale_samples() -> None:
    assert flags(np.clip(TONE * 10, -1, 1))["clipping"]
    single_peak = TONE.copy()
    single_peak[100] = 1.0
    assert not flags(single_peak)["clipping"]


def test_clipping_in_one_channel_of_stereo() -> None:
    stereo = np.hstack([TONE, np.clip(TONE * 10, -1, 1)])
    assert flags(stereo)["clipping"]


def test_dropout_is_silence_inside_audio() -> None:
    gap = TONE.copy()
    gap[2000 : 2000 + int(0.05 * SR)] = 0
    result = flags(gap)
    assert result["dropout"] and not result["silence"]
    short = TONE.copy()
    short[2000:2010] = 0
    assert not flags(short)["dropout"]


def test_dc_offset() -> None:
    assert flags(TONE + 0.2)["dc_offset"]


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return (0.2 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize(("true_rate", "declared"), [(22050, 48000), (16000, 44100), (8000, 48000)])
def test_upsampled_content_is_a_rate_mismatch(true_rate: int, declared: int) -> None:
    import soxr

    content = soxr.resample(_noise(true_rate // 2), true_rate, declared).astype(np.float32)
    assert quality_flags(content[:, None], sr=declared)["rate_mismatch"]


@pytest.mark.parametrize("sr", [16000, 44100, 48000])
def test_full_band_or_tonal_content_is_not_a_mismatch(sr: int) -> None:
    t = np.arange(sr // 2) / sr
    for signal in (_noise(sr // 2), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)):
        assert not quality_flags(signal[:, None], sr=sr)["rate_mismatch"]


def test_silence_at_the_end_is_not_a_dropout() -> None:
    ending = TONE.copy()
    ending[-4000:] = 0  # the track ends; no recovery within the chunk
    assert not flags(ending)["dropout"]
    starting = TONE.copy()
    starting[:4000] = 0
    assert not flags(starting)["dropout"]


@pytest.mark.parametrize("phase_ms", [0.0, 0.3, 0.6, 1.1])
def test_a_cut_mid_waveform_is_a_dropout_at_any_phase(phase_ms: float) -> None:
    start = 4000 + int(phase_ms * SR / 1000)
    cut = TONE.copy()
    cut[start : start + int(0.025 * SR)] = 0
    assert flags(cut)["dropout"]


def test_a_pause_that_fades_out_and_in_is_not_a_dropout() -> None:
    """Speech: words fade out before a pause of digital silence and back in after it."""
    paused = TONE.copy()
    fade = int(0.03 * SR)
    start, end = 3000, 3000 + int(0.08 * SR)
    paused[start - fade : start, 0] *= np.linspace(1.0, 0.0, fade)
    paused[start:end] = 0
    paused[end : end + fade, 0] *= np.linspace(0.0, 1.0, fade)
    assert not flags(paused)["dropout"]
