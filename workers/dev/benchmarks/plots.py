"""PNG plots for the benchmarks (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["latency_cdf", "rate_vs_p99", "roc"]


def latency_cdf(
    series: Mapping[str, Sequence[float]], path: Path, *, title: str, budget_ms: float | None = None
) -> Path:
    """Cumulative distribution of latencies (seconds in, milliseconds plotted), log x."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for label, seconds in series.items():
        ms = np.sort(np.asarray(seconds, dtype=np.float64) * 1000.0)
        if ms.size:
            ax.plot(ms, np.arange(1, ms.size + 1) / ms.size, label=label)
    if budget_ms is not None:
        ax.axvline(
            budget_ms, color="red", linestyle="--", linewidth=1, label=f"budget {budget_ms:g} ms"
        )
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("share of records at or below")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def roc(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: Path,
    *,
    title: str,
    mark_fpr: float | None = None,
) -> Path:
    """ROC curves from (scores, labels) per label."""
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=110)
    for label, (scores, truth) in curves.items():
        order = np.argsort(-scores, kind="stable")
        hits = truth[order]
        tpr = np.concatenate(([0.0], np.cumsum(hits) / max(1, hits.sum())))
        fpr = np.concatenate(([0.0], np.cumsum(~hits) / max(1, (~hits).sum())))
        ax.plot(fpr, tpr, label=label)
    if mark_fpr is not None:
        ax.axvline(mark_fpr, color="grey", linestyle=":", linewidth=1, label=f"FPR {mark_fpr:.0%}")
    ax.plot([0, 1], [0, 1], color="lightgrey", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def rate_vs_p99(
    series: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]],
    path: Path,
    *,
    budget_ms: float,
) -> Path:
    """End-to-end p99 against offered load, one panel per kind of input (``series``: kind ->
    system -> points), one line per system; the floor (``floor``) dotted."""
    fig, axes = plt.subplots(1, len(series), figsize=(5 * len(series), 4), dpi=110)
    for ax, (kind, systems) in zip(np.atleast_1d(axes), series.items(), strict=True):
        for system, points in systems.items():
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            style = {"linestyle": ":", "marker": "s"} if system == "floor" else {"marker": "o"}
            ax.plot(xs, ys, label=system, **style)  # type: ignore[arg-type]
        ax.axhline(
            budget_ms, color="red", linestyle="--", linewidth=1, label=f"budget {budget_ms:g} ms"
        )
        ax.set_yscale("log")
        ax.set_xlabel("events per second" if kind == "listening" else "real-time audio streams")
        ax.set_ylabel("end-to-end p99 (ms, log)")
        ax.set_title(kind)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
