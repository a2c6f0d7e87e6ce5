"""Feature engine: parity with librosa's reference computations on the same frames."""

import librosa
import numpy as np
import pytest

from workers.audio import FEATURE_NAMES, extract
from workers.audio.filters import chroma_filterbank, mel_filterbank

SR = 22050
N = SR // 2
T = np.arange(N) / SR
RNG = np.random.default_rng(7)


def _speech_like() -> np.ndarray:
    noise = RNG.standard_normal(N)
    formant = np.convolve(noise, np.hanning(40), mode="same")
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4 * T))
    return 0.1 * formant * syllables


SIGNALS = {
    "sine": 0.5 * np.sin(2 * np.pi * 440 * T),
    "chord": sum(0.2 * np.sin(2 * np.pi * f * T) for f in (261.63, 329.63, 392.0)),
    "noise": 0.1 * RNG.standard_normal(N),
    "speech_like": _speech_like(),
    "clipped": np.clip(2.0 * np.sin(2 * np.pi * 220 * T), -1, 1),
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
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=20).mean(axis=1)
    ref |= {f"mfcc_{i:02d}": v for i, v in enumerate(mfcc)}
    chroma = librosa.feature.chroma_stft(y=y, sr=SR, tuning=0.0, **KW).mean(axis=1)
    ref |= {f"chroma_{i:02d}": v for i, v in enumerate(chroma)}
    return {k: float(v) for k, v in ref.items()}


#: Absolute tolerance per feature family, on top of a 1e-4 relative tolerance.
ATOL = {"rms": 1e-6, "spectral": 0.05, "onset": 1e-3, "mfcc": 1e-3, "chroma": 1e-4}


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
