"""Feature engine: parity with librosa's reference computations on the same frames."""

import itertools

import librosa
import numpy as np
import pytest

from workers.core.audio import FEATURE_NAMES, StreamingExtractor, StreamState, extract
from workers.core.audio.filters import chroma_filterbank, mel_filterbank

SR = 22050
N = SR // 2
T = np.arange(N) / SR
RNG = np.random.default_rng(7)


def _speech_like() -> np.ndarray:
    noise = RNG.standard_normal(N)
    formant = np.convolve(noise, np.hanning(40), mode="same")
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4 * T))
    return 0.1 * formant * syllables


#: A -60 dB noise floor, as any recording has: without it a pure tone's empty bands hold
#: only the FFT's rounding noise (~1e-14), where spectral shape features are ill-defined.
FLOOR = 1e-3 * RNG.standard_normal(N)
SIGNALS = {
    "sine": 0.5 * np.sin(2 * np.pi * 440 * T) + FLOOR,
    "chord": sum(0.2 * np.sin(2 * np.pi * f * T) for f in (261.63, 329.63, 392.0)) + FLOOR,
    "noise": 0.1 * RNG.standard_normal(N),
    "speech_like": _speech_like(),
    "clipped": np.clip(2.0 * np.sin(2 * np.pi * 220 * T), -1, 1) + FLOOR,
    "silence": np.zeros(N),
}
KW = dict(n_fft=2048, hop_length=512, center=False)


def reference(y: np.ndarray) -> dict[str, float]:
    """One librosa call per feature, on the same frames (center=False)."""
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, **KW))
    ref = {
        "rms": librosa.feature.rms(y=y, frame_length=2048, hop_length=512, center=False).mean(),
        "spectral_centroid": librosa.feature.spectral_centroid(y=y, sr=SR, **KW).mean(),
        "spectral_bandwidth": librosa.feature.spectral_bandwidth(y=y, sr=SR, **KW).mean(),
        "spectral_rolloff": librosa.feature.spectral_rolloff(y=y, sr=SR, **KW).mean(),
        "spectral_flatness": librosa.feature.spectral_flatness(y=y, **KW).mean(),
        "onset_strength": librosa.onset.onset_strength(S=mel_db, sr=SR, center=False)[1:].mean(),
    }
    contrast = librosa.feature.spectral_contrast(y=y, sr=SR, **KW).mean(axis=1)
    ref |= {f"contrast_{i:02d}": v for i, v in enumerate(contrast)}
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=20).mean(axis=1)
    ref |= {f"mfcc_{i:02d}": v for i, v in enumerate(mfcc)}
    chroma = librosa.feature.chroma_stft(y=y, sr=SR, tuning=0.0, **KW).mean(axis=1)
    ref |= {f"chroma_{i:02d}": v for i, v in enumerate(chroma)}
    return {k: float(v) for k, v in ref.items()}


#: Absolute tolerance per feature family, on top of a 1e-4 relative tolerance.
ATOL = {
    "rms": 1e-6,
    "spectral": 0.05,
    "onset": 1e-3,
    "contrast": 1e-3,
    "mfcc": 1e-3,
    "chroma": 1e-4,
}


def _atol(name: str) -> float:
    return next(v for k, v in ATOL.items() if name.startswith(k))


def test_filterbanks_equal_librosa() -> None:
    np.testing.assert_allclose(
        mel_filterbank(sr=SR, n_fft=2048),
        librosa.filters.mel(sr=SR, n_fft=2048),
        rtol=1e-5,
        atol=1e-8,
    )
    np.testing.assert_allclose(
        chroma_filterbank(sr=SR, n_fft=2048),
        librosa.filters.chroma(sr=SR, n_fft=2048),
        rtol=1e-5,
        atol=1e-8,
    )
    np.testing.assert_allclose(
        mel_filterbank(sr=16000, n_fft=1024, n_mels=40),
        librosa.filters.mel(sr=16000, n_fft=1024, n_mels=40),
        rtol=1e-5,
        atol=1e-8,
    )


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_parity_with_librosa(name: str) -> None:
    y = SIGNALS[name]
    ours = extract(y, sr=SR)
    ref = reference(y)
    if name == "silence":  # spectral shape of digital silence is undefined; compare levels only
        ref = {k: v for k, v in ref.items() if k in ("rms", "spectral_flatness")}
    mismatches = {
        feature: (ours[feature], expected)
        for feature, expected in ref.items()
        if not np.isclose(ours[feature], expected, rtol=1e-4, atol=_atol(feature))
    }
    assert not mismatches


