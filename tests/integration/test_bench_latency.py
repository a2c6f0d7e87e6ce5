"""The latency benchmark runs end to end on real processes (figures are not asserted)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from workers.dev.benchmarks import latency
from workers.dev.benchmarks.floor import saturation
from workers.dev.benchmarks.load import TENANTS
from workers.dev.benchmarks.systems import SYSTEMS, running
from workers.dev.stack import Stack


@pytest.mark.timeout(600)
def test_latency_benchmark_compares_the_worker_with_the_floor(tmp_path: Path) -> None:
    out = io.StringIO()
    results = latency.run(
        quick=True,
        systems=("floor", "worker"),
        out_dir=tmp_path,
        console=Console(file=out, width=200),
        rates=(250, 500),  # a sweep of two steps below the machine's saturation: fast
        streams=(10, 40),
        seconds=2.0,
    )
    written = orjson.loads((tmp_path / "latency.json").read_bytes())
    ran = {(s["system"], s["kind"], s["rate"]) for s in written["steps"]}
    assert ran == {
        (system, kind, size)
        for system in ("floor", "worker")
        for kind, size in (("listening", 250), ("listening", 500), ("audio", 10), ("audio", 40))
    }
    for step in written["steps"]:
        assert step["received"] == step["expected"], step  # every input answered, each system
        assert {"p50_ms", "p99_ms", "p999_ms"} <= set(step["end_to_end"])
        assert step["cpu_ms_per_record"][step["system"]] > 0  # its own CPU, measured
        if step["system"] == "worker":
            assert "total" in step["stages"]
    for system in ("floor", "worker"):
        assert written["throughput"][system]["records"] == 5_000, system
        assert written["throughput"][system]["per_second"] > 0
    assert results["budget_ms"] == 10.0
    text = out.getvalue()
    assert "× floor p99" in text and "Saturated throughput" in text
    for name in ("latency-cdf.png", "latency-rate-p99.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


@pytest.fixture(scope="module")
def bench_stack() -> Iterator[Stack]:
    stack = Stack().start(partitions=4)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.mark.parametrize("name", [s for s in SYSTEMS if s not in ("floor", "worker")])
def test_each_peer_answers_live_and_drains_a_backlog(bench_stack: Stack, name: str) -> None:
    """The peers ``bench latency`` sets beside the worker (the librdkafka floor, the Faust
    engine, the Quix Streams app) answer listening events from the topics, and each drains
    a backlog from its own group (the sweep itself runs in ``bench latency``)."""
    with running(name, bench_stack, tenants=TENANTS) as system:  # probed: it answers
        assert system.pid > 0
    drained = saturation(name, bench_stack, 500, Console(file=io.StringIO()))
    assert drained["records"] >= 500
    assert drained["cpu_ms_per_record"][name] >= 0  # measured (a fast drain may take < 1 tick)
