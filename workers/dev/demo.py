"""``python -m workers demo``: embedded stack, a real worker process, a synthetic multi-tenant
load (real-time audio streams and listening events, some of it bad), live progress, a summary.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from workers.core.records import (
    ANOMALY,
    AUDIO_CHUNKS,
    DEADLETTER,
    LISTENING_EVENTS,
    OUTPUT_TOPICS,
)
from workers.dev.client import (
    Collector,
    Received,
    audio_headers,
    event_value,
    pcm_bytes,
    start_producer,
)
from workers.dev.loadgen import AudioSource, ListeningPopulation
from workers.dev.stack import Stack
from workers.dev.testing import WorkerProcess

__all__ = [
    "BAD_EVERY_S",
    "BUDGET_MS",
    "EVENTS_PER_SECOND",
    "STREAMS_PER_TENANT",
    "TENANTS",
    "Tally",
    "run_demo",
]

TENANTS = ("aurora", "basslab", "cadence")
STREAMS_PER_TENANT = 4
EVENTS_PER_SECOND = 300
BAD_EVERY_S = 1.0
BUDGET_MS = 10.0


def _bad_inputs() -> itertools.cycle[tuple[str, str, bytes | None, bytes, list[tuple[str, bytes]]]]:
    """(label, topic, key, value, headers) of inputs that must each become one dead letter."""
    good = dict(
        tenant="aurora",
        user_id="u1",
        track_id="t1",
        type="play",
        ts=1_764_000_000_000,
        ms_played=1000,
    )
    nan = np.full((100, 1), np.nan, dtype=np.float32)
    hdr = audio_headers(tenant="aurora", stream="bad", seq=0, sample_rate=44100, channels=1)
    return itertools.cycle(
        [
            ("malformed json", LISTENING_EVENTS, b"aurora/u1", b'{"event_id": ', []),
            (
                "unknown tenant",
                LISTENING_EVENTS,
                b"mallory/u1",
                event_value(**{**good, "tenant": "mallory", "event_id": "x"}),
                [],
            ),
            (
                "schema-invalid",
                LISTENING_EVENTS,
                b"aurora/u1",
                event_value(event_id="y", tenant="aurora"),
                [],
            ),
            ("truncated pcm", AUDIO_CHUNKS, b"aurora/bad", b"\x01\x02\x03", hdr),
            (
                "NaN samples",
                AUDIO_CHUNKS,
                b"aurora/bad",
                pcm_bytes(nan, encoding="f32le"),
                audio_headers(
                    tenant="aurora",
                    stream="bad",
                    seq=1,
                    sample_rate=44100,
                    channels=1,
                    encoding="f32le",
                ),
            ),
            (
                "absurd sample rate",
                AUDIO_CHUNKS,
                b"aurora/bad",
                b"\x00\x00" * 100,
                audio_headers(tenant="aurora", stream="bad", seq=2, sample_rate=1, channels=1),
            ),
        ]
    )


@dataclass
class Tally:
    started: float = field(default_factory=time.monotonic)
    sent: Counter[str] = field(default_factory=Counter)
    bad_sent: int = 0
    received: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    anomalies: Counter[str] = field(default_factory=Counter)
    worker_ms: dict[str, list[float]] = field(
        default_factory=lambda: {"audio": [], "listening": []}
    )
    e2e_ms: dict[str, list[float]] = field(default_factory=lambda: {"audio": [], "listening": []})
    sent_at: dict[tuple[str, str, str], float] = field(default_factory=dict)
    bot_users: set[tuple[str, str]] = field(default_factory=set)
    flagged: Counter[str] = field(default_factory=Counter)

    def on_message(self, r: Received) -> None:
        self.received[r.topic] += 1
        if r.topic == DEADLETTER:
            self.reasons[r.header("error") or "?"] += 1
            return
        if r.topic != ANOMALY:
            return
        body = r.json()
        kind, tenant = str(body["kind"]), str(body["tenant"])
        self.worker_ms[kind].append(float(body["latency_ms"]))  # type: ignore[arg-type]
        sent = self.sent_at.pop((kind, tenant, f"{body['subject']}/{body['ref']}"), None)
        if sent is not None:
            self.e2e_ms[kind].append((r.arrived - sent) * 1000.0)
        if body["is_anomaly"]:
            self.anomalies[kind] += 1
            if kind == "listening":
                is_bot = (tenant, str(body["subject"])) in self.bot_users
                self.flagged["bot" if is_bot else "human"] += 1

    @property
    def inputs(self) -> int:
        return sum(self.sent.values())

    def accounted(self) -> int:
        """Inputs that ended as their outputs (one anomaly each) or as one dead letter."""
        return self.received[ANOMALY] + self.received[DEADLETTER]


def _pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.2f}" if values else "-"


def _progress(t: Tally, phase: str) -> Table:
    table = Table(
        title=f"workers demo — {phase} — {time.monotonic() - t.started:5.1f} s",
        title_justify="left",
    )
    table.add_column("inputs sent")
    table.add_column("", justify="right")
    table.add_column("outputs read")
    table.add_column("", justify="right")
    inputs = [
        ("audio.chunks", t.sent[AUDIO_CHUNKS]),
        ("listening.events", t.sent[LISTENING_EVENTS]),
        ("bad on purpose", t.bad_sent),
        ("accounted for", t.accounted()),
    ]
    outputs = [(topic, t.received[topic]) for topic in OUTPUT_TOPICS]
    outputs.append(("anomalies", sum(t.anomalies.values())))
    for (a, n), (b, m) in itertools.zip_longest(inputs, outputs, fillvalue=("", "")):
        table.add_row(a, str(n), b, str(m))
    worker = t.worker_ms["audio"] + t.worker_ms["listening"]
    table.add_row("", "", "worker p50 / p99 ms", f"{_pct(worker, 50)} / {_pct(worker, 99)}")
    return table


def _summary(t: Tally) -> Group:
    counts = Table(title="Inputs and outputs", title_justify="left")
    counts.add_column("what")
    counts.add_column("count", justify="right")
    counts.add_row("audio chunks sent", str(t.sent[AUDIO_CHUNKS]))
    counts.add_row("listening events sent", str(t.sent[LISTENING_EVENTS]))
    counts.add_row("  of which bad on purpose", str(t.bad_sent))
    for topic in OUTPUT_TOPICS:
        counts.add_row(f"→ {topic}", str(t.received[topic]))
    counts.add_row("inputs accounted for", f"{t.accounted()} / {t.inputs}")
    counts.add_row("anomalies: audio", str(t.anomalies["audio"]))
    counts.add_row("anomalies: listening", str(t.anomalies["listening"]))
    counts.add_row(
        "  flagged events from bots / humans", f"{t.flagged['bot']} / {t.flagged['human']}"
    )
    for reason, n in sorted(t.reasons.items()):
        counts.add_row(f"dead letters: {reason}", str(n))
    latency = Table(title=f"Latency (target {BUDGET_MS:.0f} ms per event)", title_justify="left")
    for col in ("path", "p50 ms", "p99 ms", "max ms", "≤ target at p99"):
        latency.add_column(col, justify="right")
    for kind in ("audio", "listening"):
        for label, values in (("in worker", t.worker_ms[kind]), ("end to end", t.e2e_ms[kind])):
            p99 = float(np.percentile(values, 99)) if values else float("nan")
            latency.add_row(
                f"{kind} {label}",
                _pct(values, 50),
                _pct(values, 99),
                f"{max(values):.2f}" if values else "-",
                "yes" if p99 <= BUDGET_MS else "no",
            )
    return Group(counts, latency)


async def _load(stack: Stack, seconds: float, console: Console) -> Tally:
    tally = Tally()
    producer = await start_producer(stack.broker.bootstrap)
    collector = Collector(stack.broker.bootstrap)
    collector.on_message = tally.on_message
    await collector.start()
    sources = [
        AudioSource(
            tenant,
            f"{tenant}-live-{i}",
            fault_rate=0.03,
            seed=10 * n + i,
            channels=2 if i % 2 else 1,
            sample_rate=(44100, 48000, 22050, 16000)[i % 4],
        )
        for n, tenant in enumerate(TENANTS)
        for i in range(STREAMS_PER_TENANT)
    ]
    populations = [
        ListeningPopulation(tenant, seed=n, users=150) for n, tenant in enumerate(TENANTS)
    ]
    for population in populations:
        tally.bot_users |= {
            (population.tenant, f"u{u}") for u in range(population.users) if population.is_bot(u)
        }
    event_streams = [population.events() for population in populations]
    bad = _bad_inputs()
    seq = 0
    sent_events = 0
    next_bad = 0.0
    next_draw = 0.0
    start = time.monotonic()
    with Live(_progress(tally, "load"), console=console, auto_refresh=False) as live:
        while (elapsed := time.monotonic() - start) < seconds:
            if elapsed >= seq * 0.5:  # every stream sends its next 0.5 s chunk, in real time
                for source in sources:
                    samples, _fault = source.chunk(seq)
                    headers = audio_headers(
                        tenant=source.tenant,
                        stream=source.stream,
                        seq=seq,
                        sample_rate=source.sample_rate,
                        channels=source.channels,
                    )
                    tally.sent_at[("audio", source.tenant, f"{source.stream}/{seq}")] = time.time()
                    await producer.send(
                        AUDIO_CHUNKS,
                        pcm_bytes(samples),
                        key=f"{source.tenant}/{source.stream}".encode(),
                        headers=headers,
                    )
                    tally.sent[AUDIO_CHUNKS] += 1
                seq += 1
            due = int(elapsed * EVENTS_PER_SECOND)
            while sent_events < due:
                event = next(event_streams[sent_events % len(event_streams)]).fields
                key = f"{event['tenant']}/{event['user_id']}"
                tally.sent_at[
                    ("listening", str(event["tenant"]), f"{event['user_id']}/{event['event_id']}")
                ] = time.time()
                await producer.send(LISTENING_EVENTS, event_value(**event), key=key.encode())
                tally.sent[LISTENING_EVENTS] += 1
                sent_events += 1
            if elapsed >= next_bad:
                _label, topic, key_bytes, value, headers = next(bad)
                await producer.send(topic, value, key=key_bytes, headers=headers)
                tally.sent[topic] += 1
                tally.bad_sent += 1
                next_bad += BAD_EVERY_S
            if time.monotonic() >= next_draw:
                live.update(_progress(tally, "load"), refresh=True)
                next_draw = time.monotonic() + 0.25
            await asyncio.sleep(0.005)
        await producer.flush()
        deadline = time.monotonic() + 20
        while tally.accounted() < tally.inputs and time.monotonic() < deadline:
            live.update(_progress(tally, "draining"), refresh=True)
            await asyncio.sleep(0.1)
        live.update(_progress(tally, "done"), refresh=True)
    await collector.stop()
    await producer.stop()
    return tally


def run_demo(*, seconds: float = 20.0) -> int:
    console = Console()
    started = time.monotonic()
    with console.status("starting the embedded stack (Kafka-protocol broker + Redis)…"):
        stack = Stack().start()
    console.print(f"stack up: broker {stack.broker.bootstrap}, redis {stack.redis.url}")
    worker = WorkerProcess(
        {
            **stack.env(),
            "WORKERS_TENANTS": ",".join(TENANTS),
            "WORKERS_REBALANCE_TIMEOUT_S": "3",
            "WORKERS_LOG_LEVEL": "warning",
        },
        log=stack.workdir / "worker.log",
    )
    try:
        worker.start()
        with console.status("starting a worker process (warm-up, joining the consumer group)…"):
            ready_s = worker.wait_ready(timeout=90)
        console.print(f"worker ready in {ready_s:.1f} s (metrics on {worker.url('/metrics')})")
        tally = asyncio.run(_load(stack, seconds, console))
        console.print(_summary(tally))
        code = worker.terminate()
        console.print(
            f"worker stopped gracefully (exit {code}); total {time.monotonic() - started:.0f} s"
        )
    finally:
        worker.kill()
        stack.stop()
    return 0
