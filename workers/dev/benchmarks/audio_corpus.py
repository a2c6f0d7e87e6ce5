"""Audio quality flags and anomaly scores on a corpus rendered by sox and espeak-ng.

Every chunk goes through the production ``AudioStep`` as part of its stream. Reported, per
corpus: the recall of each injected fault (dropouts and clipping by their quality flags,
dead air and noise bursts by the stream rules or the model's alarm), the share of clean
music and clean speech chunks with a false fault flag, the model's alarms on clean
chunks, and the ROC AUC of the published anomaly score, faulty against clean. Baseline:
the previous dropout rule (any inner run of digital silence of 20 ms or more).

The thresholds were set on the ``tuning`` corpus; the ``held-out`` one has other clips
(other instruments, keys, tempi, voices and sentences) and other faults.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from workers.core.audio.quality import DROPOUT_LEVEL, DROPOUT_MS, _runs, quality_flags
from workers.core.records import AUDIO_CHUNKS, Record
from workers.dev import corpus
from workers.dev.benchmarks.common import roc_auc
from workers.dev.client import audio_headers, pcm_bytes
from workers.pipeline.audio import AudioStep
from workers.state import MemoryStore

__all__ = ["dropout_trials", "evaluate", "run_all"]

#: what catches each fault: a quality flag, or the anomaly alarm (rules and model)
CAUGHT_BY = {"dropout": "dropout", "clipping": "clipping", "dead_air": None, "noise_burst": None}
FAULT_FLAGS = ("clipping", "dropout", "dc_offset", "rate_mismatch")


def _old_dropout(samples: np.ndarray, sr: int) -> bool:
    """The rule before: an inner run of digital silence of at least 20 ms."""
    quiet = np.abs(samples) < DROPOUT_LEVEL
    starts, ends = _runs(quiet)
    inside = (starts > 0) & (ends < quiet.shape[0])
    silent = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) < 1e-3
    return (not silent) and bool(((ends - starts)[inside] >= DROPOUT_MS * sr / 1000).any())


async def evaluate(chunks: list[corpus.CorpusChunk]) -> dict[str, Any]:
    step = AudioStep(tenants=["eval"], store=MemoryStore(), model_rate=22050)
    step.warm_up()
    caught: dict[str, list[bool]] = defaultdict(list)
    by_kind: dict[str, list[bool]] = defaultdict(list)
    false_flags: dict[str, list[bool]] = defaultdict(list)
    model_alarms: dict[str, list[bool]] = defaultdict(list)
    old_false: dict[str, list[bool]] = defaultdict(list)
    scores, labels = [], []
    for offset, c in enumerate(chunks):
        headers = audio_headers(
            tenant="eval", stream=c.stream, seq=c.seq, sample_rate=c.sample_rate, channels=1
        )
        record = Record(
            AUDIO_CHUNKS,
            0,
            offset,
            f"eval/{c.stream}".encode(),
            pcm_bytes(c.samples[:, None]),
            tuple(headers),
        )
        outcome = await step.process(record)
        features, anomaly = (dict(o.value) for o in outcome.outputs[:2])  # type: ignore[arg-type]
        quality, reasons = features["quality"], anomaly["reasons"]
        scores.append(anomaly["score"])
        labels.append(c.fault is not None)
        if c.fault is None:
            flagged = any(quality[f] for f in FAULT_FLAGS) or any(
                r in reasons for r in ("dead_air", "noise_burst")
            )
            false_flags[c.kind].append(flagged)
            model_alarms[c.kind].append(anomaly["is_anomaly"] and not flagged)
            old_false[c.kind].append(_old_dropout(c.samples, c.sample_rate))
        else:
            flag = CAUGHT_BY[c.fault]
            hit = quality[flag] if flag else (c.fault in reasons or anomaly["is_anomaly"])
            caught[c.fault].append(bool(hit))
            by_kind[f"{c.fault} in {c.kind}"].append(bool(hit))
    s, y = np.array(scores), np.array(labels)
    return {
        "chunks": len(chunks),
        "faulty": int(y.sum()),
        "recall": {f: float(np.mean(v)) for f, v in sorted(caught.items())},
        "faults_injected": {f: len(v) for f, v in sorted(caught.items())},
        "recall_by_kind": {f: float(np.mean(v)) for f, v in sorted(by_kind.items())},
        "injected_by_kind": {f: len(v) for f, v in sorted(by_kind.items())},
        "false_flags": {k: float(np.mean(v)) for k, v in sorted(false_flags.items())},
        "clean_chunks": {k: len(v) for k, v in sorted(false_flags.items())},
        "model_alarms_on_clean": {k: float(np.mean(v)) for k, v in sorted(model_alarms.items())},
        "baseline_old_dropout_false_flags": {
            k: float(np.mean(v)) for k, v in sorted(old_false.items())
        },
        "roc_auc": roc_auc(s, y),
    }


def dropout_trials(
    chunks: list[corpus.CorpusChunk], *, per_chunk: int, seed: int
) -> dict[str, Any]:
    """The dropout flag alone, on many cuts: ``per_chunk`` dropouts cut into each clean
    chunk with sound (the corpus's own injection, one at a time), and the clean chunks
    themselves (their pauses are the false flags), by kind."""
    rng = np.random.default_rng(seed)
    found: dict[str, list[bool]] = defaultdict(list)
    false: dict[str, list[bool]] = defaultdict(list)
    for c in chunks:
        false[c.kind].append(quality_flags(c.samples[:, None], sr=c.sample_rate)["dropout"])
        if float(np.abs(c.samples).max()) <= 0.05:  # the corpus cuts only into sound
            continue
        for _ in range(per_chunk):
            cut = corpus.inject(c.samples, "dropout", rng, c.sample_rate)
            found[c.kind].append(quality_flags(cut[:, None], sr=c.sample_rate)["dropout"])
    return {
        "recall": {k: float(np.mean(v)) for k, v in sorted(found.items())},
        "cuts": {k: len(v) for k, v in sorted(found.items())},
        "false_flags": {k: float(np.mean(v)) for k, v in sorted(false.items())},
        "clean_chunks": {k: len(v) for k, v in sorted(false.items())},
    }


async def run_all(quick: bool) -> dict[str, dict[str, Any]]:
    """The tuning corpus and a held-out one (other clips, other faults)."""
    if not corpus.available():
        return {}
    seconds, streams = (8.0, 8) if quick else (20.0, 24)
    results = {}
    for name, first, seed in (("tuning", 0, 0), ("held-out", streams, 1)):
        chunks = list(corpus.chunks(streams=streams, seconds=seconds, seed=seed, first=first))
        results[name] = await evaluate(chunks)
        clean = corpus.chunks(streams=streams, seconds=seconds, fault_rate=0.0, first=first)
        results[name]["dropout_trials"] = dropout_trials(list(clean), per_chunk=3, seed=7 + seed)
    return results


def table(results: dict[str, dict[str, Any]]) -> Any:
    from rich.table import Table

    out = Table(title="Audio corpus (sox music, espeak-ng speech)", title_justify="left")
    for col in (
        "corpus",
        "chunks (faulty)",
        "recall by fault",
        "false flags music / speech",
        "old dropout rule false flags",
        "model alarms on clean",
        "score ROC AUC",
        "dropouts cut 3 per chunk: music / speech",
    ):
        out.add_column(col, justify="right")
    for name, r in results.items():
        out.add_row(
            name,
            f"{r['chunks']} ({r['faulty']})",
            ", ".join(
                f"{f} {v:.0%} of {r['injected_by_kind'][f]}" for f, v in r["recall_by_kind"].items()
            ),
            " / ".join(f"{r['false_flags'].get(k, 0):.1%}" for k in ("music", "speech")),
            " / ".join(
                f"{r['baseline_old_dropout_false_flags'].get(k, 0):.1%}"
                for k in ("music", "speech")
            ),
            " / ".join(f"{r['model_alarms_on_clean'].get(k, 0):.1%}" for k in ("music", "speech")),
            f"{r['roc_auc']:.3f}",
            " / ".join(
                f"{trials['recall'][k]:.1%} of {trials['cuts'][k]}"
                for k in ("music", "speech")
                if (trials := r["dropout_trials"])["cuts"].get(k)
            ),
        )
    return out
