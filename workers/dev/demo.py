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
    ACCOUNTS,
    ANOMALY,
    AUDIO_CHUNKS,
    DEADLETTER,
    LISTENING_EVENTS,
    OUTPUT_TOPICS,
    TAGS,
    TRACKS,
)
from workers.dev.bad_inputs import bad_inputs
from workers.dev.client import (
    Collector,
    Received,
    audio_headers,
    event_value,
    pcm_bytes,
    start_producer,
)
from workers.dev.demo_music import ask_for_recommendations, demo_requests, tags_table
from workers.dev.forwarder import Forwarder
from workers.dev.loadgen import AudioSource, ListeningPopulation
from workers.dev.stack import Stack
from workers.dev.testing import WorkerProcess
from workers.runtime.admin import create_topics

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
#: the floor's topics: the same load, beside the worker's, on the same broker
FLOOR = "floor."
FLOOR_OUT = FLOOR + "out"


@dataclass
class Tally:
    #: the topic where the outputs that are timed arrive
    outputs: str = ANOMALY
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
    #: each listener's latest account verdict (is_bot), as a consumer of the changelog
    verdicts: dict[tuple[str, str], bool] = field(default_factory=dict)
    #: each track's latest verdict, as a consumer of that changelog
    tracks: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)
    #: each stream's latest tags (the tagger's running aggregate)
    tags: dict[str, dict[str, object]] = field(default_factory=dict)

    def on_message(self, r: Received) -> None:
        self.received[r.topic] += 1
        if r.topic == DEADLETTER:
            self.reasons[r.header("error") or "?"] += 1
            return
        if r.topic == ACCOUNTS:
            body = r.json()
            self.verdicts[(str(body["tenant"]), str(body["user_id"]))] = bool(body["is_bot"])
            return
        if r.topic == TRACKS:
            body = r.json()
            self.tracks[(str(body["tenant"]), str(body["track_id"]))] = body
            return
        if r.topic == TAGS:
            self.tags[(r.key or b"").decode()] = r.json()
            return
        if r.topic != self.outputs:
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
        return self.received[self.outputs] + self.received[DEADLETTER]


def _pct(values: list[float], q: float) -> str:
    return f"{_q(values, q):.2f}" if values else "-"


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
        ("audio chunks", t.sent[AUDIO_CHUNKS]),
        ("listening events", t.sent[LISTENING_EVENTS]),
        ("bad on purpose", t.bad_sent),
        ("accounted for", t.accounted()),
    ]
    topics = OUTPUT_TOPICS if t.outputs == ANOMALY else (t.outputs,)
    outputs = [(topic, t.received[topic]) for topic in topics]
    if t.outputs == ANOMALY:
        outputs.append(("anomalies", sum(t.anomalies.values())))
    for (a, n), (b, m) in itertools.zip_longest(inputs, outputs, fillvalue=("", "")):
        table.add_row(a, str(n), b, str(m))
    inside = t.worker_ms["audio"] + t.worker_ms["listening"]
    table.add_row("", "", "in process p50 / p99 ms", f"{_pct(inside, 50)} / {_pct(inside, 99)}")
    return table


def _counts(t: Tally) -> Table:
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
    bots = [v for k, v in t.verdicts.items() if k in t.bot_users]
    people = [v for k, v in t.verdicts.items() if k not in t.bot_users]
    counts.add_row(
        "account verdicts: bots / people judged bots",
        f"{sum(bots)} of {len(bots)} / {sum(people)} of {len(people)}",
    )
    pushed = sorted(
        ((k, v) for k, v in t.tracks.items() if v["is_suspicious"]),
        key=lambda item: -float(item[1]["score"]),  # type: ignore[arg-type]
    )
    counts.add_row(
        "tracks judged pushed",
        ", ".join(
            f"{tenant}/{track} ({float(v['artificial_share']):.0%} artificial)"  # type: ignore[arg-type]
            for (tenant, track), v in pushed[:8]
        )
        + (f" and {len(pushed) - 8} more" if len(pushed) > 8 else "")
        or "none",
    )
    for reason, n in sorted(t.reasons.items()):
        counts.add_row(f"dead letters: {reason}", str(n))
    return counts


