"""``python -m workers bench latency``: the 10 ms budget, measured from outside.

- Open loop, fixed rate: a generator process sends record ``i`` at ``t0 + i / rate``
  whatever happened before; latency counts from that scheduled time, so a stalled worker
  (or a generator that fell behind) shows up instead of being hidden (no coordinated
  omission). End to end = scheduled send -> the record's ``predictions.anomaly`` output
  read back by a consumer in another process.
- In-worker latency: each output's ``latency_ms``; per-stage times: the worker's own
  histograms, scraped before and after each step.
- Rate sweep: listening events at rising rates; audio at rising numbers of real-time
  streams (0.5 s chunks). The highest step whose end-to-end p99 stays within the budget.
- Floor: the same broker and load through a plain aiokafka consume-and-forward loop; the
  worker's saturated throughput as a share of the floor's, from a pre-loaded backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.console import Console

from workers.core.records import ANOMALY, AUDIO_CHUNKS, LISTENING_EVENTS
from workers.dev.benchmarks.common import cpu_seconds, percentiles
from workers.dev.benchmarks.floor import saturation
from workers.dev.benchmarks.latency_report import report
from workers.dev.benchmarks.load import TENANTS, listening_payloads
from workers.dev.benchmarks.systems import KINDS, SYSTEMS, Running, running
from workers.dev.client import audio_headers, pcm_bytes
from workers.dev.loadgen import AudioSource
from workers.dev.stack import Stack
from workers.dev.testing import WorkerProcess
from workers.runtime.metrics import LATENCY_BUCKETS

__all__ = ["CHUNK_S", "SYSTEMS", "Step", "run"]

CHUNK_S = 0.5


@dataclass(frozen=True)
class Step:
    kind: str  # "listening" or "audio"
    rate: float  # events/s, or streams
    seconds: float
    run: str  # prefix of refs, to tell this step's outputs apart


def _generate(bootstrap: str, step: Step, t0: float, lag_queue: Any) -> None:
    """Generator process: sends the step's records on schedule, reports its own lag."""
    from aiokafka import AIOKafkaProducer

    async def main() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=0, acks=1, max_request_size=4 * 1024 * 1024
        )
        await producer.start()
        lags: list[float] = []
        if step.kind == "listening":
            payloads = listening_payloads(int(step.rate * step.seconds), step.run)
            for i, (key, value) in enumerate(payloads):
                due = t0 + i / step.rate
                delay = due - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                lags.append(time.time() - due)
                await producer.send(LISTENING_EVENTS, value, key=key)
        else:
            streams = int(step.rate)
            sources = [
                AudioSource(
                    TENANTS[k % len(TENANTS)],
                    f"{step.run}-s{k}",
                    seed=k,
                    channels=2,
                    sample_rate=44100,
                )
                for k in range(streams)
            ]
            chunk = pcm_bytes(sources[0].chunk(0)[0])  # same audio content, real framing
            n_chunks = int(step.seconds / CHUNK_S)
            schedule = sorted(
                (seq * CHUNK_S + k * CHUNK_S / streams, k, seq)
                for k in range(streams)
                for seq in range(n_chunks)
            )
            for offset, k, seq in schedule:
                due = t0 + offset
                delay = due - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                lags.append(time.time() - due)
                source = sources[k]
                headers = audio_headers(
                    tenant=source.tenant,
                    stream=source.stream,
                    seq=seq,
                    sample_rate=44100,
                    channels=2,
                )
                await producer.send(
                    AUDIO_CHUNKS,
                    chunk,
                    key=f"{source.tenant}/{source.stream}".encode(),
                    headers=headers,
                )
        await producer.flush()
        await producer.stop()
        lag_queue.put(lags)

    asyncio.run(main())


def _scheduled(step: Step, t0: float, ref: object, subject: str) -> float | None:
    if step.kind == "listening":
        text = str(ref)
        if not text.startswith(step.run + "-"):
            return None
        return t0 + int(text.rsplit("-", 1)[1]) / step.rate
    if not subject.startswith(step.run + "-s"):
        return None
    k = int(subject.rsplit("-s", 1)[1])
    seq = int(str(ref))
    return t0 + seq * CHUNK_S + k * CHUNK_S / int(step.rate)


