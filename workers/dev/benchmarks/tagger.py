"""The tagger against musicnn's own implementation, in the same run: parity and speed.

Clips: music by sox (instruments, tempi, keys) and speech by espeak-ng, at 16 kHz.

- **Parity**: every tag probability and the embedding of every window, ours (streamed
  chunk by chunk through the worker's framing, numpy network) against the reference
  (librosa preprocessing as ``musicnn.extractor``, musicnn's own TensorFlow graph and
  checkpoint). The reference's float16 overflow (``10000·mel`` above 6.55 becomes
  ``inf``) is saturated on both sides; musicnn verbatim is reported beside it.
- **Speed per core**, as a real-time stream is tagged: one window at a time (batch 1),
  one thread each (BLAS and TensorFlow's intra-op pool), log-mel front end included.
  Windows per second, and the real-time factor (seconds of audio tagged per second).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from workers.core.tagging import TagModel, log_mel_frames, patches_of
from workers.dev import corpus
from workers.dev.benchmarks.common import write_results
from workers.dev.benchmarks.tagger_reference import reference_model, reference_patches

__all__ = ["run"]

WINDOW_S = 187 * 256 / 16000


def _clips(quick: bool) -> list[tuple[str, np.ndarray]]:
    music, speech = (2, 1) if quick else (6, 4)
    seconds = 6.5 if quick else 9.5
    return [(f"music {i}", corpus.music(i, sr=16000, seconds=seconds)) for i in range(music)] + [
        (f"speech {i}", corpus.speech(i, sr=16000, seconds=seconds)) for i in range(speech)
    ]


def parity(name: str, clips: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    reference = reference_model(name)
    model = TagModel.load(name)
    diffs, embedding_diffs, same_top5, windows, overflow, verbatim = [], [], 0, 0, [], []
    for _, audio in clips:
        ours = patches_of(audio)
        theirs = reference_patches(audio)
        n = min(len(ours), len(theirs))
        want, want_embedding = reference(theirs[:n])
        got = model.run(ours[:n])
        diffs.append(float(np.abs(got.probabilities - want).max()))
        embedding_diffs.append(float(np.abs(got.embeddings - want_embedding).max()))
        for a, b in zip(got.probabilities, want, strict=True):
            same_top5 += list(np.argsort(-a)[:5]) == list(np.argsort(-b)[:5])
        windows += n
        raw = reference_patches(audio, saturate=False)[:n]
        overflow.append(float(np.isinf(raw).mean()))
        verbatim.append(float(np.abs(reference(raw)[0] - got.probabilities).max()))
    return {
        "windows": windows,
        "max_abs_diff": max(diffs),
        "embedding_max_abs_diff": max(embedding_diffs),
        "top5_identical_share": same_top5 / windows,
        "musicnn_verbatim": {
            "inf_input_share_max": max(overflow),
            "clips_with_inf": sum(o > 0 for o in overflow),
            "max_abs_diff": max(verbatim),
        },
    }


def speed(clips: list[tuple[str, np.ndarray]], *, repeats: int) -> dict[str, Any]:
    """Seconds per window, one window at a time, one thread each (the same windows)."""
    audio = np.concatenate([a for _, a in clips])
    samples = int(WINDOW_S * 16000)
    starts = [i * samples for i in range(min(repeats, audio.size // samples - 1))]
    model = TagModel.load("MSD_musicnn")
    reference = reference_model("MSD_musicnn", threads=1)
    out: dict[str, Any] = {}
    with threadpool_limits(1):
        ours_warm = log_mel_frames(audio[:samples], carry=None)[0][:187][None]
        model.run(ours_warm)
        reference(ours_warm)

        def ours(start: int) -> None:
            frames, _ = log_mel_frames(audio[start : start + samples + 256], carry=None)
            model.run(frames[:187][None])

        def theirs(start: int) -> None:
            patch = reference_patches(audio[start : start + samples + 512])[:1]
            reference(patch)

        def network_only(start: int) -> None:
            model.run(ours_warm)

        for label, call in (("ours", ours), ("reference", theirs), ("ours_network", network_only)):
            times = []
            for start in starts:
                began = time.perf_counter()
                call(start)
                times.append(time.perf_counter() - began)
            per_window = float(np.median(times))
            out[label] = {
                "ms_per_window": per_window * 1000,
                "windows_per_s": 1.0 / per_window,
                "real_time_factor": WINDOW_S / per_window,
            }
    out["speedup"] = out["reference"]["ms_per_window"] / out["ours"]["ms_per_window"]
    per_stream = out["ours"]["ms_per_window"] / 1000 / WINDOW_S
    out["default_cadence"] = {
        "core_share_per_live_stream": per_stream,
        "live_streams_per_core": 1.0 / per_stream,
    }
    return out


def run(
    *, quick: bool = False, out_dir: Path = Path("bench-results"), console: Console | None = None
) -> dict[str, Any]:
    console = console or Console()
    with console.status("tagger: rendering clips (sox, espeak-ng)…"):
        clips = _clips(quick)
    with console.status("tagger: parity with musicnn's TensorFlow graph…"):
        results: dict[str, Any] = {
            name: parity(name, clips) for name in ("MSD_musicnn", "MTT_musicnn")
        }
    with console.status("tagger: speed per core, one window at a time…"):
        results["speed"] = speed(clips, repeats=10 if quick else 40)
    results["targets"] = {"max_abs_diff": 1e-3, "top5_identical_share": 1.0, "speedup": 3.0}
    write_results("tagger", results, out_dir)
    table = Table(title="Tagger: numpy musicnn against musicnn on TensorFlow", title_justify="left")
    for column in ("figure", "value", "target"):
        table.add_column(column)
    for name in ("MSD_musicnn", "MTT_musicnn"):
        p = results[name]
        table.add_row(f"{name}: windows compared", str(p["windows"]), "")
        table.add_row(f"{name}: max |Δ probability|", f"{p['max_abs_diff']:.2e}", "≤ 1e-3")
        table.add_row(f"{name}: top-5 identical", f"{p['top5_identical_share']:.0%}", "100 %")
        v = p["musicnn_verbatim"]
        table.add_row(
            f"{name}: musicnn verbatim (inf inputs in {v['clips_with_inf']} clips)",
            f"max |Δ| {v['max_abs_diff']:.2f}",
            "",
        )
    s = results["speed"]
    for label in ("ours", "reference", "ours_network"):
        table.add_row(
            f"{label}: ms per window (batch 1, 1 thread)",
            f"{s[label]['ms_per_window']:.1f} ({s[label]['real_time_factor']:.0f}× real time)",
            "",
        )
    table.add_row("speed-up over the reference", f"{s['speedup']:.2f}×", "≥ 3×")
    cadence = s["default_cadence"]
    table.add_row(
        "default cadence (every window): live streams per core",
        f"{cadence['live_streams_per_core']:.0f} "
        f"({cadence['core_share_per_live_stream']:.1%} each)",
        "",
    )
    console.print(table)
    return results