def _q(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _summary(t: Tally, floor: Tally) -> Group:
    latency = Table(
        title=f"Latency, ms (budget {BUDGET_MS:.0f} ms per event)", title_justify="left"
    )
    for col in ("path", "p50", "p99", "max", "× floor p50", "× floor p99", "p99 ≤ budget"):
        latency.add_column(col, justify="right")
    for kind in ("audio", "listening"):
        base = floor.e2e_ms[kind]
        rows = (
            ("floor", base, False),
            ("worker", t.e2e_ms[kind], True),
            ("in worker", t.worker_ms[kind], False),
        )
        for label, values, compare in rows:
            latency.add_row(
                f"{kind} · {label}",
                _pct(values, 50),
                _pct(values, 99),
                f"{max(values):.2f}" if values else "-",
                f"{_q(values, 50) / _q(base, 50):.2f}" if compare and base else "",
                f"{_q(values, 99) / _q(base, 99):.2f}" if compare and base else "",
                "yes" if _q(values, 99) <= BUDGET_MS else "no",
            )
    own = " · ".join(
        f"{kind} {_q(t.e2e_ms[kind], 50) - _q(floor.e2e_ms[kind], 50):.1f} ms"
        for kind in ("audio", "listening")
    )
    note = (
        "floor, worker: end to end (sent → output read); in worker: fetched → output handed "
        "to the producer. The floor is a do-nothing consume → produce loop with the worker's "
        "client and settings, on the same broker, under the same load, in this run: what "
        "any process pays here before doing any work. The worker's own share at p50 (worker "
        f"minus floor): {own}."
    )
    return Group(_counts(t), latency, note)


def _sources() -> list[AudioSource]:
    return [
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


async def _load(stack: Stack, seconds: float, console: Console, *, floor: bool = False) -> Tally:
    """Real-time audio streams and listening events for ``seconds`` (to the floor's topics,
    without the bad inputs, if ``floor``), then until every input is accounted for."""
    prefix = FLOOR if floor else ""
    tally = Tally(outputs=FLOOR_OUT if floor else ANOMALY)
    producer = await start_producer(stack.broker.bootstrap)
    collector = Collector(stack.broker.bootstrap, (FLOOR_OUT,) if floor else OUTPUT_TOPICS)
    collector.on_message = tally.on_message
    await collector.start()
    sources = _sources()
    populations = [
        ListeningPopulation(tenant, seed=n, users=150, start_ts=_hours_ago(12))
        for n, tenant in enumerate(TENANTS)
    ]
    for population in populations:
        tally.bot_users |= {
            (population.tenant, f"u{u}") for u in range(population.users) if population.is_bot(u)
        }
    event_streams = [population.events() for population in populations]
    bad = bad_inputs()
    seqs = [0] * len(sources)
    sent_events = 0
    next_bad = float("inf") if floor else 0.0
    next_draw = 0.0
    phase = "floor" if floor else "worker"
    start = time.monotonic()
    with Live(_progress(tally, phase), console=console, auto_refresh=False) as live:
        while (elapsed := time.monotonic() - start) < seconds:
            # every stream sends its next 0.5 s chunk in real time; live streams start at
            # different moments, so their chunks are spread over the half second
            for n, source in enumerate(sources):
                seq = seqs[n]
                if elapsed < seq * 0.5 + n * 0.5 / len(sources):
                    continue
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
                    prefix + AUDIO_CHUNKS,
                    pcm_bytes(samples),
                    key=f"{source.tenant}/{source.stream}".encode(),
                    headers=headers,
                )
                tally.sent[AUDIO_CHUNKS] += 1
                seqs[n] += 1
            due = int(elapsed * EVENTS_PER_SECOND)
            while sent_events < due:
                event = next(event_streams[sent_events % len(event_streams)]).fields
                key = f"{event['tenant']}/{event['user_id']}"
                tally.sent_at[
                    ("listening", str(event["tenant"]), f"{event['user_id']}/{event['event_id']}")
                ] = time.time()
                await producer.send(
                    prefix + LISTENING_EVENTS, event_value(**event), key=key.encode()
                )
                tally.sent[LISTENING_EVENTS] += 1
                sent_events += 1
            if elapsed >= next_bad:
                _label, topic, key_bytes, value, headers = next(bad)
                await producer.send(topic, value, key=key_bytes, headers=headers)
                tally.sent[topic] += 1
                tally.bad_sent += 1
                next_bad += BAD_EVERY_S
            if time.monotonic() >= next_draw:
                live.update(_progress(tally, phase), refresh=True)
                next_draw = time.monotonic() + 0.25
            await asyncio.sleep(0.005)
        await producer.flush()
        deadline = time.monotonic() + 20
        while tally.accounted() < tally.inputs and time.monotonic() < deadline:
            live.update(_progress(tally, f"{phase}: draining"), refresh=True)
            await asyncio.sleep(0.1)
        live.update(_progress(tally, f"{phase}: done"), refresh=True)
    await collector.stop()
    await producer.stop()
    return tally


def _hours_ago(hours: int) -> int:
    """Event time for the listening load: recent, so "popular now" means now."""
    return int(time.time() * 1000) - hours * 3_600_000


def _floor(stack: Stack, seconds: float, console: Console) -> Tally:
    """The same load through the do-nothing forwarder, on the floor's own topics."""
    topics = [FLOOR + AUDIO_CHUNKS, FLOOR + LISTENING_EVENTS]
    asyncio.run(create_topics(stack.broker.bootstrap, [*topics, FLOOR_OUT], partitions=4))
    with console.status("the floor: a do-nothing consume → produce loop joins its group…"):
        forwarder = Forwarder(stack.broker.bootstrap, topics, FLOOR_OUT, "demo-floor").start()
    try:
        return asyncio.run(_load(stack, seconds, console, floor=True))
    finally:
        forwarder.stop()


def run_demo(*, seconds: float = 20.0) -> int:
    console = Console()
    started = time.monotonic()
    with console.status("starting the embedded stack (Kafka-protocol broker + Redis)…"):
        stack = Stack().start()
    console.print(f"stack up: broker {stack.broker.bootstrap}, redis {stack.redis.url}")
    env = {
        **stack.env(),
        "WORKERS_TENANTS": ",".join(TENANTS),
        "WORKERS_REBALANCE_TIMEOUT_S": "3",
        "WORKERS_LOG_LEVEL": "warning",
    }
    worker = WorkerProcess(env, log=stack.workdir / "worker.log")
    tagger = WorkerProcess(env, log=stack.workdir / "tagger.log", args=["--role", "tagger"])
    try:
        # the floor first, with no worker running: on the emptier broker, so the worker is
        # compared with the best the floor does, and nothing else takes the CPU meanwhile
        floor = _floor(stack, seconds / 2, console)
        worker.start()
        tagger.start()
        with console.status("starting a worker and a tagger (warm-up, joining their groups)…"):
            ready_s = max(worker.wait_ready(timeout=90), tagger.wait_ready(timeout=90))
        console.print(
            f"worker and tagger ready in {ready_s:.1f} s (metrics on {worker.url('/metrics')})"
        )
        tally = asyncio.run(_load(stack, seconds, console))
        console.print(_summary(tally, floor))
        console.print(tags_table(tally.tags))
        streams: dict[str, list[str]] = {}
        for body in tally.tags.values():
            streams.setdefault(str(body["tenant"]), []).append(str(body["stream"]))
        requests = demo_requests(TENANTS, {t: sorted(s) for t, s in streams.items()})
        console.print(asyncio.run(ask_for_recommendations(stack, requests)))
        code = worker.terminate()
        tagger.terminate()
        console.print(
            f"worker stopped gracefully (exit {code}); total {time.monotonic() - started:.0f} s"
        )
    finally:
        worker.kill()
        tagger.kill()
        stack.stop()
    return 0
