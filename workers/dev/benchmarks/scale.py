"""``bench scale``: throughput per worker process, for sizing a fleet.

The same backlog of listening events (40,000; 5,000 with ``--quick``) on a fresh broker
each time, through ``python -m workers run --processes N`` for N = 1, 2 and 3 (one consumer
group, six partitions), timed from the first output to the last, with the CPU each
process (broker, Redis, the workers) spent in that window. The plain consume-and-forward
loop of ``bench latency`` on the same backlog is the floor: what the broker and one Python
hop allow on this machine. Everything shares the machine's cores, so the figure per
process is what one process reached next to the rest; on a machine where the broker and
Redis run elsewhere, processes add up until the partitions or Redis run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from workers.dev.benchmarks.common import cpu_seconds, write_results
from workers.dev.benchmarks.floor import forwarder_throughput, new_outputs_reader, preload
from workers.dev.benchmarks.load import TENANTS
from workers.dev.stack import Stack, free_port
from workers.dev.testing import WorkerProcess

__all__ = ["run"]

PARTITIONS = 6


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        return []


@contextlib.contextmanager
def _fresh_stack(console: Console) -> Iterator[Stack]:
    with console.status("starting a fresh embedded stack…"):
        stack = Stack().start(partitions=PARTITIONS)
    try:
        yield stack
    finally:
        stack.stop()


async def _through_workers(stack: Stack, processes: int, n: int) -> dict[str, Any]:
    """Start ``--processes N`` on a pre-loaded backlog; count its outputs, first to last,
    and the CPU every process spent between them."""
    consumer = await new_outputs_reader(stack.broker.bootstrap)
    env = {
        **stack.env(),
        "WORKERS_TENANTS": ",".join(TENANTS),
        "WORKERS_GROUP_ID": f"scale-{processes}",
        "WORKERS_REBALANCE_TIMEOUT_S": "3",
        "WORKERS_LOG_LEVEL": "warning",
    }
    workers = WorkerProcess(
        env,
        log=stack.workdir / f"scale-{processes}.log",
        metrics_port=free_port(processes),
        args=["--processes", str(processes)],
    )
    workers.start()
    assert workers.process is not None
    assert stack.broker.process is not None
    assert stack.redis.process is not None
    others = {"broker": stack.broker.process.pid, "redis": stack.redis.process.pid}
    seen, first, last = 0, 0.0, 0.0
    cpu_first: dict[int, float] = {}
    cpu_last: dict[int, float] = {}
    deadline = time.time() + 600
    try:
        while seen < n and time.time() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            got = sum(len(messages) for messages in batches.values())
            if not got:
                continue
            # ``--processes 1`` runs the worker itself; more, a parent and its children
            pids = [*others.values(), *(_children(workers.process.pid) or [workers.process.pid])]
            now = {pid: cpu_seconds(pid) for pid in pids}
            if not first:
                first, cpu_first = time.time(), now
            seen += got
            last, cpu_last = time.time(), now
    finally:
        workers.terminate()
        await consumer.stop()
    seconds = max(last - first, 1e-9)
    worker_pids = [pid for pid in cpu_last if pid not in others.values()]

    def cores(pids: list[int]) -> float:
        return sum(cpu_last[p] - cpu_first.get(p, cpu_last[p]) for p in pids) / seconds

    return {
        "processes": processes,
        "records": seen,
        "seconds": seconds,
        "per_second": seen / seconds,
        "per_process": seen / seconds / processes,
        "cores": {
            "broker": cores([others["broker"]]),
            "redis": cores([others["redis"]]),
            "workers": cores(worker_pids),
        },
    }


def run(
    *, quick: bool = False, out_dir: Path = Path("bench-results"), console: Console | None = None
) -> dict[str, Any]:
    console = console or Console()
    n = 5_000 if quick else 40_000
    fleets: list[dict[str, Any]] = []
    for processes in (1, 2, 3):
        with _fresh_stack(console) as stack:
            with console.status(f"{processes} process(es): pre-loading {n} events…"):
                asyncio.run(preload(stack.broker.bootstrap, n))
            with console.status(f"{processes} process(es): draining the backlog…"):
                fleets.append(asyncio.run(_through_workers(stack, processes, n)))
    with _fresh_stack(console) as stack:
        floor = forwarder_throughput(stack, n, console)

    table = Table(title=f"Throughput from a {n:,}-event backlog, {PARTITIONS} partitions")
    for column in ("worker processes", "events/s", "per process", "cores: workers/broker/redis"):
        table.add_column(column, justify="right")
    for fleet in fleets:
        c = fleet["cores"]
        table.add_row(
            str(fleet["processes"]),
            f"{fleet['per_second']:,.0f}",
            f"{fleet['per_process']:,.0f}",
            f"{c['workers']:.2f} / {c['broker']:.2f} / {c['redis']:.2f}",
        )
    table.add_row("floor (forwarder)", f"{floor['per_second']:,.0f}", "", "")
    console.print(table)
    results = {"backlog": n, "partitions": PARTITIONS, "fleets": fleets, "floor": floor}
    path = write_results("scale", results, out_dir)
    console.print(f"results: {path}")
    return results
