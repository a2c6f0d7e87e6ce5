"""``python -m workers bench models``: model quality and cost against named baselines.

- Account verdicts: three independent listening populations (``bench/accounts.py``),
  listener-level, against the best single hand rule on each.
- Audio on a corpus rendered by sox and espeak-ng (``bench/audio_corpus.py``): quality
  flags and stream rules per injected fault, false flags on clean music and speech.
- Popularity against naive, seasonal naive and River's Holt-Winters per track, on the
  tuned-on generator and a held-out one (``bench/popularity.py``).
- Bot detection: a listening population with bot farms, streamed through the production
  ``ListeningStep`` (in-memory store); every event's published score is compared
  with the truth. Baseline: the single most telling rule, "share of plays ending just
  past 30 s".
- Audio anomalies: music-like streams with injected clipping, dropouts and noise bursts,
  streamed through the production ``AudioStep``. Baseline: the quality rules alone.
- Popularity: tracks rising, flat, decaying and launching, window by window, predict then
  learn. Baseline: the naive forecast "next window equals this window".
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from workers.core.behaviour import BOT_DIRECTIONS
from workers.core.chunks import AUDIO_MODEL_FEATURES, StreamMemory
from workers.core.listening_state import WindowCounts
from workers.core.models import PopularityModel, RankDetector
from workers.core.models.accounts import AccountEvidence, fold_evidence, judge_account
from workers.core.models.stream_context import dump_context
from workers.core.records import AUDIO_CHUNKS, LISTENING_EVENTS, Output, Record
from workers.dev.benchmarks import accounts, audio_corpus
from workers.dev.benchmarks import popularity as popularity_baselines
from workers.dev.benchmarks.common import percentiles, roc_auc, write_results
from workers.dev.benchmarks.plots import roc
from workers.dev.client import audio_headers, pcm_bytes
from workers.dev.loadgen import AudioSource, ListeningPopulation, TrackLaunches
from workers.pipeline.audio import AudioStep
from workers.pipeline.listening import ListeningStep
from workers.state import MemoryStore

__all__ = ["TARGETS", "recall_at_fpr", "roc_auc", "run"]

TARGETS = {
    "bot_auc": 0.95,
    "audio_recall_at_2pct_fpr": 0.9,
    "popularity_mae_gain": 0.20,
    "step_p50_us": 50.0,
    "state_bytes": 1024 * 1024,
}


def _payload(output: Output) -> dict[str, Any]:
    assert not isinstance(output.value, bytes), "a dead letter, not a prediction"
    return dict(output.value)


def recall_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float) -> float:
    threshold = np.quantile(scores[~labels], 1.0 - fpr)
    return float(np.mean(scores[labels] > threshold))


async def _bots(events: int, seed: int) -> dict[str, Any]:
    store = MemoryStore()  # the reference models of what Redis keeps: the same computation
    processor = ListeningStep(tenants=["eval"], store=store, window_s=3600)
    population = ListeningPopulation("eval", users=2000, bot_share=0.01, seed=seed)
    stream = population.events()
    scores, rule, labels, warm, alarms = [], [], [], [], []
    batch: list[tuple[Record, bool]] = []
    for offset in range(events):
        event = next(stream)
        body = event.fields
        batch.append(
            (
                Record(
                    LISTENING_EVENTS,
                    0,
                    offset,
                    f"eval/{body['user_id']}".encode(),
                    orjson.dumps(body),
                ),
                event.is_bot,
            )
        )
        if len(batch) == 200 or offset == events - 1:
            outcomes = await processor.process_batch([r for r, _ in batch])
            for outcome, (_, is_bot) in zip(outcomes, batch, strict=True):
                value = _payload(outcome.outputs[0])
                scores.append(value["score"])
                warm.append(value["warming_up"])
                alarms.append(value["is_anomaly"])
                labels.append(is_bot)
                rule.append(value["features"]["near_30s_share"])
            batch = []
    s, y, w, r = np.array(scores), np.array(labels), np.array(warm), np.array(rule)
    a = np.array(alarms)
    keep = ~w
    curves = {"tail-rank model": (s[keep], y[keep]), "near-30 s share alone": (r[keep], y[keep])}
    return {
        "alarms_on_humans": float(a[keep & ~y].mean()),
        "alarms_on_bots": float(a[keep & y].mean()),
        "events": events,
        "evaluated": int(keep.sum()),
        "bot_share": float(y.mean()),
        "roc_auc": roc_auc(s[keep], y[keep]),
        "recall_at_1pct_fpr": recall_at_fpr(s[keep], y[keep], 0.01),
        "baseline_near30_roc_auc": roc_auc(r[keep], y[keep]),
        "baseline_near30_recall_at_1pct_fpr": recall_at_fpr(r[keep], y[keep], 0.01),
        "_curves": curves,
    }


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


def _popularity(seed: int) -> dict[str, Any]:
    windows = TrackLaunches(tracks=300, windows_n=48, seed=seed).windows()
    model = PopularityModel.create()
    errors, naive_errors = [], []
    for w in range(2, len(windows) - 1):
        for t in range(len(windows[w])):

            def counts(row: tuple[str, int, int, int, int, int]) -> WindowCounts:
                return WindowCounts(
                    plays=row[1], skips=row[2], likes=row[3], shares=row[4], listeners=row[5]
                )

            current, previous = counts(windows[w][t]), counts(windows[w - 1][t])
            actual = windows[w + 1][t][1]
            predicted = model.predict_one(current=current, previous=previous, elapsed=1.0)
            errors.append(abs(predicted - actual))
            naive_errors.append(abs(current.plays - actual))
            # the label of the window that just closed becomes known: learn it
            model.learn_one(
                current=previous, previous=counts(windows[w - 2][t]), next_plays=current.plays
            )
    mae, naive = float(np.mean(errors)), float(np.mean(naive_errors))
    return {"predictions": len(errors), "mae": mae, "naive_mae": naive, "gain": 1.0 - mae / naive}


def _costs() -> dict[str, Any]:
    """Per-input cost and stored size of each model kind, trained (the Python references;
    ``bench redis`` measures the listening script, models included, in Redis)."""
    rng = np.random.default_rng(0)
    listening = RankDetector(BOT_DIRECTIONS)
    names = list(BOT_DIRECTIONS)
    xs = [dict(zip(names, rng.random(len(names)).tolist(), strict=True)) for _ in range(3000)]
    listening_s = []
    for i, x in enumerate(xs):
        start = time.perf_counter()
        listening.learn_one(x, listening.judge(x))
        if i >= 1000:  # past warm-up, windows full
            listening_s.append(time.perf_counter() - start)
    context = StreamMemory.fresh().context
    audio_s = []
    for i in range(3000):
        chunk = rng.normal(size=len(AUDIO_MODEL_FEATURES))
        start = time.perf_counter()
        context.learn_one(chunk, context.judge(chunk).score)
        if i >= 1000:
            audio_s.append(time.perf_counter() - start)
    popularity = PopularityModel.create()
    pop_s = []
    for _ in range(3000):
        c = WindowCounts(plays=int(rng.integers(0, 500)), listeners=30, skips=5)
        p = WindowCounts(plays=int(rng.integers(0, 500)))
        start = time.perf_counter()
        popularity.predict_one(current=c, previous=p, elapsed=0.5)
        popularity.learn_one(current=c, previous=p, next_plays=int(rng.integers(0, 500)))
        pop_s.append(time.perf_counter() - start)
    evidence, account_s = AccountEvidence(), []
    ranks = dict(zip(BOT_DIRECTIONS, rng.random(len(BOT_DIRECTIONS)).tolist(), strict=True))
    for i in range(3000):
        window = WindowCounts(plays=int(rng.integers(1, 500)), listeners=20, near30=5)
        start = time.perf_counter()
        evidence = fold_evidence(evidence, window, f"t{i % 50}", i % 97)
        verdict = judge_account(evidence, ranks, listens=evidence.listens, warming=False)
        account_s.append(time.perf_counter() - start)
    return {
        "steps": {
            "listening-anomaly": percentiles(listening_s),
            "audio-anomaly": percentiles(audio_s),
            "popularity": percentiles(pop_s),
            "account verdict": percentiles(account_s),
        },
        "state_bytes": {
            # a window of 1,000 values for each of 10 features and the scores, as floats
            "listening-anomaly (per tenant, as values)": 11 * 1000 * 8,
            "audio-anomaly (per stream)": len(dump_context(context)),
            "popularity (per tenant)": 14 * 8,
            # fields an, ac, at, ag, ah, ap of the listener's hash, as listening.lua writes
            # them, for the evidence folded above
            "account evidence (per listener)": sum(
                len(name) + len(value)
                for name, value in {
                    "an": str(evidence.listens),
                    "ac": f"{evidence.concentration:.17g}",
                    "at": f"{evidence.track_near30:.17g}",
                    "ag": evidence.group,
                    "ah": str(evidence.group_hash),
                    "ap": verdict.marker,
                }.items()
            ),
        },
    }


def run(
    *, quick: bool = False, out_dir: Path = Path("bench-results"), console: Console | None = None
) -> dict[str, Any]:
    console = console or Console()
    with console.status("bots: streaming a listening population through the processor…"):
        bots = asyncio.run(_bots(6_000 if quick else 60_000, seed=1))
    with console.status("audio: streaming faulty audio through the processor…"):
        audio = asyncio.run(_audio(60 if quick else 500, seed=7))
    with console.status("accounts: three populations through the processor…"):
        verdicts = asyncio.run(accounts.run_all(quick))
    with console.status("audio corpus: rendering music (sox) and speech (espeak-ng)…"):
        rendered = asyncio.run(audio_corpus.run_all(quick))
    popularity = _popularity(seed=3)
    baselines = popularity_baselines.run_all(quick)
    costs = _costs()
    results = {
        "accounts": verdicts,
        "audio_corpus": rendered,
        "popularity_baselines": baselines,
        "bots": bots,
        "audio": audio,
        "popularity": popularity,
        "costs": costs,
        "targets": TARGETS,
    }
    bot_curves, audio_curves = bots.pop("_curves"), audio.pop("_curves")
    path = write_results("models", results, out_dir)
    roc(
        bot_curves,
        out_dir / "models-bots-roc.png",
        mark_fpr=0.01,
        title=f"Bot detection per event (AUC {bots['roc_auc']:.3f})",
    )
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
        "bots",
        "ROC AUC",
        f"{bots['roc_auc']:.3f}",
        f"{bots['baseline_near30_roc_auc']:.3f} (near-30 s share)",
        "≥ 0.95",
    )
    table.add_row(
        "bots",
        "recall @ 1 % FPR",
        f"{bots['recall_at_1pct_fpr']:.3f}",
        f"{bots['baseline_near30_recall_at_1pct_fpr']:.3f}",
        "",
    )
    table.add_row(
        "audio",
        "recall @ 2 % FPR",
        f"{audio['recall_at_2pct_fpr']:.3f}",
        f"{audio['baseline_rules_recall']:.3f} at {audio['baseline_rules_fpr']:.3f} FPR (rules)",
        "≥ 0.90",
    )
    table.add_row("audio", "ROC AUC", f"{audio['roc_auc']:.3f}", "", "")
    table.add_row(
        "popularity",
        "MAE (plays / window)",
        f"{popularity['mae']:.2f}",
        f"{popularity['naive_mae']:.2f} (naive)",
        "≥ 20 % below",
    )
    table.add_row("popularity", "gain vs naive", f"{popularity['gain']:.1%}", "", "≥ 20 %")
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
    table.add_row(
        "bots",
        "alarms at the adaptive threshold",
        f"{bots['alarms_on_bots']:.1%} of bot events",
        f"{bots['alarms_on_humans']:.2%} of human events",
        "",
    )
    console.print(table)
    console.print(accounts.table(verdicts))
    console.print(popularity_baselines.table(baselines))
    if rendered:
        console.print(audio_corpus.table(rendered))
    else:
        console.print("audio corpus skipped: install sox and espeak-ng to render it")
    console.print(f"results: {path}, plots: {out_dir}/models-*-roc.png")
    return results
