"""``python -m workers bench features``: the feature engine against naive librosa.

Baseline, measured in the same run on the same chunks: one librosa call per feature, as a
first-time user writes it (``librosa.feature.mfcc(y=y, sr=sr)`` and so on, defaults).
librosa's numba compilation is paid before timing and reported on its own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from workers.core.audio import (
    StreamingExtractor,
    StreamState,
    decode_pcm,
    downmix,
    noisiest,
    quality_flags,
)
from workers.core.audio.resample import StreamResamplers
from workers.core.chunks import parse_headers
from workers.dev.benchmarks.common import percentiles, time_calls, write_results
from workers.dev.benchmarks.plots import latency_cdf
from workers.dev.client import pcm_bytes
from workers.dev.loadgen import AudioSource

__all__ = ["P99_TARGET_MS", "RATIO_TARGET", "SR", "naive_librosa", "run"]

SR = 22050
P99_TARGET_MS = 1.0
RATIO_TARGET = 4.0


def _chunks(n: int, *, sr: int, channels: int = 1) -> list[np.ndarray]:
    source = AudioSource("bench", "s", sample_rate=sr, channels=channels, seed=3)
    return [source.chunk(i)[0] for i in range(n)]


def naive_librosa(y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    import librosa

    return {
        "mfcc": librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20),
        "chroma": librosa.feature.chroma_stft(y=y, sr=sr),
        "centroid": librosa.feature.spectral_centroid(y=y, sr=sr),
        "bandwidth": librosa.feature.spectral_bandwidth(y=y, sr=sr),
        "rolloff": librosa.feature.spectral_rolloff(y=y, sr=sr),
        "flatness": librosa.feature.spectral_flatness(y=y),
        "contrast": librosa.feature.spectral_contrast(y=y, sr=sr),
        "zcr": librosa.feature.zero_crossing_rate(y),
        "rms": librosa.feature.rms(y=y),
        "onset": librosa.onset.onset_strength(y=y, sr=sr),
    }


def run(
    *, n: int = 2000, out_dir: Path = Path("bench-results"), console: Console | None = None
) -> dict[str, Any]:
    console = console or Console()
    chunks = [c[:, 0] for c in _chunks(200, sr=SR)]

    extractor = StreamingExtractor(sr=SR)
    warm_started = time.perf_counter()
    state = StreamState()
    for chunk in chunks[:20]:
        state, _ = extractor.step(state, chunk)
    warm_s = time.perf_counter() - warm_started
    # "ready" now: the first chunk of a brand-new stream must cost what the others do
    first_chunk_s = time_calls(lambda i: extractor.step(StreamState(), chunks[i]), 1)[0]

    state = StreamState()

    def ours(i: int) -> None:
        nonlocal state
        state, _ = extractor.step(state, chunks[i % len(chunks)])

    ours_s = time_calls(ours, n)

    jit_started = time.perf_counter()
    naive_librosa(chunks[0], SR)
    librosa_first_s = time.perf_counter() - jit_started
    for chunk in chunks[:10]:
        naive_librosa(chunk, SR)
    librosa_s = time_calls(lambda i: naive_librosa(chunks[i % len(chunks)], SR), max(200, n // 5))

    # the whole audio path of a 44.1 kHz stereo s16le chunk: decode, quality (the noisiest
    # 100 ms included), resample, features
    headers = parse_headers(
        {
            "tenant": "bench",
            "stream": "s",
            "seq": "0",
            "sample-rate": "44100",
            "channels": "2",
            "encoding": "s16le",
        }
    )
    payloads = [pcm_bytes(c) for c in _chunks(50, sr=44100, channels=2)]
    resamplers = StreamResamplers(sr_out=SR)
    path_state = StreamState()

    def whole_path(i: int) -> None:
        nonlocal path_state
        samples = decode_pcm(payloads[i % len(payloads)], headers=headers)
        quality_flags(samples, sr=44100)
        native = downmix(samples)
        noisiest(native, sr=44100)
        mono = resamplers.process("s", native, sr_in=44100)
        path_state, _ = extractor.step(path_state, mono)

    for i in range(20):
        whole_path(i)
    path_s = time_calls(whole_path, max(200, n // 4))

    stats = {
        "ours": percentiles(ours_s),
        "librosa_naive": percentiles(librosa_s),
        "audio_path_44k_stereo": percentiles(path_s),
    }
    ratio_p50 = stats["librosa_naive"]["p50_ms"] / stats["ours"]["p50_ms"]
    results = {
        "chunk": {"seconds": 0.5, "sample_rate": SR, "channels": 1, "features": 51},
        "stats": stats,
        "first_chunk_after_warmup_ms": first_chunk_s * 1000,
        "warmup_s": warm_s,
        "librosa_first_call_s": librosa_first_s,
        "speedup_vs_librosa_p50": ratio_p50,
        "speedup_vs_librosa_mean": stats["librosa_naive"]["mean_ms"] / stats["ours"]["mean_ms"],
        "chunks_per_second_per_core": 1000.0 / stats["ours"]["mean_ms"],
        "targets": {
            "p99_ms": P99_TARGET_MS,
            "speedup": RATIO_TARGET,
            "p99_met": stats["ours"]["p99_ms"] <= P99_TARGET_MS,
            "speedup_met": ratio_p50 >= RATIO_TARGET,
        },
    }
    path = write_results("features", results, out_dir)
    plot = latency_cdf(
        {
            "workers streaming engine": ours_s,
            "naive librosa": librosa_s,
            "whole path, 44.1k stereo": path_s,
        },
        out_dir / "features.png",
        title="Feature extraction per 0.5 s chunk",
        budget_ms=P99_TARGET_MS,
    )

    table = Table(
        title="Feature extraction, 0.5 s mono chunk at 22.05 kHz (51 features)",
        title_justify="left",
    )
    for col in ("what", "p50 ms", "p99 ms", "p99.9 ms", "mean ms", "n"):
        table.add_column(col, justify="right")
    labels = {
        "ours": "workers streaming engine",
        "librosa_naive": "naive librosa (baseline)",
        "audio_path_44k_stereo": "whole path, 44.1k stereo s16le",
    }
    for name, label in labels.items():
        s = stats[name]
        table.add_row(
            label,
            f"{s['p50_ms']:.3f}",
            f"{s['p99_ms']:.3f}",
            f"{s['p999_ms']:.3f}",
            f"{s['mean_ms']:.3f}",
            str(s["n"]),
        )
    console.print(table)
    console.print(
        f"speed-up vs naive librosa: {ratio_p50:.1f}x at p50 (target ≥ {RATIO_TARGET:.0f}x) · "
        f"p99 {stats['ours']['p99_ms']:.3f} ms (target ≤ {P99_TARGET_MS} ms) · "
        f"{results['chunks_per_second_per_core']:.0f} chunks/s per core\n"
        f"first chunk of a new stream after warm-up: {first_chunk_s * 1000:.3f} ms · "
        f"warm-up {warm_s:.2f} s · librosa's first call (numba JIT) {librosa_first_s:.1f} s\n"
        f"results: {path}, plot: {plot}"
    )
    return results