def _drain(worker: WorkerProcess, console: Console, timeout: float = 180.0) -> None:
    """Wait until the worker has no consumer lag left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = worker.metrics()
        lag = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("workers_consumer_lag{")
        )
        if lag == 0:
            return
        time.sleep(0.5)
    console.print(f"warning: the worker still lags after {timeout:.0f} s")


def _stage_histograms(metrics_url: str) -> dict[tuple[str, str], np.ndarray]:
    """Cumulative bucket counts of workers_stage_seconds and workers_latency_seconds."""
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    found: dict[tuple[str, str], dict[float, float]] = {}
    for line in text.splitlines():
        for family in ("workers_stage_seconds_bucket", "workers_latency_seconds_bucket"):
            if line.startswith(family + "{"):
                labels = dict(
                    part.split("=", 1)
                    for part in line[line.index("{") + 1 : line.index("}")].split(",")
                )
                labels = {k: v.strip('"') for k, v in labels.items()}
                stage = labels.get("stage", "total")
                le = float(labels["le"])
                found.setdefault((labels["topic"], stage), {})[le] = float(line.rsplit(" ", 1)[1])
    return {k: np.array([v[le] for le in sorted(v)]) for k, v in found.items()}


def _quantile_from_buckets(counts: np.ndarray, q: float) -> float:
    """Quantile (ms) from cumulative bucket counts, linear within a bucket."""
    bounds = [0.0, *LATENCY_BUCKETS, float("inf")]
    total = counts[-1]
    if total <= 0:
        return float("nan")
    target = q * total
    index = int(np.searchsorted(counts, target))
    lower, upper = bounds[index], bounds[index + 1]
    if upper == float("inf"):
        return lower * 1000
    below = counts[index - 1] if index else 0.0
    share = (target - below) / max(counts[index] - below, 1e-12)
    return float((lower + (upper - lower) * share) * 1000)


async def _measure(
    bootstrap: str,
    step: Step,
    worker: WorkerProcess | None,
    processes: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One step; ``processes`` (name -> pid): CPU each spent per output, during the step."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        ANOMALY,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    await consumer.seek_to_end()
    await asyncio.sleep(0.5)
    before = _stage_histograms(worker.url("/metrics")) if worker else {}
    cpu_before = {name: cpu_seconds(pid) for name, pid in (processes or {}).items()}
    lag_queue: Any = mp.get_context("spawn").Queue()
    t0 = time.time() + 1.0
    generator = mp.get_context("spawn").Process(
        target=_generate, args=(bootstrap, step, t0, lag_queue)
    )
    generator.start()
    expected = (
        int(step.rate * step.seconds)
        if step.kind == "listening"
        else int(step.rate) * int(step.seconds / CHUNK_S)
    )
    e2e: list[float] = []
    worker_ms: list[float] = []
    deadline = t0 + step.seconds + 15
    while len(e2e) < expected and time.time() < deadline:
        batches = await consumer.getmany(timeout_ms=100)
        now = time.time()
        for messages in batches.values():
            for m in messages:
                body = orjson.loads(m.value)
                sent = _scheduled(step, t0, body["ref"], str(body["subject"]))
                if sent is not None:
                    e2e.append(now - sent)
                    worker_ms.append(body["latency_ms"] / 1000)
    cpu = {
        name: round(1000 * (cpu_seconds(pid) - cpu_before[name]) / max(len(e2e), 1), 4)
        for name, pid in (processes or {}).items()
    }
    await consumer.stop()
    generator.join(30)
    gen_lag = lag_queue.get(timeout=30) if not lag_queue.empty() else []
    after = _stage_histograms(worker.url("/metrics")) if worker else {}
    topic = LISTENING_EVENTS if step.kind == "listening" else AUDIO_CHUNKS
    stages = {}
    for (t, stage), counts in after.items():
        if t == topic:
            delta = counts - before.get((t, stage), np.zeros_like(counts))
            stages[stage] = {
                "p50_ms": _quantile_from_buckets(delta, 0.5),
                "p99_ms": _quantile_from_buckets(delta, 0.99),
            }
    return {
        "kind": step.kind,
        "rate": step.rate,
        "seconds": step.seconds,
        "expected": expected,
        "received": len(e2e),
        "end_to_end": percentiles(e2e),
        "in_worker": percentiles(worker_ms),
        "generator_lag": percentiles(gen_lag),
        "stages": stages,
        "cpu_ms_per_record": cpu,
        "_e2e": e2e,
        "_worker": worker_ms,
    }


@contextlib.contextmanager
def _fresh_stack(console: Console) -> Iterator[tuple[Stack, dict[str, int]]]:
    """A new embedded stack, stopped afterwards; its pids, to account CPU."""
    with console.status("starting a fresh embedded stack…"):
        stack = Stack().start(partitions=4)
    try:
        assert stack.broker.process is not None
        assert stack.redis.process is not None
        yield stack, {"broker": stack.broker.process.pid, "redis": stack.redis.process.pid}
    finally:
        stack.stop()


def _sweep(
    stack: Stack,
    system: Running,
    pids: dict[str, int],
    plan: list[Step],
    console: Console,
) -> list[dict[str, Any]]:
    results = []
    label = system.name
    for step in plan:
        if system.worker is not None:
            _drain(system.worker, console)  # a step starts idle: no backlog carried over
        else:
            time.sleep(2.0)
        what = f"{step.rate:g} events/s" if step.kind == "listening" else f"{step.rate:g} streams"
        with console.status(f"{label}: {step.kind} {what} for {step.seconds:g} s…"):
            result = asyncio.run(
                _measure(stack.broker.bootstrap, step, system.worker, {**pids, label: system.pid})
            )
        result["system"] = label
        results.append(result)
        e = result["end_to_end"]
        console.print(
            f"  {label:6s} {step.kind:9s} {what:>16s}: end-to-end "
            f"p50 {e.get('p50_ms', float('nan')):6.2f} "
            f"p99 {e.get('p99_ms', float('nan')):7.2f} ms  "
            f"({result['received']}/{result['expected']} outputs)  CPU ms/record "
            + " ".join(f"{k} {v:.3f}" for k, v in result["cpu_ms_per_record"].items())
        )
    return results


def run(
    *,
    quick: bool = False,
    systems: tuple[str, ...] = SYSTEMS,
    out_dir: Path = Path("bench-results"),
    console: Console | None = None,
    rates: tuple[int, ...] | None = None,
    streams: tuple[int, ...] | None = None,
    seconds: float | None = None,
) -> dict[str, Any]:
    """The open-loop sweep of each system (listening rates; audio streams where it has an
    audio path), then each one's saturated throughput from the same backlog. Every sweep
    and every backlog on a fresh broker: the embedded broker keeps every record in memory
    and its fetch cost grows with what it holds (measured: after the audio sweep's ~1 GB,
    a listening record cost it several times the CPU it costs on a fresh broker).
    ``rates``, ``streams`` and ``seconds`` replace the sweep's steps and their length (the
    smoke test's short sweep)."""
    console = console or Console()
    seconds = seconds or (4.0 if quick else 10.0)
    rates = rates or ((500, 2000) if quick else (250, 500, 1000, 2000, 3000))
    streams = streams or ((10, 40) if quick else (25, 50, 100))
    out_dir.mkdir(parents=True, exist_ok=True)
    steps: list[dict[str, Any]] = []
    for name in systems:
        peer = name not in ("worker", "floor")  # in --quick, the first step only
        for kind, sizes in (("audio", streams), ("listening", rates)):
            if kind not in KINDS[name]:
                continue
            plan = [Step(kind, size, seconds, f"{name[0]}{kind[0]}{size}") for size in sizes]
            with _fresh_stack(console) as (stack, pids), contextlib.ExitStack() as up:
                with console.status(f"{name}: starting on a fresh stack…"):
                    system = up.enter_context(running(name, stack, tenants=TENANTS))
                steps += _sweep(stack, system, pids, plan[:1] if quick and peer else plan, console)
    throughput = {}
    for name in systems:
        with _fresh_stack(console) as (stack, _pids):
            throughput[name] = saturation(name, stack, 5_000 if quick else 40_000, console)
    return report(steps, throughput, out_dir=out_dir, console=console)
