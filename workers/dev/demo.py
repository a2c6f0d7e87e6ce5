"""``python -m workers demo``: embedded stack, a real worker process, a synthetic multi-tenant
load (real-time audio streams and listening events, some of it bad), live progress, a summary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

from rich.console import Console
from rich.live import Live

from workers.core.records import (
    ANOMALY,
    AUDIO_CHUNKS,
    LISTENING_EVENTS,
    OUTPUT_TOPICS,
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
from workers.dev.demo_deliveries import deliver, deliveries
from workers.dev.demo_music import ask_for_recommendations, demo_requests, tags_table
from workers.dev.demo_tally import BUDGET_MS, Tally, progress, summary
from workers.dev.forwarder import Forwarder
from workers.dev.loadgen import AudioSource, ListenEvent, ListeningPopulation
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
#: each tenant's history, sent before the live load: 8 hours of its 150 listeners
HISTORY = 8000
BAD_EVERY_S = 1.0
#: the floor's topics: the same load, beside the worker's, on the same broker
FLOOR = "floor."
FLOOR_OUT = FLOOR + "out"


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


def _listening(tally: Tally, skip: int) -> list[Iterator[ListenEvent]]:
    """Each tenant's listening, from its ``skip``-th event on (the same populations in every
    phase); the bots among its listeners go into ``tally``."""
    populations = [
        ListeningPopulation(tenant, seed=n, users=150, start_ts=START_TS)
        for n, tenant in enumerate(TENANTS)
    ]
    for population in populations:
        tally.bot_users |= {
            (population.tenant, f"u{u}") for u in range(population.users) if population.is_bot(u)
        }
    streams = [population.events() for population in populations]
    for stream in streams:
        for _ in range(skip):
            next(stream)
    return streams


async def _history(stack: Stack, per_tenant: int, console: Console) -> Tally:
    """Each tenant's ``per_tenant`` oldest listening events at once, as a tenant's history
    arrives when it is onboarded (the models judge a listener against the tenant's
    established listeners: a tenant with no history has no verdicts yet), until the worker
    has answered them all; not timed."""
    tally = Tally()
    producer = await start_producer(stack.broker.bootstrap)
    collector = Collector(stack.broker.bootstrap, OUTPUT_TOPICS)
    collector.on_message = tally.on_message
    await collector.start()
    streams = _listening(tally, 0)
    with console.status(f"each tenant's history: {per_tenant:,} listening events…") as status:
        for i in range(per_tenant * len(streams)):
            event = next(streams[i % len(streams)]).fields
            key = f"{event['tenant']}/{event['user_id']}".encode()
            await producer.send(LISTENING_EVENTS, event_value(**event), key=key)
            tally.sent[LISTENING_EVENTS] += 1
        await producer.flush()
        deadline = time.monotonic() + 300
        while len(tally.answered) < tally.inputs and time.monotonic() < deadline:
            status.update(f"each tenant's history: {len(tally.answered):,} answered…")
            await asyncio.sleep(0.1)
    console.print(
        f"history answered: {len(tally.answered):,} of {tally.inputs:,} events, "
        f"{len(tally.verdicts):,} account verdicts, {len(tally.tracks):,} track verdicts"
    )
    await collector.stop()
    await producer.stop()
    return tally


async def _load(
    stack: Stack,
    seconds: float,
    console: Console,
    *,
    floor: bool = False,
    history: Tally | None = None,
) -> Tally:
    """Real-time audio streams and listening events for ``seconds`` (to the floor's topics,
    without the bad inputs, if ``floor``), then until every input is accounted for; after
    ``history`` (its verdicts carried over, its events not sent again)."""
    prefix = FLOOR if floor else ""
    tally = Tally(outputs=FLOOR_OUT if floor else ANOMALY)
    if history is not None:
        tally.own_only = True
        tally.history_sent = history.inputs
        tally.verdicts.update(history.verdicts)
        tally.tracks.update(history.tracks)
    producer = await start_producer(stack.broker.bootstrap)
    collector = Collector(
        stack.broker.bootstrap,
        (FLOOR_OUT,) if floor else OUTPUT_TOPICS,
        from_end=history is not None,  # the history's outputs are counted already
    )
    collector.on_message = tally.on_message
    await collector.start()
    sources = _sources()
    event_streams = _listening(tally, history.inputs // len(TENANTS) if history else 0)
    bad = bad_inputs()
    seqs = [0] * len(sources)
    sent_events = 0
    next_bad = float("inf") if floor else 0.0
    next_draw = 0.0
    phase = "floor" if floor else "worker"
    with Live(progress(tally, phase), console=console, auto_refresh=False) as live:
        start = time.monotonic()
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
                tally.send(("audio", source.tenant, f"{source.stream}/{seq}"))
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
                tally.send(
                    ("listening", str(event["tenant"]), f"{event['user_id']}/{event['event_id']}")
                )
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
                live.update(progress(tally, phase), refresh=True)
                next_draw = time.monotonic() + 0.25
            await asyncio.sleep(0.005)
        await producer.flush()
        deadline = time.monotonic() + 20
        while tally.accounted() < tally.inputs and time.monotonic() < deadline:
            live.update(progress(tally, f"{phase}: draining"), refresh=True)
            await asyncio.sleep(0.1)
        live.update(progress(tally, f"{phase}: done"), refresh=True)
    await collector.stop()
    await producer.stop()
    return tally


def _hours_ago(hours: int) -> int:
    """Event time for the listening load: recent, so "popular now" means now."""
    return int(time.time() * 1000) - hours * 3_600_000


#: the listening load's event time starts 12 h ago, the same for every phase of a run
START_TS = _hours_ago(12)


def _deliveries(stack: Stack, console: Console) -> tuple[dict[str, Received], dict[str, str]]:
    """Whole tracks that sound different (one through a decoder), tagged before the floor
    is measured; their last tags messages, and what each is."""
    with console.status("rendering the catalogue deliveries (sox, espeak-ng)…"):
        tracks = deliveries()
    if not tracks:
        console.print("catalogue deliveries skipped: they are rendered by sox and espeak-ng")
        return {}, {}
    with console.status(f"{len(tracks)} catalogue deliveries: the tagger reads them whole…"):
        last = asyncio.run(deliver(stack.broker.bootstrap, tracks))
    console.print(f"catalogue deliveries tagged: {len(last)} of {len(tracks)} tracks")
    return last, {f"{t.tenant}/{t.stream}": t.what for t in tracks}


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


def run_demo(*, seconds: float = 20.0, history: int = HISTORY) -> int:
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
        worker.start()
        tagger.start()
        with console.status("starting a worker and a tagger (warm-up, joining their groups)…"):
            ready_s = max(worker.wait_ready(timeout=90), tagger.wait_ready(timeout=90))
        console.print(
            f"worker and tagger ready in {ready_s:.1f} s (metrics on {worker.url('/metrics')})"
        )
        past = asyncio.run(_history(stack, history, console)) if history else None
        delivered, what = _deliveries(stack, console)
        # the floor next, while the worker waits: on the broker as the history left it (the
        # embedded broker slows as it fills), so both are measured on the same broker
        floor = _floor(stack, seconds / 2, console)
        tally = asyncio.run(_load(stack, seconds, console, history=past))
        console.print(summary(tally, floor))
        tags = {**tally.tags, **{key: r.json() for key, r in delivered.items()}}
        console.print(tags_table(tags, what))  # type: ignore[arg-type]
        streams: dict[str, list[str]] = {}
        for body in tags.values():
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
