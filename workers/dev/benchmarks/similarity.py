"""Audio similarity: do a stream's windows find each other, and does the approximate index
find what exact search finds?

- **Same source first**: sources rendered by real programs (sox: instruments, tempi, keys,
  with and without reverb; espeak-ng: voices and rates), each cut into 3 s windows and
  embedded by the tagger. For every window, its nearest neighbour among all the other
  windows (cosine) should come from the same source. Peer measured in the same run: the
  core worker's own 51 hand-made features (MFCC, chroma, spectral shape, loudness) of the
  same windows, standardised, under the same cosine search.
- **Recall@10 of the HNSW index** (usearch, the worker's) against exact search, at
  100,000 tracks, with query latency and build time; hnswlib and faiss when installed. The
  100,000 vectors are drawn around the corpus's real embeddings with their measured
  spread (there are not 100,000 real clips to render here).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from workers.core.audio.resample import resample
from workers.core.audio.streaming import extract
from workers.core.similarity import SimilarityIndex
from workers.core.tagging import TagModel, patches_of
from workers.dev import corpus
from workers.dev.benchmarks.common import percentiles, write_results

__all__ = ["run"]


def _sources(quick: bool) -> list[tuple[str, np.ndarray]]:
    # four voice and rate pairs are distinct in the corpus (its index cycles through them)
    music, speech, seconds = (4, 2, 15.0) if quick else (12, 4, 24.0)
    return [(f"music-{i}", corpus.music(i, sr=16000, seconds=seconds)) for i in range(music)] + [
        (f"speech-{i}", corpus.speech(i, sr=16000, seconds=seconds)) for i in range(speech)
    ]


def _windows(
    sources: list[tuple[str, np.ndarray]], model: TagModel
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings and hand features of every window, and each window's source."""
    embeddings, features, labels = [], [], []
    for label, (_, audio) in enumerate(sources):
        patches = patches_of(audio)
        embeddings.append(model.run(patches).embeddings)
        step = 187 * 256
        for index in range(len(patches)):
            window = audio[index * step : (index + 1) * step]
            values = extract(resample(window, sr_in=16000, sr_out=22050), sr=22050)
            features.append([values[k] for k in sorted(values)])
        labels += [label] * len(patches)
    return np.concatenate(embeddings), np.asarray(features, np.float64), np.asarray(labels)


def _unit(x: np.ndarray) -> np.ndarray:
    unit: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return unit.astype(np.float32)


def same_source_first(
    vectors: np.ndarray, labels: np.ndarray, speech: np.ndarray | None = None
) -> dict[str, float]:
    """Share of windows whose nearest other window is of their source (over all windows,
    and over the music and the speech windows); and the share of a window's same-source
    windows found before any other source's (precision at the number of them)."""
    unit = _unit(vectors)
    scores = unit @ unit.T
    np.fill_diagonal(scores, -np.inf)
    first, before = [], []
    for i in range(len(labels)):
        order = np.argsort(-scores[i])
        same = labels[order] == labels[i]
        first.append(bool(same[0]))
        mates = int((labels == labels[i]).sum()) - 1
        before.append(float(same[:mates].mean()) if mates else 1.0)
    firsts = np.asarray(first)
    out = {
        "nearest_is_same_source": float(firsts.mean()),
        "same_source_precision": float(np.mean(before)),
    }
    if speech is not None:
        out["music_nearest_is_same_source"] = float(firsts[~speech].mean())
        out["speech_nearest_is_same_source"] = float(firsts[speech].mean())
    return out


