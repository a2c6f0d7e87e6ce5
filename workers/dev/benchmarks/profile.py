"""Where the CPU goes: py-spy profiles of the worker at saturation, of the audio step and of
the tagger, as flame graphs (SVG) and tables (``bench profile``).

- **Listening events**: a real worker process (default engine) drains a backlog of
  ``load.listening_payloads`` events pre-loaded on a fresh embedded broker, with Redis,
  while py-spy samples it (non-blocking, every thread). Its CPU per event comes from
  ``/proc`` over the drain; each sample is put in the component of the deepest frame that
  names one (``COMPONENTS``), so the table reads as microseconds per event.
- **Audio chunks** and **the tagger**: the production steps (``AudioStep``,
  ``TaggingStep``, the in-memory store) over 0.5 s chunks of 44.1 kHz stereo sox music in
  a loop, in a child process py-spy samples; per chunk.

py-spy (PyPI, the ``dev`` extra) reads the process's memory from outside: its own cost is
not in the figures. Python frames only: time inside a C extension (numpy, hiredis,
librdkafka's calls) is charged to the Python frame that called it.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from workers.dev.benchmarks.common import cpu_seconds, write_results
from workers.dev.benchmarks.floor import new_outputs_reader, preload
from workers.dev.benchmarks.load import TENANTS
from workers.dev.benchmarks.systems import running
from workers.dev.stack import Stack

__all__ = ["COMPONENTS", "components", "run"]

#: (component, pattern on a frame "function (file:line)"); the deepest match wins
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("event loop, tasks, mode services", r"asyncio/|/mode/|selectors\.py"),
    (
        "Kafka consume (librdkafka poll, Record)",
        r"rdkafka_engine\.py|consuming\.py|confluent_kafka",
    ),
    ("Kafka produce and delivery", r"\(send |delivery\.py|publishing\.py|_on_delivery|produce"),
    ("metrics (prometheus_client)", r"prometheus_client|runtime/metrics\.py"),
    ("worker: outcome to outputs", r"runtime/worker\.py"),
    (
        "decode and validate (JSON, schema)",
        r"core/events\.py|core/schemas\.py|fastjsonschema|orjson|json/",
    ),
    ("audio: stream model", r"core/models/stream_context\.py"),
    (
        "listening step (command, reply, verdicts)",
        r"pipeline/listening\.py|state/listening_|core/models/|core/behaviour\.py|state/redis_store\.py|state/scripts\.py",
    ),
    ("output payloads", r"core/payloads\.py"),
    ("Redis client (round trip, parse)", r"/redis/|hiredis"),
    ("audio: decode", r"core/chunks\.py|core/audio/decode\.py"),
    ("audio: quality flags (sub-blocks)", r"core/audio/quality\.py"),
    ("audio: resample", r"resample\.py|soxr"),
    (
        "audio: features",
        r"core/audio/features\.py|core/audio/streaming\.py|core/audio/filters\.py|core/audio/loudness\.py",
    ),
    ("audio: step and state", r"state/memory\.py|pipeline/audio\.py"),
    ("tagger: log-mel", r"tagging/melspec\.py|tagging/stream\.py"),
    ("tagger: network", r"tagging/network\.py"),
    ("tagger: stems", r"tagging/stems\.py"),
    ("tagger: AI flag", r"tagging/artifacts\.py"),
    ("tagger: step and state", r"pipeline/tagging\.py"),
)


def components(collapsed: str) -> Counter[str]:
    """Samples per component, from py-spy's ``raw`` (collapsed stacks) output.

    >>> stacks = [
    ...     "run (w.py:1);process (workers/pipeline/listening.py:9);read (lib/redis/conn.py:5) 3",
    ...     "run (w.py:1) 1",
    ... ]
    >>> components(chr(10).join(stacks))
    Counter({'Redis client (round trip, parse)': 3, 'other': 1})
    """
    counts: Counter[str] = Counter()
    compiled = [(name, re.compile(pattern)) for name, pattern in COMPONENTS]
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        found = "other"
        for frame in stack.split(";"):  # root first: the deepest match is the last one
            for name, pattern in compiled:
                if pattern.search(frame):
                    found = name
                    break
        counts[found] += int(n)
    return counts


def _py_spy() -> str:
    return shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


def _spy(pid: int, seconds: float, svg: Path, raw: Path) -> list[subprocess.Popen[bytes]]:
    spy = _py_spy()
    common = ["record", "--pid", str(pid), "--nonblocking", "--rate", "200"]
    common += ["--duration", str(int(seconds))]
    return [
        subprocess.Popen([spy, *common, "--format", "flamegraph", "-o", str(svg)]),
        subprocess.Popen([spy, *common, "--format", "raw", "-o", str(raw)]),
    ]


def _scrub(svg: Path) -> None:
    """The flame graph names the command that made it: no paths of this machine in it."""
    text = svg.read_text().replace(f"{svg.parent}/", "").replace(_py_spy(), "py-spy")
    svg.write_text(text)


def _table(counts: Counter[str], per_record_ms: float) -> list[dict[str, Any]]:
    total = sum(counts.values()) or 1
    return [
        {"component": name, "share": n / total, "us_per_record": 1000 * per_record_ms * n / total}
        for name, n in counts.most_common()
    ]


def listening(out: Path, n: int, console: Console) -> dict[str, Any]:
    stack = Stack().start()
    try:
        with console.status(f"pre-loading {n:,} listening events…"):
            asyncio.run(preload(stack.broker.bootstrap, n))

        async def drain() -> dict[str, Any]:
            consumer = await new_outputs_reader(stack.broker.bootstrap)
            try:
                with running("worker", stack, tenants=TENANTS, backlog=True, group="profile") as r:
                    seen, cpu0, t0 = 0, 0.0, 0.0
                    spies: list[subprocess.Popen[bytes]] = []
                    deadline = time.time() + 600
                    while seen < n and time.time() < deadline:
                        batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                        got = sum(len(m) for m in batches.values())
                        if got and not spies:  # the first output: start sampling
                            cpu0, t0 = cpu_seconds(r.pid), time.time()
                            spies = _spy(
                                r.pid,
                                20,
                                out / "worker-listening.svg",
                                out / "worker-listening.txt",
                            )
                        seen += got
                    cpu = cpu_seconds(r.pid) - cpu0
                    for spy in spies:
                        spy.wait(60)
                    _scrub(out / "worker-listening.svg")
                    return {
                        "events": seen,
                        "seconds": time.time() - t0,
                        "cpu_ms_per_event": 1000 * cpu / max(seen, 1),
                    }
            finally:
                await consumer.stop()

        with console.status("the worker drains the backlog under py-spy…"):
            measured = asyncio.run(drain())
    finally:
        stack.stop()
    counts = components((out / "worker-listening.txt").read_text())
    return {**measured, "table": _table(counts, measured["cpu_ms_per_event"])}


def _loop(kind: str, seconds: float) -> None:
    """The child py-spy samples: 0.5 s chunks of 44.1 kHz stereo sox music through the
    audio step or the tagger, for ``seconds`` of its CPU; prints what it did."""
    import numpy as np

    from workers.core.records import AUDIO_CHUNKS, Record
    from workers.dev import corpus
    from workers.dev.client import audio_headers, pcm_bytes
    from workers.state import MemoryStore

    stereo = np.repeat(corpus.music(2, sr=44100, seconds=30.0)[:, None], 2, axis=1)
    store = MemoryStore()
    step: Any
    if kind == "audio":
        from workers.pipeline.audio import AudioStep

        step = AudioStep(tenants=["acme"], store=store, model_rate=22050)
    else:
        from workers.core.tagging import TagModel
        from workers.pipeline.tagging import TaggingStep

        step = TaggingStep(tenants=["acme"], store=store, model=TagModel.load())
        step.warm_up()

    async def main() -> None:
        seq, began = 0, time.process_time()
        print("ready", flush=True)
        while time.process_time() - began < seconds:
            for start in range(0, stereo.shape[0] - 22050, 22050):
                headers = audio_headers(
                    tenant="acme", stream="s1", seq=seq, sample_rate=44100, channels=2
                )
                value = pcm_bytes(stereo[start : start + 22050])
                await step.process(Record(AUDIO_CHUNKS, 0, seq, b"acme/s1", value, tuple(headers)))
                seq += 1
        print("chunks", seq, "cpu", time.process_time() - began, flush=True)

    asyncio.run(main())


def steps(kind: str, out: Path, seconds: float) -> dict[str, Any]:
    child = subprocess.Popen(  # one BLAS thread, as a tagger runs by default
        [sys.executable, "-m", "workers.dev.benchmarks.profile", kind, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    spies = _spy(child.pid, seconds - 1, out / f"{kind}.svg", out / f"{kind}.txt")
    last = child.stdout.read().split()
    child.wait(60)
    for spy in spies:
        spy.wait(60)
    _scrub(out / f"{kind}.svg")
    chunks, cpu = int(last[1]), float(last[3])
    per_chunk_ms = 1000 * cpu / max(chunks, 1)
    counts = components((out / f"{kind}.txt").read_text())
    return {
        "chunks": chunks,
        "cpu_ms_per_chunk": per_chunk_ms,
        "table": _table(counts, per_chunk_ms),
    }


def run(
    *, quick: bool = False, out_dir: Path = Path("bench-results"), console: Console | None = None
) -> dict[str, Any]:
    console = console or Console()
    svg_dir = out_dir / "profiles"
    svg_dir.mkdir(parents=True, exist_ok=True)
    results = {
        "listening": listening(svg_dir, 8_000 if quick else 40_000, console),
        "audio": steps("audio", svg_dir, 8 if quick else 25),
        "tagger": steps("tagger", svg_dir, 8 if quick else 25),
    }
    write_results("profile", results, out_dir)
    for part, unit in (("listening", "event"), ("audio", "0.5 s chunk"), ("tagger", "0.5 s chunk")):
        r = results[part]
        total = float(r.get("cpu_ms_per_event") or r["cpu_ms_per_chunk"])
        table = Table(
            title=f"{part}: {1000 * total:.0f} µs of CPU per {unit}", title_justify="left"
        )
        for column in ("component", "share of samples", f"µs per {unit}"):
            table.add_column(column)
        for row in r["table"]:
            table.add_row(row["component"], f"{row['share']:.1%}", f"{row['us_per_record']:.0f}")
        console.print(table)
    console.print(f"flame graphs: {svg_dir}/*.svg")
    return results


if __name__ == "__main__":
    _loop(sys.argv[1], float(sys.argv[2]))