def test_zero_crossing_rate() -> None:
    y = SIGNALS["sine"]
    ref = librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512, center=False)
    assert extract(y, sr=SR)["zcr"] == pytest.approx(float(ref.mean()), abs=1e-3)


def test_every_feature_is_published_finite() -> None:
    for y in SIGNALS.values():
        features = extract(y, sr=SR)
        assert tuple(features) == FEATURE_NAMES
        assert all(np.isfinite(v) for v in features.values())


def test_short_block_is_padded_not_rejected() -> None:
    assert extract(np.ones(100) * 0.1, sr=SR)["rms"] > 0


@pytest.mark.parametrize("sr", [16000, 22050, 48000])
def test_loudness_matches_pyloudnorm(sr: int) -> None:
    import pyloudnorm

    t = np.arange(3 * sr) / sr
    for amplitude, freq in ((1.0, 997.0), (0.1, 100.0), (0.3, 3000.0)):
        if freq >= sr / 2:
            continue
        y = amplitude * np.sin(2 * np.pi * freq * t)
        expected = pyloudnorm.Meter(sr).integrated_loudness(y)
        features = extract(y.astype(np.float32), sr=sr)
        assert features["lufs_short_term"] == pytest.approx(expected, abs=0.05)
        assert features["lufs_momentary"] == pytest.approx(expected, abs=0.05)


def _chunks(y: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    edges = np.cumsum([0, *sizes])
    return [y[a:b] for a, b in itertools.pairwise(edges) if a < len(y)]


@pytest.mark.parametrize(
    "sizes", [[11025] * 4, [100, 5000, 3, 2048, 20000, 17000], [513] * 90, [44100]]
)
def test_chunked_stream_gives_the_whole_signal_frames(sizes: list[int]) -> None:
    """Frame-averaged features of the chunks, weighted by frames, equal the whole signal's."""
    y = SIGNALS["chord"][:N] if sum(sizes) <= N else np.tile(SIGNALS["chord"], 5)[: sum(sizes)]
    y = y.astype(np.float32)
    whole = extract(y, sr=SR)
    extractor, state = StreamingExtractor(sr=SR), StreamState()
    weighted: dict[str, float] = {}
    for chunk in _chunks(y, sizes):
        before = state.frames_seen
        state, features = extractor.step(state, chunk)
        frames = state.frames_seen - before
        for name in ("rms", "spectral_centroid", "zcr", "mfcc_01", "chroma_00"):
            weighted[name] = weighted.get(name, 0.0) + frames * features[name]
    assert state.frames_seen == 1 + (len(y) - 2048) // 512
    for name, total in weighted.items():
        assert total / state.frames_seen == pytest.approx(whole[name], rel=1e-3, abs=1e-4), name
    assert features["lufs_short_term"] == pytest.approx(whole["lufs_short_term"], abs=0.01)


def test_state_survives_serialisation_mid_stream() -> None:
    y = (SIGNALS["speech_like"] * 3).astype(np.float32)
    extractor = StreamingExtractor(sr=SR)
    state, _ = extractor.step(StreamState(seq=0), y[:7000])
    restored = StreamState.from_bytes(state.to_bytes())
    assert len(state.to_bytes()) < 16 * 1024
    _, direct = extractor.step(state, y[7000:])
    _, resumed = extractor.step(restored, y[7000:])
    assert direct == resumed
