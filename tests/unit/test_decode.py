import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.core.audio import decode_pcm, downmix, resample
from workers.core.chunks import header_text, parse_headers
from workers.core.errors import Reason, Rejected

GOOD = {
    "tenant": "acme",
    "stream": "s1",
    "seq": "3",
    "sample-rate": "44100",
    "channels": "2",
    "encoding": "s16le",
}


def test_parse_headers() -> None:
    h = parse_headers({**GOOD, "track": "t9", "ts": "1764000000000"})
    assert (h.tenant, h.stream, h.seq, h.sample_rate, h.channels, h.encoding, h.track, h.ts) == (
        "acme",
        "s1",
        3,
        44100,
        2,
        "s16le",
        "t9",
        1764000000000,
    )


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"tenant": None}, "tenant"),
        ({"seq": "-1"}, "seq"),
        ({"seq": "01"}, "seq"),
        ({"sample-rate": "7999"}, "sample-rate"),
        ({"sample-rate": "192001"}, "sample-rate"),
        ({"sample-rate": "1"}, "sample-rate"),
        ({"channels": "0"}, "channels"),
        ({"channels": "9"}, "channels"),
        ({"encoding": "mp3"}, "encoding"),
        ({"tenant": "../etc"}, "tenant"),
        ({"stream": "a b"}, "stream"),
    ],
)
def test_bad_headers(change: dict[str, str | None], word: str) -> None:
    headers = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(Rejected) as caught:
        parse_headers(headers)
    assert caught.value.reason is Reason.BAD_HEADERS
    assert word in caught.value.detail


@pytest.mark.parametrize("ts", ["0", "1764000000", "1764086400001"])
def test_event_time_out_of_range(ts: str) -> None:
    """Seconds instead of ms, or more than a day ahead of the clock."""
    with pytest.raises(Rejected) as caught:
        parse_headers({**GOOD, "ts": ts}, now_ms=1_764_000_000_000)
    assert caught.value.reason is Reason.TIMESTAMP_OUT_OF_RANGE
    assert parse_headers({**GOOD, "ts": "1764086400000"}, now_ms=1_764_000_000_000).ts


def test_header_text_rejects_non_utf8() -> None:
    with pytest.raises(Rejected) as caught:
        header_text([("tenant", b"\xff\xfe")])
    assert caught.value.reason is Reason.BAD_HEADERS


def test_decode_s16_interleaved() -> None:
    h = parse_headers(GOOD)
    raw = np.array([0, -32768, 16384, 32767], dtype="<i2").tobytes()
    samples = decode_pcm(raw, headers=h)
    assert samples.shape == (2, 2)
    np.testing.assert_allclose(samples, [[0, -1], [0.5, 32767 / 32768]])
    np.testing.assert_allclose(downmix(samples), [-0.5, (0.5 + 32767 / 32768) / 2])


def test_decode_f32() -> None:
    h = parse_headers({**GOOD, "encoding": "f32le", "channels": "1"})
    samples = decode_pcm(np.array([0.25, -0.5], "<f4").tobytes(), headers=h)
    np.testing.assert_allclose(samples[:, 0], [0.25, -0.5])


@pytest.mark.parametrize(
    ("payload", "encoding", "reason"),
    [
        (b"", "s16le", Reason.EMPTY_VALUE),
        (b"\x00\x01\x02", "s16le", Reason.TRUNCATED_PCM),
        (np.array([np.nan, 0], "<f4").tobytes(), "f32le", Reason.NON_FINITE_SAMPLES),
        (np.array([np.inf, 0], "<f4").tobytes(), "f32le", Reason.NON_FINITE_SAMPLES),
        (b"\x00" * (2 * 2 * 8000 * 11), "s16le", Reason.OVERSIZED),
    ],
)
def test_bad_payloads(payload: bytes, encoding: str, reason: Reason) -> None:
    h = parse_headers({**GOOD, "encoding": encoding, "sample-rate": "8000"})
    with pytest.raises(Rejected) as caught:
        decode_pcm(payload, headers=h)
    assert caught.value.reason is reason


@pytest.mark.parametrize("sr_in", [8000, 11025, 16000, 22050, 44100, 48000, 96000, 192000])
def test_resample_keeps_duration_and_pitch(sr_in: int) -> None:
    t = np.arange(sr_in // 2) / sr_in
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    out = resample(tone, sr_in=sr_in, sr_out=22050)
    assert abs(len(out) - 22050 // 2) <= 1
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 22050 / len(out) - 1000) < 5


header_values = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["0", "1", "8000", "44100", "s16le", "f32le", "acme", "2"]),
)


@settings(max_examples=300, deadline=None)
@given(
    payload=st.binary(max_size=4096),
    headers=st.dictionaries(st.sampled_from(list(GOOD)), header_values, max_size=8),
)
def test_any_bytes_and_headers_decode_or_are_rejected(
    payload: bytes, headers: dict[str, str]
) -> None:
    """Whatever arrives, the decoder returns finite samples or raises Rejected: nothing else."""
    try:
        h = parse_headers(headers)
        samples = decode_pcm(payload, headers=h)
    except Rejected as rejected:
        assert rejected.reason in Reason
        return
    assert samples.ndim == 2 and samples.shape[1] == h.channels
    assert np.isfinite(samples).all()


@pytest.mark.parametrize("peak", [1e30, -1e30, 17.0])
def test_float_samples_far_outside_full_scale_are_refused(peak: float) -> None:
    h = parse_headers({**GOOD, "encoding": "f32le", "channels": "1"})
    payload = np.array([0.1, peak, 0.2], "<f4").tobytes()
    with pytest.raises(Rejected) as caught:
        decode_pcm(payload, headers=h)
    assert caught.value.reason is Reason.SAMPLES_OUT_OF_RANGE


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-16.0, 16.0, width=32), min_size=1, max_size=4000))
def test_every_accepted_chunk_gives_finite_features(values: list[float]) -> None:
    from workers.core.audio import extract, quality_flags

    h = parse_headers({**GOOD, "encoding": "f32le", "channels": "1", "sample-rate": "22050"})
    samples = decode_pcm(np.array(values, "<f4").tobytes(), headers=h)
    assert all(isinstance(v, bool) for v in quality_flags(samples, sr=22050).values())
    features = extract(samples[:, 0], sr=22050)
    assert all(np.isfinite(v) for v in features.values()), features


@settings(max_examples=60, deadline=None)
@given(
    frames=st.integers(1, 3000),
    channels=st.integers(1, 9),
    scale=st.floats(1e-4, 16.0),
    seed=st.integers(0, 2**16),
)
def test_downmix_is_numpys_channel_mean_bit_for_bit(
    frames: int, channels: int, scale: float, seed: int
) -> None:
    samples = (np.random.default_rng(seed).standard_normal((frames, channels)) * scale).astype(
        np.float32
    )
    mono = downmix(samples)
    want = samples[:, 0] if channels == 1 else samples.mean(axis=1, dtype=np.float32)
    assert mono.dtype == np.float32 and mono.flags.c_contiguous
    np.testing.assert_array_equal(mono, want)
