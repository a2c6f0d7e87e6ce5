"""The latency benchmark runs end to end on real processes (figures are not asserted)."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
from rich.console import Console

from workers.dev.benchmarks import latency


def test_latency_benchmark_writes_figures_and_plots(tmp_path: Path) -> None:
    results = latency.run(quick=True, out_dir=tmp_path, console=Console(file=io.StringIO()))
    written = orjson.loads((tmp_path / "latency.json").read_bytes())
    kinds = {(s["kind"], s["rate"]) for s in written["steps"]}
    assert kinds == {("listening", 500), ("listening", 2000), ("audio", 10), ("audio", 40)}
    for step in written["steps"]:
        assert step["received"] == step["expected"], step  # every input scored
        assert {"p50_ms", "p99_ms", "p999_ms"} <= set(step["end_to_end"])
        assert "total" in step["stages"] or step["stages"]
    assert [(s["rate"], s["received"] == s["expected"]) for s in written["floor_steps"]] == [
        (500, True),
        (2000, True),
    ]  # the open-loop floor forwarded every event of the same load
    assert written["throughput"]["floor"]["per_second"] > 0
    assert written["throughput"]["worker"]["per_second"] > 0
    assert results["budget_ms"] == 10.0
    for name in ("latency-cdf.png", "latency-rate-p99.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
