"""``bench latency``'s results: the JSON file, the table, the two plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from workers.dev.benchmarks.common import write_results
from workers.dev.benchmarks.plots import latency_cdf, rate_vs_p99

__all__ = ["BUDGET_MS", "report"]

BUDGET_MS = 10.0


def report(
    steps: list[dict[str, Any]],
    floor_steps: list[dict[str, Any]],
    throughput: dict[str, Any],
    *,
    out_dir: Path,
    console: Console,
) -> dict[str, Any]:
    def sustained(kind: str, among: list[dict[str, Any]] = steps) -> float:
        ok = [
            s["rate"]
            for s in among
            if s["kind"] == kind
            and s["received"] >= 0.99 * s["expected"]
            and s["end_to_end"].get("p99_ms", float("inf")) <= BUDGET_MS
        ]
        return max(ok, default=0.0)

    results = {
        "budget_ms": BUDGET_MS,
        "steps": [{k: v for k, v in s.items() if not k.startswith("_")} for s in steps],
        "max_listening_rate_within_budget": sustained("listening"),
        "max_audio_streams_within_budget": sustained("audio"),
        "floor_steps": [{k: v for k, v in s.items() if not k.startswith("_")} for s in floor_steps],
        "floor_max_listening_rate_within_budget": sustained("listening", floor_steps),
        "throughput": throughput,
    }
    path = write_results("latency", results, out_dir)
    listening = [s for s in steps if s["kind"] == "listening"]
    target = next((s for s in listening if s["rate"] >= 5000), listening[-1])
    latency_cdf(
        {
            f"end to end, {target['rate']:g}/s": target["_e2e"],
            f"in worker, {target['rate']:g}/s": target["_worker"],
        },
        out_dir / "latency-cdf.png",
        title="Listening events: latency CDF",
        budget_ms=BUDGET_MS,
    )
    rate_vs_p99(
        {
            kind: [
                (s["rate"], s["end_to_end"].get("p99_ms", float("nan")))
                for s in steps
                if s["kind"] == kind
            ]
            for kind in ("listening", "audio")
        },
        out_dir / "latency-rate-p99.png",
        budget_ms=BUDGET_MS,
        floor=[(s["rate"], s["end_to_end"].get("p99_ms", float("nan"))) for s in floor_steps],
    )

    table = Table(
        title=f"Latency against the {BUDGET_MS:g} ms budget "
        "(end to end = scheduled send → output read)",
        title_justify="left",
    )
    for col in (
        "load",
        "e2e p50",
        "e2e p95",
        "e2e p99",
        "e2e p99.9",
        "worker p99",
        "gen lag p99",
        "outputs",
    ):
        table.add_column(col, justify="right")
    for s in [*steps, *({**f, "kind": "floor"} for f in floor_steps)]:
        e, w, g = s["end_to_end"], s["in_worker"], s["generator_lag"]
        unit = " streams" if s["kind"] == "audio" else "/s"
        table.add_row(
            f"{s['kind']} {s['rate']:g}{unit}",
            *(f"{e.get(k, float('nan')):.2f}" for k in ("p50_ms", "p95_ms", "p99_ms", "p999_ms")),
            f"{w.get('p99_ms', float('nan')):.2f}",
            f"{g.get('p99_ms', float('nan')):.2f}",
            f"{s['received']}/{s['expected']}",
        )
    console.print(table)
    t = throughput
    console.print(
        f"sustained within budget: listening {results['max_listening_rate_within_budget']:g}/s, "
        f"audio {results['max_audio_streams_within_budget']:g} streams, pass-through floor "
        f"{results['floor_max_listening_rate_within_budget']:g}/s · "
        f"saturated throughput: worker "
        f"{t['worker']['per_second']:.0f}/s, floor {t['floor']['per_second']:.0f}/s "
        f"({t['ratio']:.0%} of the floor)\nresults: {path}, plots: {out_dir}/latency-*.png"
    )
    return results
