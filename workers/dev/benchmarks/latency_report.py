"""``bench latency``'s results: the JSON file, one table of every system against the floor,
the saturation table, the two plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from workers.dev.benchmarks.common import write_results
from workers.dev.benchmarks.plots import latency_cdf, rate_vs_p99

__all__ = ["BUDGET_MS", "report"]

BUDGET_MS = 10.0
#: the worker's target against the floor, at p50 and at p99 (issue 14)
WITHIN = 1.25


def _get(step: dict[str, Any], what: str, q: str) -> float:
    return float(step[what].get(q, float("nan")))


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 and not math.isnan(a) and not math.isnan(b) else ""


def report(
    steps: list[dict[str, Any]],
    throughput: dict[str, dict[str, Any]],
    *,
    out_dir: Path,
    console: Console,
) -> dict[str, Any]:
    floor = {(s["kind"], s["rate"]): s for s in steps if s["system"] == "floor"}

    def sustained(system: str, kind: str) -> float:
        ok = [
            s["rate"]
            for s in steps
            if s["system"] == system
            and s["kind"] == kind
            and s["received"] >= 0.99 * s["expected"]
            and _get(s, "end_to_end", "p99_ms") <= BUDGET_MS
        ]
        return max(ok, default=0.0)

    systems = list(dict.fromkeys(s["system"] for s in steps))
    within = {
        system: {kind: sustained(system, kind) for kind in ("listening", "audio")}
        for system in systems
    }
    results = {
        "budget_ms": BUDGET_MS,
        "steps": [{k: v for k, v in s.items() if not k.startswith("_")} for s in steps],
        "within_budget": within,
        "throughput": throughput,
    }
    path = write_results("latency", results, out_dir)

    ours = [s for s in steps if s["system"] == "worker" and s["kind"] == "listening"]
    if ours:
        target = next((s for s in ours if s["rate"] >= 1000), ours[-1])
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
            kind: {
                system: [
                    (s["rate"], _get(s, "end_to_end", "p99_ms"))
                    for s in steps
                    if s["system"] == system and s["kind"] == kind
                ]
                for system in systems
            }
            for kind in ("listening", "audio")
        },
        out_dir / "latency-rate-p99.png",
        budget_ms=BUDGET_MS,
    )

    table = Table(
        title=f"End to end (scheduled send → output read), ms; × floor: the same load through "
        f"the do-nothing floor in this run (target ≤ {WITHIN:g}); CPU: ms per record",
        title_justify="left",
    )
    for col in (
        "system",
        "load",
        "p50",
        "p99",
        "p99.9",
        "× floor p50",
        "× floor p99",
        "in-process p99",
        "outputs",
        "CPU itself",
        "CPU broker",
        "CPU redis",
    ):
        table.add_column(col, justify="right")
    for s in sorted(steps, key=lambda s: (s["kind"], s["rate"], systems.index(s["system"]))):
        base = floor.get((s["kind"], s["rate"]))
        cpu = s["cpu_ms_per_record"]
        unit = " streams" if s["kind"] == "audio" else "/s"
        p50, p99 = _get(s, "end_to_end", "p50_ms"), _get(s, "end_to_end", "p99_ms")
        table.add_row(
            s["system"],
            f"{s['kind']} {s['rate']:g}{unit}",
            f"{p50:.2f}",
            f"{p99:.2f}",
            f"{_get(s, 'end_to_end', 'p999_ms'):.2f}",
            _ratio(p50, _get(base, "end_to_end", "p50_ms")) if base and base is not s else "",
            _ratio(p99, _get(base, "end_to_end", "p99_ms")) if base and base is not s else "",
            f"{_get(s, 'in_worker', 'p99_ms'):.2f}",
            f"{s['received']}/{s['expected']}",
            f"{cpu.get(s['system'], float('nan')):.3f}",
            f"{cpu.get('broker', float('nan')):.3f}",
            f"{cpu.get('redis', float('nan')):.3f}",
        )
    console.print(table)

    saturated = Table(
        title="Saturated throughput from the same backlog of listening events (fresh broker "
        "each), first output to last; CPU: ms per record",
        title_justify="left",
    )
    for col in ("system", "events/s", "× floor", "CPU itself", "CPU broker", "CPU redis"):
        saturated.add_column(col, justify="right")
    floor_rate = throughput.get("floor", {}).get("per_second", float("nan"))
    for system, t in throughput.items():
        cpu = t["cpu_ms_per_record"]
        saturated.add_row(
            system,
            f"{t['per_second']:,.0f}",
            _ratio(t["per_second"], floor_rate) if system != "floor" else "",
            f"{cpu.get(system, float('nan')):.3f}",
            f"{cpu.get('broker', float('nan')):.3f}",
            f"{cpu.get('redis', float('nan')):.3f}",
        )
    console.print(saturated)
    budget = " · ".join(
        f"{system}: listening {w['listening']:g}/s, audio {w['audio']:g} streams"
        for system, w in within.items()
    )
    console.print(
        f"highest step with end-to-end p99 ≤ {BUDGET_MS:g} ms — {budget}\n"
        f"results: {path}, plots: {out_dir}/latency-*.png"
    )
    return results
