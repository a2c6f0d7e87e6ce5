"""The AI-music flag and the stems, on audio rendered here (part of ``bench music``).

**AI flag.** Streams of 30 s at 44.1 or 48 kHz: sox music and espeak-ng speech as they
are (full band), brought back from 24 kHz by soxr (a clean resampler), and through a
decoder-like stack of each family of ``workers.dev.decoders`` (random weights, biases and
activations per stream; the stack works on the band-limited audio for every other clip);
each also low-passed at 12 kHz, resampled between 44.1 and 48 kHz, or with white noise
40 dB under it. Every stream goes chunk by chunk (0.5 s) through the tagger's own
accumulation; the verdict is read at 10, 20 and 30 s. Reported per family and kind: AUC
against the real streams of the same kind, the share flagged, and the real streams
flagged; the comb's level (its periodic part, dB under the audio) beside each miss.
Tuning used clips 0-3 and the four published-like families; the held-out figures are
clips 4 on, and the family ``held_out`` on them.

**Stems.** ``mixtures.mixture``: an espeak-ng voice over sox harmony and a sox drum loop
at drawn shares of the energy, and the same without the voice. Each share's mean absolute
error over the stream (the windows' energies summed), and whether the mixture's vocals
beat its instrumental twin's.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal
import soxr
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from workers.core.tagging import TagModel, log_mel_frames, patches_of
from workers.core.tagging.artifacts import FLAG_EVIDENCE, SpectrumState, accumulate, judge
from workers.core.tagging.stems import STEMS, stem_energies
from workers.dev import corpus, decoders, mixtures
from workers.dev.benchmarks.common import roc_auc, write_results

__all__ = ["TRANSFORMS", "ai_flag", "run", "stems"]

TRANSFORMS = ("as is", "low-pass 12 kHz", "resampled", "noise -40 dB")
TUNING_FAMILIES = ("encodec", "dac", "hifigan", "oobleck")
CHECKPOINTS = (10.0, 20.0, 30.0)
#: bands of comb level (dB against the audio) the flagged shares are reported by
BANDS = ("above -25 dB", "-30 to -25 dB", "-35 to -30 dB", "below -35 dB")


def _level_band(level: float) -> str:
    for band, floor in zip(BANDS, (-25.0, -30.0, -35.0), strict=False):
        if level >= floor:
            return band
    return BANDS[-1]


def _transform(
    audio: np.ndarray, sr: int, how: str, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    if how == "low-pass 12 kHz":
        sos = scipy.signal.butter(8, 12000 / (sr / 2), output="sos")
        return scipy.signal.sosfilt(sos, audio).astype(np.float32), sr
    if how == "resampled":
        to = 48000 if sr == 44100 else 44100
        return soxr.resample(audio, sr, to).astype(np.float32), to
    if how == "noise -40 dB":
        rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
        return (audio + rng.normal(0, rms / 100, audio.size)).astype(np.float32), sr
    return audio, sr


def _comb_level(out: np.ndarray, source: np.ndarray, period: int) -> float:
    """The periodic part of what the stack added, in dB under the audio."""
    n = min(out.size, source.size) // period * period
    pattern = (out[:n] - source[:n]).astype(np.float64).reshape(-1, period).mean(axis=0)
    power = float(np.mean((pattern - pattern.mean()) ** 2))
    return 10 * float(np.log10(max(power, 1e-20) / float(np.mean(source.astype(np.float64) ** 2))))


def _streams(
    first: int, count: int, families: tuple[str, ...], seed: int, seconds: float
) -> Iterator[tuple[dict[str, Any], np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    for index in range(first, first + count):
        sr = (44100, 48000)[index % 2]
        for kind in ("music", "speech"):
            if kind == "music":
                audio = corpus.music(2 * index, sr=sr, seconds=seconds)
            else:
                spoken = corpus.speech(2 * index + 1, sr=22050, seconds=seconds)
                audio = soxr.resample(spoken, 22050, sr).astype(np.float32)
            clean = soxr.resample(soxr.resample(audio, sr, 24000), 24000, sr).astype(np.float32)
            made: list[tuple[str, np.ndarray, float | None]] = [
                ("real", audio, None),
                ("real, resampled clean", clean, None),
            ]
            source = clean if index % 2 else audio
            for name in families:
                family = decoders.FAMILIES[name]
                out = decoders.decode_like(source, family, rng)
                made.append((name, out, _comb_level(out, source, int(np.prod(family.strides)))))
            for how in TRANSFORMS:
                for name, stream, level in made:
                    changed, rate = _transform(stream, sr, how, rng)
                    meta = {"clip": index, "kind": kind, "source": name, "transform": how}
                    yield {**meta, "label": level is not None, "level_db": level}, changed, rate


def _verdicts(audio: np.ndarray, rate: int) -> tuple[dict[float, float], float, float]:
    """Evidence at each checkpoint; ms per 0.5 s chunk accumulated and per verdict."""
    state, found, step = SpectrumState(), {}, rate // 2
    spent_accumulating, spent_judging, chunks, judged = 0.0, 0.0, 0, 0
    for start in range(0, audio.size, step):
        began = time.perf_counter()
        state = accumulate(state, audio[start : start + step], rate=rate)
        spent_accumulating += time.perf_counter() - began
        chunks += 1
        for mark in CHECKPOINTS:
            if mark not in found and state.seconds >= mark - 1e-6:
                began = time.perf_counter()
                found[mark] = judge(state).evidence
                spent_judging += time.perf_counter() - began
                judged += 1
    return found, 1000 * spent_accumulating / chunks, 1000 * spent_judging / max(judged, 1)


def ai_flag(
    *, first: int, count: int, families: tuple[str, ...], seed: int, seconds: float = 30.0
) -> dict[str, Any]:
    rows = []
    costs: dict[str, list[float]] = defaultdict(list)
    for meta, audio, rate in _streams(first, count, families, seed, seconds):
        evidence, per_chunk, per_verdict = _verdicts(audio, rate)
        costs["accumulate_ms_per_chunk"].append(per_chunk)
        costs["judge_ms"].append(per_verdict)
        rows.append({**meta, "evidence": evidence})
    last = max(CHECKPOINTS)
    out: dict[str, Any] = {"streams": len(rows), "families": {}, "real": {}}
    for kind in ("music", "speech"):
        real = [r for r in rows if r["kind"] == kind and not r["label"]]
        out["real"][kind] = {
            "streams": len(real),
            "flagged": float(np.mean([r["evidence"][last] >= FLAG_EVIDENCE for r in real])),
            "max_evidence": max(r["evidence"][last] for r in real),
        }
        for family in families:
            fake = [r for r in rows if r["kind"] == kind and r["source"] == family]
            labels = np.array([False] * len(real) + [True] * len(fake))
            entry: dict[str, Any] = {"streams": len(fake)}
            for mark in CHECKPOINTS:
                scores = np.array([r["evidence"][mark] for r in real + fake])
                entry[f"auc_{mark:.0f}s"] = roc_auc(scores, labels)
            entry["flagged"] = float(np.mean([r["evidence"][last] >= FLAG_EVIDENCE for r in fake]))
            missed = [r for r in fake if r["evidence"][last] < FLAG_EVIDENCE]
            entry["missed_comb_db"] = sorted(round(r["level_db"], 1) for r in missed)
            entry["comb_db_median"] = float(np.median([r["level_db"] for r in fake]))
            entry["by_transform"] = {
                how: float(
                    np.mean(
                        [
                            r["evidence"][last] >= FLAG_EVIDENCE
                            for r in fake
                            if r["transform"] == how
                        ]
                    )
                )
                for how in TRANSFORMS
            }
            out["families"].setdefault(family, {})[kind] = entry
    out["by_comb_level"] = {}
    for kind in ("music", "speech"):
        fake = [r for r in rows if r["kind"] == kind and r["label"]]
        buckets: dict[str, list[bool]] = defaultdict(list)
        for r in fake:
            buckets[_level_band(r["level_db"])].append(r["evidence"][last] >= FLAG_EVIDENCE)
        out["by_comb_level"][kind] = {
            band: {"streams": len(buckets[band]), "flagged": float(np.mean(buckets[band]))}
            for band in BANDS
            if buckets[band]
        }
    out["cost"] = {name: float(np.median(values)) for name, values in costs.items()}
    return out


def stems(*, first: int, count: int) -> dict[str, Any]:
    errors, pairs, cost = [], 0, []
    for index in range(first, first + count):
        mix = mixtures.mixture(index)
        found = []
        for audio, truth in ((mix.audio, mix.shares), (mix.instrumental, mix.instrumental_shares)):
            windows = patches_of(audio)
            began = time.perf_counter()
            energy = np.stack([stem_energies(w) for w in windows]).sum(axis=0)
            cost.append((time.perf_counter() - began) / len(windows))
            got = energy / max(float(energy.sum()), 1e-30)
            errors.append(np.abs(got - np.array(truth)))
            found.append(got)
        pairs += bool(found[0][0] > found[1][0])
    mae = np.mean(errors, axis=0)
    return {
        "mixtures": count,
        "mae": {name: float(e) for name, e in zip(STEMS, mae, strict=True)},
        "voice_higher_pairs": pairs,
        "ms_per_window": 1000 * float(np.median(cost)),
    }


def _costs(results: dict[str, Any]) -> dict[str, float]:
    """Each addition's CPU per 3 s window (one thread), against the network and log-mel
    front end of the same window, measured in this run."""
    model = TagModel.load("MSD_musicnn")
    audio = corpus.music(0, sr=16000, seconds=40.0)
    windows = patches_of(audio)
    times = []
    with threadpool_limits(1):
        model.run(windows[:1])
        for w in windows:
            began = time.perf_counter()
            log_mel_frames(audio[: 187 * 256], carry=None)
            model.run(w[None])
            times.append(time.perf_counter() - began)
    tagger = 1000 * float(np.median(times))
    ai = results["held_out"]["cost"]
    # 44.1 kHz: 6 chunks of 0.5 s per 2.992 s window, and one verdict per window
    ai_ms = 6 * ai["accumulate_ms_per_chunk"] + ai["judge_ms"]
    stems_ms = results["stems"]["held_out"]["ms_per_window"]
    return {
        "tagger_ms_per_window": tagger,
        "ai_flag_ms_per_window": ai_ms,
        "ai_flag_share_of_tagger": ai_ms / tagger,
        "stems_ms_per_window": stems_ms,
        "stems_share_of_tagger": stems_ms / tagger,
    }


def run(
    *, quick: bool = False, out_dir: Path = Path("bench-results"), console: Console | None = None
) -> dict[str, Any]:
    console = console or Console()
    held_out_clips = (4, 2) if quick else (4, 6)
    with console.status("AI flag: decoder stacks over sox and espeak-ng audio…"):
        results: dict[str, Any] = {
            "tuning": ai_flag(first=0, count=1 if quick else 4, families=TUNING_FAMILIES, seed=5),
            "held_out": ai_flag(
                first=held_out_clips[0],
                count=held_out_clips[1],
                families=("held_out", *TUNING_FAMILIES),
                seed=11,
            ),
        }
    with console.status("stems: rendered mixtures…"):
        results["stems"] = {
            "tuning": stems(first=0, count=2 if quick else 6),
            "held_out": stems(first=6, count=3 if quick else 12),
        }
    with console.status("the network's cost per window, for scale…"):
        results["cost"] = _costs(results)
    results["targets"] = {
        "auc_held_out_family": 0.99,
        "real_flagged": 0.01,
        "stems_mae": 0.1,
        "ai_flag_share_of_tagger": 0.05,
    }
    write_results("heard", results, out_dir)
    table = Table(
        title="AI-generated audio flag (evidence ≥ 4 flags; 30 s streams)", title_justify="left"
    )
    for column in (
        "set",
        "family",
        "kind",
        "AUC 10 / 20 / 30 s",
        "flagged",
        "real flagged",
        "comb dB (median)",
    ):
        table.add_column(column)
    for split in ("tuning", "held_out"):
        r = results[split]
        for family, kinds in r["families"].items():
            for kind, e in kinds.items():
                table.add_row(
                    split,
                    family,
                    kind,
                    " / ".join(f"{e[f'auc_{m:.0f}s']:.3f}" for m in CHECKPOINTS),
                    f"{e['flagged']:.0%}",
                    f"{r['real'][kind]['flagged']:.1%} of {r['real'][kind]['streams']}",
                    f"{e['comb_db_median']:.1f}",
                )
    console.print(table)
    for split in ("tuning", "held_out"):
        for kind, buckets in results[split]["by_comb_level"].items():
            shown = ", ".join(
                f"{label}: {b['flagged']:.0%} of {b['streams']}"
                for label, b in sorted(buckets.items())
            )
            console.print(f"{split}, {kind}, flagged by comb level: {shown}")
    c = results["cost"]
    console.print(
        f"cost per 3 s window at 44.1 kHz: AI flag {c['ai_flag_ms_per_window']:.2f} ms "
        f"({c['ai_flag_share_of_tagger']:.1%} of the tagger's {c['tagger_ms_per_window']:.1f} ms "
        f"of network and log-mel; target 5 %), stems {c['stems_ms_per_window']:.1f} ms "
        f"({c['stems_share_of_tagger']:.1%})"
    )
    table = Table(title="Stems against rendered mixtures (MAE of each share)", title_justify="left")
    for column in ("set", "mixtures", *STEMS, "voice higher than its twin", "ms per window"):
        table.add_column(column)
    for split, s in results["stems"].items():
        table.add_row(
            split,
            str(s["mixtures"]),
            *(f"{s['mae'][name]:.3f}" for name in STEMS),
            f"{s['voice_higher_pairs']} of {s['mixtures']}",
            f"{s['ms_per_window']:.1f}",
        )
    console.print(table)
    return results
