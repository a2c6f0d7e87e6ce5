"""``python -m workers bench models``: model quality and cost against named baselines.

- Account and track verdicts (``bench/accounts.py``): five listening populations, three
  tuned on and two held out (docs/models.md), through the production ``ListeningStep``,
  each beside its best single feature chosen with the labels.
- Audio on a corpus rendered by sox and espeak-ng (``bench/audio_corpus.py``): quality
  flags and stream rules per injected fault, false flags on clean music and speech.
- Popularity through the production ``ListeningStep`` against naive, seasonal naive and
  River's Holt-Winters and SNARIMAX per track, on the generator the previous forecaster was
  tuned on and two held out (``bench/popularity.py``).
- Audio anomalies: music-like streams with injected clipping, dropouts and noise bursts,
  streamed through the production ``AudioStep``. Baseline: the quality rules alone.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from workers.core.behaviour import LISTENER_FEATURES, TRACK_FEATURES
from workers.core.chunks import AUDIO_MODEL_FEATURES, StreamMemory
from workers.core.models.accounts import judge_account
from workers.core.models.evidence import AccountEvidence
from workers.core.models.popularity import HOUR_MS, Profile, Series, experts, weights
from workers.core.models.reference import Rank
from workers.core.models.stream_context import dump_context
from workers.core.models.tracks import judge_track
from workers.core.records import AUDIO_CHUNKS, Output, Record
from workers.dev.benchmarks import accounts, audio_corpus
from workers.dev.benchmarks import popularity as popularity_baselines
from workers.dev.benchmarks.common import percentiles, roc_auc, write_results
from workers.dev.benchmarks.plots import roc
from workers.dev.client import audio_headers, pcm_bytes
from workers.dev.loadgen import AudioSource
from workers.pipeline.audio import AudioStep
from workers.state import MemoryStore

__all__ = ["TARGETS", "recall_at_fpr", "run"]

TARGETS = {
    "listener_auc": 0.97,
    "audio_recall_at_2pct_fpr": 0.9,
    "popularity_mae_gain": 0.20,
    "step_p50_us": 50.0,
    "bots_flagged": 0.8,
    "people_flagged": 0.01,
    "track_auc": 0.95,
    "state_bytes": 1024 * 1024,
}


def _payload(output: Output) -> dict[str, Any]:
    assert not isinstance(output.value, bytes), "a dead letter, not a prediction"
    return dict(output.value)


def recall_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float) -> float:
    threshold = np.quantile(scores[~labels], 1.0 - fpr)
    return float(np.mean(scores[labels] > threshold))


async def _audio(chunks_per_stream: int, seed: int) -> dict[str, Any]:
    store = MemoryStore()
    processor = AudioStep(tenants=["eval"], store=store, model_rate=22050)
    processor.warm_up()
    sources = [
        AudioSource("eval", f"s{i}", sample_rate=sr, channels=ch, fault_rate=0.05, seed=seed + i)
        for i, (sr, ch) in enumerate([(44100, 2), (48000, 2), (22050, 1), (16000, 1)])
    ]
    scores, rules, labels, warm = [], [], [], []
    for seq in range(chunks_per_stream):
        for source in sources:
            samples, fault = source.chunk(seq)
            headers = audio_headers(
                tenant="eval",
                stream=source.stream,
                seq=seq,
                sample_rate=source.sample_rate,
                channels=source.channels,
            )
            outcome = await processor.process(
                Record(
                    AUDIO_CHUNKS,
                    0,
                    seq,
                    f"eval/{source.stream}".encode(),
                    pcm_bytes(samples),
                    tuple(headers),
                )
            )
            value = _payload(outcome.outputs[1])
            scores.append(value["score"])
            warm.append(value["warming_up"])
            quality = _payload(outcome.outputs[0])["quality"]
            rules.append(any(quality[k] for k in ("clipping", "dropout", "dc_offset")))
            labels.append(fault is not None)
    s, y, w, r = np.array(scores), np.array(labels), np.array(warm), np.array(rules)
    keep = ~w
    curves = {
        "model + measured faults": (s[keep], y[keep]),
        "quality rules alone": (r[keep].astype(float), y[keep]),
    }
    return {
        "chunks": int(s.size),
        "evaluated": int(keep.sum()),
        "fault_share": float(y.mean()),
        "roc_auc": roc_auc(s[keep], y[keep]),
        "recall_at_2pct_fpr": recall_at_fpr(s[keep], y[keep], 0.02),
        "baseline_rules_recall": float(r[keep][y[keep]].mean()),
        "baseline_rules_fpr": float(r[keep][~y[keep]].mean()),
        "_curves": curves,
    }


def _costs() -> dict[str, Any]:
    """Per-input cost and stored size of each model kind (the Python references; ``bench
    redis`` measures the listening script, models included, in Redis)."""
    rng = np.random.default_rng(0)
    context = StreamMemory.fresh().context
    audio_s = []
    for i in range(3000):
        chunk = rng.normal(size=len(AUDIO_MODEL_FEATURES))
        start = time.perf_counter()
        context.learn_one(chunk, context.judge(chunk).score)
        if i >= 1000:
            audio_s.append(time.perf_counter() - start)
    # one play: the profile and the track's levels learn it, the experts forecast, a label
    profile, series = Profile(), Series()
    pop_s = []
    for i in range(3000):
        ts = i * 60_000
        start = time.perf_counter()
        profile.add(ts)
        share = profile.share(ts // HOUR_MS % 24, ts)
        series.add(ts, share, window=ts // HOUR_MS, day_windows=24)
        forecast = experts(
            profile, series, ts=ts, window=ts // HOUR_MS, window_ms=HOUR_MS, current=30, previous=25
        )
        profile.learn(series, forecast, int(rng.integers(0, 60)), 1.0 - 1.0 / 2000)
        weights(profile, series, 1.0 - 1.0 / 2000)
        pop_s.append(time.perf_counter() - start)
    # the verdicts made of what the store returns: one account and one track per event
    names = [f.name for f in LISTENER_FEATURES]
    track_names = [f.name for f in TRACK_FEATURES]
    verdict_s = []
    for _ in range(3000):
        ranks = {n: Rank(int(rng.integers(0, 1000)), 1000, 0.1, 0.3, 0.05) for n in names}
        x = dict(zip(names, rng.random(len(names)).tolist(), strict=True))
        tranks = {n: Rank(int(rng.integers(0, 1000)), 1000, 0.1, 0.3, 0.05) for n in track_names}
        tx = dict(zip(track_names, rng.random(len(track_names)).tolist(), strict=True))
        start = time.perf_counter()
        judge_account(AccountEvidence(listens=40), x, ranks)
        judge_track("", tx, tranks, listens=30.0, suspicion=2.0)
        verdict_s.append(time.perf_counter() - start)
    return {
        "steps": {
            "audio-anomaly": percentiles(audio_s),
            "popularity": percentiles(pop_s),
            "account + track verdicts": percentiles(verdict_s),
        },
        "state_bytes": {
            "audio-anomaly (per stream)": len(dump_context(context)),
            # 24 hours, 4 losses, the quality figures, as Redis hash fields of ~20 bytes
            "popularity (per tenant)": 34 * 20,
            # levels, losses, first play, a day's ring and up to 5 pending forecasts
            "popularity (per track)": 8 * 20 + 24 * 16 + 5 * 80,
        },
    }


def run(
    *, quick: bool = False, out_dir: Path = Path("bench-results"), console: Console | None = None
) -> dict[str, Any]:
    console = console or Console()
    with console.status("audio: streaming faulty audio through the processor…"):
        audio = asyncio.run(_audio(60 if quick else 500, seed=7))
    with console.status("accounts: five populations through the listening step…"):
        verdicts = asyncio.run(
            accounts.run_all(scale=0.1, hours=12, max_events=6000) if quick else accounts.run_all()
        )
    with console.status("audio corpus: rendering music (sox) and speech (espeak-ng)…"):
        rendered = asyncio.run(audio_corpus.run_all(quick))
    with console.status("popularity: plays through the listening step…"):
        baselines = popularity_baselines.run_all(quick)
    popularity = baselines["charts (held out)"]
    costs = _costs()
    results = {
        "accounts": verdicts,
        "audio_corpus": rendered,
        "popularity_baselines": baselines,
        "audio": audio,
        "costs": costs,
        "targets": TARGETS,
    }
    audio_curves = audio.pop("_curves")
    path = write_results("models", results, out_dir)
    roc(
        audio_curves,
        out_dir / "models-audio-roc.png",
        mark_fpr=0.02,
        title=f"Audio anomalies per chunk (AUC {audio['roc_auc']:.3f})",
    )

    table = Table(title="Online models: quality against baselines, cost", title_justify="left")
    for col in ("model", "metric", "model value", "baseline", "target"):
        table.add_column(col, justify="right")
    table.add_row(
        "audio",
        "recall @ 2 % FPR",
        f"{audio['recall_at_2pct_fpr']:.3f}",
        f"{audio['baseline_rules_recall']:.3f} at {audio['baseline_rules_fpr']:.3f} FPR (rules)",
        "≥ 0.90",
    )
    table.add_row("audio", "ROC AUC", f"{audio['roc_auc']:.3f}", "", "")
    trivial = popularity["best_trivial"]
    table.add_row(
        "popularity (charts, held out)",
        "MAE (plays / hour)",
        f"{popularity['mae']['model']:.2f}",
        f"{popularity['mae'][trivial]:.2f} ({trivial})",
        "≥ 20 % below",
    )
    table.add_row(
        "popularity (charts, held out)",
        "gain vs best trivial",
        f"{popularity['gain_vs_best_trivial']:.1%}",
        "",
        "≥ 20 %",
    )
    for kind, stats in costs["steps"].items():
        table.add_row(
            kind,
            "step p50 (score/predict + learn)",
            f"{stats['p50_ms'] * 1000:.1f} µs",
            "",
            "≤ 50 µs",
        )
    for kind, size in costs["state_bytes"].items():
        table.add_row(kind, "state kept", f"{size / 1024:.1f} KiB", "", "≤ 1 MiB")
    console.print(table)
    console.print(accounts.table(verdicts))
    console.print(popularity_baselines.table(baselines))
    if rendered:
        console.print(audio_corpus.table(rendered))
    else:
        console.print("audio corpus skipped: install sox and espeak-ng to render it")
    console.print(f"results: {path}, plot: {out_dir}/models-audio-roc.png")
    return results
