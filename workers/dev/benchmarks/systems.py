"""The systems ``bench latency`` compares, each started the same way on a given stack.

- ``floor``: the do-nothing consume → produce loop (``workers.dev.forwarder``) on librdkafka,
  the worker's client; ``floor-aiokafka``: the same loop on aiokafka;
- ``worker``: this worker (its default engine, librdkafka); ``worker-aiokafka``: this worker
  on aiokafka (``WORKERS_ENGINE=direct``);
- ``faust``: this worker's pipeline under Faust agents (``WORKERS_ENGINE=faust``);
- ``quix``: the listening path as a Quix Streams application
  (``workers.dev.benchmarks.quix_peer``).

Each answers a listening event on ``predictions.anomaly`` with ``ref`` = the event's id and
``subject`` = its listener, so one reader times all of them. ``live`` systems start at the
end of their input topics and are probed until they answer; a ``backlog`` system starts
at the beginning (its saturated throughput is timed from its first output to its last).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from workers.core.records import ANOMALY, AUDIO_CHUNKS, LISTENING_EVENTS
from workers.dev.forwarder import Forwarder
from workers.dev.stack import Stack
from workers.dev.testing import WorkerProcess

__all__ = ["KINDS", "OPTIONAL", "SYSTEMS", "Running", "running"]

SYSTEMS = ("floor", "floor-aiokafka", "worker", "worker-aiokafka", "faust", "quix")
#: asked for by name only: the worker with a tagger beside it on the same host (does the
#: tagger's CPU reach the core worker's latency?)
OPTIONAL = ("worker+tagger",)
#: the paths each system serves (the Quix Streams peer has no audio path)
KINDS = {
    "floor": ("listening", "audio"),
    "floor-aiokafka": ("listening",),
    "worker": ("listening", "audio"),
    "worker+tagger": ("listening", "audio"),
    "worker-aiokafka": ("listening", "audio"),
    "faust": ("listening", "audio"),
    "quix": ("listening",),
}


@dataclass
class Running:
    name: str
    pid: int
    #: the worker's own metrics (stage histograms, consumer lag), for this worker's engines
    worker: WorkerProcess | None = None


def _worker(stack: Stack, name: str, group: str, tenants: tuple[str, ...]) -> WorkerProcess:
    env = {
        **stack.env(),
        "WORKERS_TENANTS": ",".join(tenants),
        "WORKERS_GROUP_ID": group,
        "WORKERS_REBALANCE_TIMEOUT_S": "3",
        "WORKERS_LOG_LEVEL": "warning",
    }
    if name in ("faust", "worker-aiokafka"):
        env["WORKERS_ENGINE"] = "faust" if name == "faust" else "direct"
        # tansu answers aiokafka's InitProducerId with an error: no idempotence on it
        env["WORKERS_PRODUCER_IDEMPOTENCE"] = "false"
    return WorkerProcess(env, log=stack.workdir / f"{group}.log")


async def _probe(bootstrap: str, timeout: float) -> None:
    """Send a probe event every half second until an answer to one comes back."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        ANOMALY, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest"
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()
    try:
        await consumer.seek_to_end()
        deadline = time.monotonic() + timeout
        n = 0
        while time.monotonic() < deadline:
            event = {
                "event_id": f"probe-{n}",
                "tenant": "bench-a",
                "user_id": "probe",
                "track_id": "probe",
                "type": "play",
                "ts": int(time.time() * 1000),
                "ms_played": 1000,
            }
            value = orjson.dumps(event)
            await producer.send_and_wait(LISTENING_EVENTS, value, key=b"bench-a/probe")
            n += 1
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                if any(b'"probe-' in (m.value or b"") for m in messages):
                    return
        raise TimeoutError("the system under test never answered a probe")
    finally:
        await consumer.stop()
        await producer.stop()


@contextlib.contextmanager
def running(
    name: str,
    stack: Stack,
    *,
    tenants: tuple[str, ...],
    backlog: bool = False,
    group: str | None = None,
) -> Iterator[Running]:
    """``name`` running on ``stack`` until the block ends: answering (live) or just
    started on a backlog (``backlog``)."""
    group = group or f"bench-{name}"
    bootstrap = stack.broker.bootstrap
    if name.startswith("floor"):
        forwarder = Forwarder(
            bootstrap,
            [LISTENING_EVENTS, AUDIO_CHUNKS],
            ANOMALY,
            group,
            from_start=backlog,
            client="aiokafka" if name == "floor-aiokafka" else "rdkafka",
        ).start()
        assert forwarder.pid is not None
        try:
            if not backlog:
                asyncio.run(_probe(bootstrap, 60))
            yield Running(name, forwarder.pid)
        finally:
            forwarder.stop()
    elif name in ("worker", "worker-aiokafka", "faust", "worker+tagger"):
        process = _worker(stack, name, group, tenants).start()
        beside = [process]
        if name == "worker+tagger":  # the same worker, a tagger process next to it
            tagger_log = stack.workdir / f"{group}-tagger.log"
            tagger = WorkerProcess(process.env, log=tagger_log, args=["--role", "tagger"])
            beside.append(tagger.start())
        try:
            if not backlog:
                for started in beside:
                    started.wait_ready(120)
                asyncio.run(_probe(bootstrap, 60))
            assert process.process is not None
            yield Running(name, process.process.pid, process)
        finally:
            for started in reversed(beside):
                started.terminate()
    elif name == "quix":
        args = [sys.executable, "-m", "workers.dev.benchmarks.quix_peer", bootstrap]
        args += [stack.redis.url, "earliest" if backlog else "latest"]
        with (stack.workdir / "quix.log").open("ab") as log:
            peer = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            if not backlog:
                asyncio.run(_probe(bootstrap, 90))
            yield Running(name, peer.pid)
        finally:
            peer.terminate()
            try:
                peer.wait(15)
            except subprocess.TimeoutExpired:
                peer.kill()
                peer.wait()
    else:
        raise ValueError(f"unknown system {name!r}; one of {', '.join(SYSTEMS + OPTIONAL)}")
