"""The AI-music flag and the stems: their pure parts, on audio rendered by sox and
espeak-ng, and what they add to the tagger's state and messages."""

from __future__ import annotations

import numpy as np
import pytest
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import needs
from workers.core.tagging import TagState, patches_of
from workers.core.tagging.artifacts import (
    KNOWN_PERIODS,
    MIN_SECONDS,
    SpectrumState,
    accumulate,
    judge,
)
from workers.core.tagging.stems import shares, stem_energies
from workers.dev import corpus, decoders, mixtures

SR = 44100


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    needs(corpus.available(), "sox and espeak-ng", "apt-get install sox espeak-ng")
    spoken = corpus.speech(1, sr=22050, seconds=24.0)
    return soxr.resample(spoken, 22050, SR).astype(np.float32)


def stream(audio: np.ndarray, *, rate: int = SR, seconds: float | None = None) -> SpectrumState:
    state, step = SpectrumState(), rate // 2
    end = audio.size if seconds is None else int(seconds * rate)
    for start in range(0, end, step):
        state = accumulate(state, audio[start : min(start + step, end)], rate=rate)
    return state


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 30000), min_size=1, max_size=6))
def test_the_spectral_floor_round_trips_whatever_the_chunk_sizes(sizes: list[int]) -> None:
    rng = np.random.default_rng(len(sizes))
    state = SpectrumState()
    for size in sizes:
        state = accumulate(state, rng.normal(0, 0.1, size).astype(np.float32), rate=SR)
        state = SpectrumState.from_bytes(state.to_bytes())
    assert state.seconds == pytest.approx(sum(sizes) / SR)
    assert state.floor.shape == (8193 // 2 + 1,) and np.isfinite(state.floor).all()
    assert judge(state).score < 0.5  # noise has no comb


def test_a_change_of_rate_starts_afresh() -> None:
    noise = np.random.default_rng(0).normal(0, 0.1, 20000).astype(np.float32)
    state = accumulate(accumulate(SpectrumState(), noise, rate=SR), noise, rate=16000)
    assert state.rate == 16000 and state.seconds == pytest.approx(20000 / 16000)


def test_a_decoder_comb_is_flagged_and_the_clean_audio_is_not(speech: np.ndarray) -> None:
    fake = decoders.decode_like(
        speech, decoders.FAMILIES["dac"], np.random.default_rng(1), bias=0.02
    )
    early = judge(stream(fake, seconds=MIN_SECONDS - 2))
    assert early.flag is None and early.seconds < MIN_SECONDS  # no verdict yet
    verdict = judge(stream(fake))
    assert verdict.flag is True and verdict.score > 0.99
    assert verdict.known and verdict.period in KNOWN_PERIODS and 512 % verdict.period == 0
    assert verdict.locked_to == SR and len(verdict.peaks) == 5
    spacing = SR / verdict.period
    for hz, db in verdict.peaks:  # the teeth named are on the comb, and stand out
        assert abs(hz / spacing - round(hz / spacing)) * spacing < 1.0 and db > 3
    real = judge(stream(speech))
    assert real.flag is False and real.score < 0.1


def test_a_new_architecture_is_caught_by_the_open_search(speech: np.ndarray) -> None:
    fake = decoders.decode_like(
        speech, decoders.FAMILIES["held_out"], np.random.default_rng(2), bias=0.02
    )
    verdict = judge(stream(fake))
    assert verdict.flag is True and not verdict.known and verdict.period % 315 == 0


def test_a_comb_resampled_to_another_rate_is_found_locked_to_its_own(speech: np.ndarray) -> None:
    fake = decoders.decode_like(
        speech, decoders.FAMILIES["dac"], np.random.default_rng(1), bias=0.02
    )
    moved = soxr.resample(fake, SR, 48000).astype(np.float32)
    verdict = judge(stream(moved, rate=48000))
    # locked to 44.1 kHz (or to 22.05, the same comb named by half the period), not 48
    assert verdict.flag is True and verdict.locked_to in (SR, SR // 2)


def test_stems_of_silence_a_held_note_and_a_drum_hit() -> None:
    assert shares(stem_energies(np.zeros((187, 96), np.float32))) == {
        "vocals": 0.0,
        "harmonic": 0.0,
        "percussive": 0.0,
    }
    held = np.zeros((187, 96), np.float32)
    held[:, 30] = 2.0
    assert shares(stem_energies(held))["harmonic"] == 1.0
    hits = np.zeros((187, 96), np.float32)
    hits[::20, :] = 2.0  # broadband clicks, every 0.32 s
    assert shares(stem_energies(hits))["percussive"] > 0.9


def test_a_voice_over_a_band_raises_vocals_above_its_instrumental_twin() -> None:
    needs(corpus.available(), "sox and espeak-ng", "apt-get install sox espeak-ng")
    mix = mixtures.mixture(6, seconds=9.0)
    got = []
    for audio in (mix.audio, mix.instrumental):
        energy = np.stack([stem_energies(w) for w in patches_of(audio)]).sum(axis=0)
        got.append(shares(energy))
    assert sum(got[0].values()) == pytest.approx(1.0, abs=1e-3)
    assert got[0]["vocals"] > got[1]["vocals"] + 0.05
    assert abs(got[0]["vocals"] - mix.shares[0]) < 0.2


def test_a_tag_state_saved_before_the_flag_still_loads() -> None:
    state = TagState(seq=4, track="t1")
    blob = state.to_bytes()
    spectrum_size = len(state.spectrum.to_bytes())
    old = bytes([2]) + blob[1 : len(blob) - 24 - 4 - spectrum_size]  # format 2: no tail
    loaded = TagState.from_bytes(old)
    assert loaded.seq == 4 and loaded.track == "t1"
    assert loaded.spectrum.seconds == 0.0 and loaded.stem_sums.tolist() == [0.0, 0.0, 0.0]
    grown = accumulate(loaded.spectrum, np.ones(100, np.float32), rate=SR)
    again = TagState.from_bytes(TagState(spectrum=grown).to_bytes())
    assert again.spectrum.seconds == pytest.approx(100 / SR)