def _catalogue(real: np.ndarray, labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` unit vectors drawn around the real embeddings with their within-source spread."""
    rng = np.random.default_rng(seed)
    unit = _unit(real)
    spread = float(np.mean([unit[labels == s].std(axis=0).mean() for s in np.unique(labels)]))
    centres = unit[rng.integers(0, len(unit), n)]
    return _unit(centres + rng.normal(0.0, spread, centres.shape).astype(np.float32))


def _peers(
    data: np.ndarray, queries: np.ndarray, truth: list[set[int]]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    index = SimilarityIndex(exact_limit=0, keep_exact=True)
    ids = [str(i) for i in range(len(data))]
    began = time.perf_counter()
    index.upsert(ids, data)
    index.build()
    build_s = time.perf_counter() - began

    def measure(name: str, build: float, search: Any) -> None:
        latencies, hits = [], 0.0
        for q, want in zip(queries, truth, strict=True):
            began = time.perf_counter()
            got = search(q)
            latencies.append(time.perf_counter() - began)
            hits += len(set(got) & want) / 10
        out[name] = {
            "recall_at_10": hits / len(queries),
            "build_s": build,
            **percentiles(latencies),
        }

    measure("usearch (the worker's)", build_s, lambda q: [int(i) for i, _ in index.query(q, 10)])
    measure("exact (numpy)", 0.0, lambda q: [int(i) for i in index.exact(q, 10)])
    if importlib.util.find_spec("hnswlib"):
        import hnswlib

        began = time.perf_counter()
        graph = hnswlib.Index(space="ip", dim=data.shape[1])
        graph.init_index(max_elements=len(data), ef_construction=200, M=16)
        graph.set_num_threads(1)
        graph.add_items(data, np.arange(len(data)))
        graph.set_ef(64)
        measure("hnswlib", time.perf_counter() - began, lambda q: graph.knn_query(q, k=10)[0][0])
    if importlib.util.find_spec("faiss"):
        import faiss

        faiss.omp_set_num_threads(1)
        began = time.perf_counter()
        flat = faiss.IndexHNSWFlat(data.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
        flat.hnsw.efConstruction = 200
        flat.add(data)
        flat.hnsw.efSearch = 64
        measure("faiss HNSW", time.perf_counter() - began, lambda q: flat.search(q[None], 10)[1][0])
    return out


def run(
    *, quick: bool = False, out_dir: Path = Path("bench-results"), console: Console | None = None
) -> dict[str, Any]:
    console = console or Console()
    model = TagModel.load()
    with console.status("similarity: rendering and embedding the corpus…"):
        sources = _sources(quick)
        embeddings, features, labels = _windows(sources, model)
    speech = np.array([sources[label][0].startswith("speech") for label in labels])
    standardised = (features - features.mean(axis=0)) / np.maximum(features.std(axis=0), 1e-9)
    results: dict[str, Any] = {
        "windows": len(labels),
        "sources": int(labels.max() + 1),
        "musicnn_embedding": same_source_first(embeddings, labels, speech),
        "hand_features": same_source_first(standardised, labels, speech),
    }
    n = 10_000 if quick else 100_000
    with console.status(f"similarity: {n:,} tracks, exact and approximate search…"):
        data = _catalogue(embeddings, labels, n, seed=1)
        queries = _catalogue(embeddings, labels, 200 if quick else 1000, seed=2)
        with threadpool_limits(1):
            exact = SimilarityIndex(exact_limit=n + 1)
            exact.upsert([str(i) for i in range(n)], data)
            truth = [{int(i) for i in exact.exact(q, 10)} for q in queries]
            results["search"] = {
                "tracks": n,
                "dimensions": int(data.shape[1]),
                **_peers(data, queries, truth),
            }
    results["targets"] = {"nearest_is_same_source": 0.9, "recall_at_10": 0.95}
    write_results("similarity", results, out_dir)
    table = Table(title="Audio similarity", title_justify="left")
    for column in ("figure", "value", "target"):
        table.add_column(column)
    for name in ("musicnn_embedding", "hand_features"):
        figures = results[name]
        table.add_row(
            f"{name}: nearest window is of the same source ({results['windows']} windows, "
            f"{results['sources']} sources)",
            f"{figures['nearest_is_same_source']:.1%}",
            "≥ 90 %" if name == "musicnn_embedding" else "peer",
        )
        table.add_row(
            f"{name}: … of music windows / of speech windows",
            f"{figures['music_nearest_is_same_source']:.1%} / "
            f"{figures['speech_nearest_is_same_source']:.1%}",
            "",
        )
        table.add_row(
            f"{name}: same-source precision", f"{figures['same_source_precision']:.1%}", ""
        )
    for name, figures in results["search"].items():
        if isinstance(figures, dict):
            table.add_row(
                f"{name} at {n:,} tracks: recall@10, query p50 / p99, build",
                f"{figures['recall_at_10']:.3f}, {figures['p50_ms']:.2f} / "
                f"{figures['p99_ms']:.2f} ms, {figures['build_s']:.1f} s",
                "≥ 0.95" if name.startswith("usearch") else "",
            )
    console.print(table)
    return results
