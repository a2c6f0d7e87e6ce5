"""Audio judged in its stream's context: dead air and noise bursts against the stream's
recent sound, and a corpus rendered by sox and espeak-ng (skipped where they are missing)."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.helpers import chunk_record, needs
from workers.dev import corpus
from workers.pipeline.audio import AudioStep
from workers.state import MemoryStore

SR = 16000


def _step() -> AudioStep:
    return AudioStep(tenants=["acme"], store=MemoryStore(), model_rate=22050)


def _run(step: AudioStep, stream: str, chunks: list[np.ndarray]) -> list[dict[str, object]]:
    async def go() -> list[dict[str, object]]:
        out = []
        for seq, samples in enumerate(chunks):
            record = chunk_record("acme", stream, seq, sr=SR, channels=1, samples=samples[:, None])
            outcome = await step.process(record)
            out.append(dict(outcome.outputs[1].value))  # type: ignore[arg-type]
        return out

    return asyncio.run(go())


def _music(seq: int) -> np.ndarray:
    t = (np.arange(SR // 2) + seq * SR // 2) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    return (0.15 * chord).astype(np.float32)


def test_dead_air_in_a_loud_stream_is_an_anomaly_a_quiet_intro_is_not() -> None:
    silent = np.zeros(SR // 2, np.float32)
    intro = _run(_step(), "intro", [silent, silent, silent, _music(3), _music(4)])
    assert not any(v["is_anomaly"] for v in intro)
    live = _run(_step(), "live", [_music(i) for i in range(6)] + [silent])
    assert live[-1]["is_anomaly"] and "dead_air" in live[-1]["reasons"]  # type: ignore[operator]
    assert not any(v["is_anomaly"] for v in live[:-1])


def test_a_noise_burst_in_a_tonal_stream_names_its_rule() -> None:
    noisy = _music(6) + np.random.default_rng(0).uniform(-0.5, 0.5, SR // 2).astype(np.float32)
    out = _run(_step(), "burst", [_music(i) for i in range(6)] + [np.clip(noisy, -1, 1)])
    assert out[-1]["is_anomaly"] and "noise_burst" in out[-1]["reasons"]  # type: ignore[operator]


def test_a_burst_too_short_to_move_the_chunks_means_is_seen_in_its_sub_blocks() -> None:
    """100 ms of noise at a fifth of full scale in a 500 ms chunk of a louder chord: the
    chunk's level and mean flatness barely move, its noisiest 100 ms do."""
    noisy = _music(6)
    start = SR // 5
    noisy[start : start + SR // 10] += (
        np.random.default_rng(1).uniform(-0.2, 0.2, SR // 10).astype(np.float32)
    )
    out = _run(_step(), "short", [_music(i) for i in range(6)] + [noisy])
    assert not any(v["is_anomaly"] for v in out[:-1])
    assert out[-1]["is_anomaly"] and "noise_burst" in out[-1]["reasons"]  # type: ignore[operator]


def test_rendered_speech_has_no_noise_burst_until_one_is_added() -> None:
    """espeak-ng's sibilants are flat too, but a stream learns how flat its sound gets."""
    needs(corpus.available(), "sox and espeak-ng", "apt-get install sox espeak-ng")
    speech = corpus.speech(3, sr=SR, seconds=10.0)
    chunks = [speech[i : i + SR // 2] for i in range(0, speech.size - SR // 2 + 1, SR // 2)]
    burst = chunks[-1].copy()
    burst[SR // 8 : SR // 8 + SR // 10] += (
        np.random.default_rng(2).uniform(-0.5, 0.5, SR // 10).astype(np.float32)
    )
    out = _run(_step(), "voice", [*chunks, np.clip(burst, -1, 1)])
    assert not any("noise_burst" in v["reasons"] for v in out[:-1])  # type: ignore[operator]
    assert "noise_burst" in out[-1]["reasons"]  # type: ignore[operator]


def test_rendered_speech_pauses_are_not_dropouts_and_cuts_are() -> None:
    needs(corpus.available(), "sox and espeak-ng", "apt-get install sox espeak-ng")
    from workers.core.audio import quality_flags
    from workers.dev.benchmarks.audio_corpus import _old_dropout

    chunks = []
    for index in (1, 3, 5):  # three voices, two rates
        speech = corpus.speech(index, sr=22050, seconds=8.0)
        chunks += [speech[i : i + 11025] for i in range(0, speech.size - 11025 + 1, 11025)]
    assert np.mean([(c == 0).mean() for c in chunks]) > 0.05  # pauses are digital silence
    flagged = sum(quality_flags(c[:, None], sr=22050)["dropout"] for c in chunks)
    before = sum(_old_dropout(c, 22050) for c in chunks)
    assert flagged <= 2 and before >= 5 * max(1, flagged), (flagged, before)
    music = corpus.music(0, sr=22050, seconds=4.0)
    rng = np.random.default_rng(3)
    for _ in range(20):  # a cut at any phase of the waveform
        start = int(rng.integers(2000, 9000))
        chunk = music[11025:22050].copy()
        chunk[start : start + int(rng.uniform(0.02, 0.04) * 22050)] = 0
        assert quality_flags(chunk[:, None], sr=22050)["dropout"]
