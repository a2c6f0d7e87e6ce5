"""A real worker process on the embedded broker and Redis, used as a tenant would use it."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
import redis.asyncio as aioredis

from tests.helpers import TS, event_body, schema_error, tone
from tests.integration.conftest import start_worker
from workers.core.records import (
    ACCOUNTS,
    ANOMALY,
    AUDIO_CHUNKS,
    AUDIO_FEATURES,
    DEADLETTER,
    LISTENING_EVENTS,
    POPULARITY,
    RECOMMEND_REQUESTS,
    RECOMMENDATIONS,
    TRACKS,
)
from workers.core.schemas import SCHEMAS
from workers.dev.client import Collector, Received, audio_headers, pcm_bytes, start_producer
from workers.dev.stack import Stack
from workers.dev.testing import WorkerProcess, metric_value


def keyed(prefix: str, *topics: str):
    return lambda r: r.topic in topics and (r.key or b"").decode().startswith(prefix)


async def send_chunks(stack: Stack, tenant: str, stream: str, n: int, **kw: object) -> None:
    producer = await start_producer(stack.broker.bootstrap)
    for seq in range(n):
        samples = tone(sr=int(kw.get("sr", 44100)), channels=int(kw.get("channels", 2)))  # type: ignore[call-overload]
        headers = audio_headers(
            tenant=tenant,
            stream=stream,
            seq=seq,
            sample_rate=int(kw.get("sr", 44100)),  # type: ignore[call-overload]
            channels=int(kw.get("channels", 2)),
            track="t1",
        )  # type: ignore[call-overload]
        await producer.send(
            AUDIO_CHUNKS, pcm_bytes(samples), key=f"{tenant}/{stream}".encode(), headers=headers
        )
    await producer.stop()


async def send_events(stack: Stack, bodies: list[dict[str, object]]) -> None:
    producer = await start_producer(stack.broker.bootstrap)
    for body in bodies:
        await producer.send(
            LISTENING_EVENTS, orjson.dumps(body), key=f"{body['tenant']}/{body['user_id']}".encode()
        )
    await producer.stop()


def check_schema(messages: list[Received]) -> None:
    for message in messages:
        assert schema_error(message.topic, message.json()) is None, message.value


async def test_both_agents_for_several_tenants(
    worker: WorkerProcess, stack: Stack, collector: Collector
) -> None:
    await send_chunks(stack, "acme", "e2e-a", 6, sr=48000, channels=2)
    await send_chunks(stack, "beats", "e2e-b", 4, sr=16000, channels=1)
    await send_events(
        stack,
        [event_body("acme", "e2e-u1", f"e2e-a{i}", track="tA") for i in range(10)]
        + [event_body("beats", "e2e-u1", f"e2e-b{i}", track="tB") for i in range(5)],
    )

    features = await collector.wait_for(keyed("acme/e2e-a", AUDIO_FEATURES), 6)
    assert [m.json()["seq"] for m in features] == list(range(6))  # one stream stays in order
    assert len(await collector.wait_for(keyed("beats/e2e-b", AUDIO_FEATURES), 4)) == 4
    audio_scores = await collector.wait_for(keyed("acme/e2e-a", ANOMALY), 6)
    listening = await collector.wait_for(keyed("acme/e2e-u1", ANOMALY), 10)
    popularity_a = await collector.wait_for(keyed("acme/tA", POPULARITY), 10)
    popularity_b = await collector.wait_for(keyed("beats/tB", POPULARITY), 5)
    assert (len(audio_scores), len(listening), len(popularity_a), len(popularity_b)) == (
        6,
        10,
        10,
        5,
    )
    # each listener's account verdict: one at its first event, then only when it changes
    verdicts = await collector.wait_for(keyed("acme/e2e-u1", ACCOUNTS), 1)
    verdicts_b = await collector.wait_for(keyed("beats/e2e-u1", ACCOUNTS), 1)
    assert verdicts[0].json()["user_id"] == "e2e-u1" and not verdicts[0].json()["is_bot"]
    assert len(verdicts) < 10, "a verdict per change, not per event"
    check_schema(features + audio_scores + listening + popularity_a + popularity_b)
    check_schema(verdicts + verdicts_b)
    assert sorted(m.json()["plays"] for m in popularity_a) == list(range(1, 11))
    assert max(m.json()["plays"] for m in popularity_b) == 5  # tenants counted apart
    assert all(m.json()["tenant"] == "beats" for m in popularity_b)
    assert not collector.matching(keyed("acme/e2e", DEADLETTER))


async def test_inputs_framed_by_a_schema_registry_serializer(
    worker: WorkerProcess, stack: Stack, collector: Collector
) -> None:
    """Events and a request as Confluent's JSON Schema serializer writes them (magic byte
    0, a 4-byte schema id, the JSON) are processed like plain JSON: no dead letter."""
    frame = bytes([0]) + (1234).to_bytes(4, "big")
    producer = await start_producer(stack.broker.bootstrap)
    for i in range(3):
        body = event_body("acme", "sr-u", f"sr-{i}", track="sr-t")
        await producer.send(LISTENING_EVENTS, frame + orjson.dumps(body), key=b"acme/sr-u")
    ask = {"request_id": "sr-q", "tenant": "acme", "user_id": "sr-u", "k": 3}
    await producer.send(RECOMMEND_REQUESTS, frame + orjson.dumps(ask), key=b"acme/sr-q")
    await producer.stop()
    scores = await collector.wait_for(keyed("acme/sr-u", ANOMALY), 3)
    assert sorted(m.json()["ref"] for m in scores) == ["sr-0", "sr-1", "sr-2"]
    answer = await collector.wait_for(keyed("acme/sr-q", RECOMMENDATIONS), 1)
    assert [m.json()["request_id"] for m in answer] == ["sr-q"]
    assert not collector.matching(lambda r: r.topic == DEADLETTER and b"/sr-" in (r.key or b""))


async def test_the_trace_context_follows_a_record_to_its_outputs(
    worker: WorkerProcess, stack: Stack, collector: Collector
) -> None:
    """W3C ``traceparent``/``tracestate`` of an input are on each of its outputs and on its
    dead letter, so a trace crosses the worker."""
    trace = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    trace.append(("tracestate", b"vendor=1"))
    producer = await start_producer(stack.broker.bootstrap)
    good = orjson.dumps(event_body("acme", "tr-u", "tr-e", track="tr-t"))
    await producer.send(LISTENING_EVENTS, good, key=b"acme/tr-u", headers=trace)
    await producer.send(LISTENING_EVENTS, b"{nope", key=b"acme/tr-bad", headers=trace)
    await producer.stop()
    outputs = await collector.wait_for(keyed("acme/tr-", ANOMALY, POPULARITY, DEADLETTER), 3)
    assert {o.topic for o in outputs} == {ANOMALY, POPULARITY, DEADLETTER}
    for output in outputs:
        assert [(n, v) for n, v in output.headers if n in ("traceparent", "tracestate")] == trace


async def test_every_bad_input_is_one_dead_letter(
    worker: WorkerProcess, stack: Stack, collector: Collector
) -> None:
    good = event_body("acme", "bad-u", "bad-ok")
    nan = pcm_bytes(np.full((64, 1), np.nan), encoding="f32le")

    def hdr(**kw: object) -> list[tuple[str, bytes]]:
        base = dict(tenant="acme", stream="bad-s", seq=0, sample_rate=44100, channels=1)
        return audio_headers(**{**base, **kw})  # type: ignore[arg-type]

    cases = [  # (topic, key, value, headers, reason)
        (LISTENING_EVENTS, b"acme/bad-u", b"{nope", [], "malformed-json"),
        (LISTENING_EVENTS, b"acme/bad-u", b"", [], "empty-value"),
        (
            LISTENING_EVENTS,
            b"acme/bad-u",
            orjson.dumps({**good, "type": "buy"}),
            [],
            "schema-invalid",
        ),
        (
            LISTENING_EVENTS,
            b"acme/bad-u",
            orjson.dumps({**good, "ts": 12}),
            [],
            "timestamp-out-of-range",
        ),
        (
            LISTENING_EVENTS,
            b"zzz/bad-u",
            orjson.dumps({**good, "tenant": "zzz"}),
            [],
            "unknown-tenant",
        ),
        (LISTENING_EVENTS, b"acme/other", orjson.dumps(good), [], "bad-key"),
        (AUDIO_CHUNKS, b"acme/bad-s", b"\x00\x01\x02", hdr(), "truncated-pcm"),
        (AUDIO_CHUNKS, b"acme/bad-s", nan, hdr(seq=1, encoding="f32le"), "non-finite-samples"),
        (AUDIO_CHUNKS, b"acme/bad-s", b"\x00\x00" * 64, hdr(sample_rate=999), "bad-headers"),
        (AUDIO_CHUNKS, b"acme/bad-s", b"\x00\x00" * 64, hdr(channels=12), "bad-headers"),
        (AUDIO_CHUNKS, b"acme/bad-s", b"\x00\x00" * 64, [("tenant", b"acme")], "bad-headers"),
        (AUDIO_CHUNKS, b"nobody/bad-s", b"\x00\x00" * 64, hdr(tenant="nobody"), "unknown-tenant"),
    ]
    producer = await start_producer(stack.broker.bootstrap)
    for topic, key, value, headers, _ in cases:
        await producer.send(topic, value, key=key, headers=headers)
    await producer.send(LISTENING_EVENTS, orjson.dumps(good), key=b"acme/bad-u")
    await producer.send(LISTENING_EVENTS, orjson.dumps(good), key=b"acme/bad-u")  # duplicate
    await producer.stop()

    letters = await collector.wait_for(
        lambda r: (
            r.topic == DEADLETTER
            and (r.key or b"").split(b"/")[-1] in (b"bad-u", b"bad-s", b"other")
        ),
        len(cases) + 1,
    )
    assert len(letters) == len(cases) + 1
    by_offset = sorted(
        letters, key=lambda r: (r.header("source-topic"), int(r.header("source-offset") or 0))
    )
    reasons = sorted(r.header("error") or "" for r in by_offset)
    assert reasons == sorted([c[4] for c in cases] + ["duplicate-event"])
    for letter in letters:
        headers = {name: value.decode() for name, value in letter.headers}
        assert SCHEMAS.first_error("deadletter.headers", headers) is None, headers
    assert [r.value for r in letters if r.header("error") == "malformed-json"] == [b"{nope"]
    # a chunk's dead letter carries its headers back (a re-drive needs them) and its time
    cut = next(r for r in letters if r.header("error") == "truncated-pcm")
    assert {n: v for n, v in cut.headers if n.startswith("original-")} == {
        f"original-{n}": v for n, v in hdr()
    }
    assert all(int(r.header("source-timestamp") or 0) > TS for r in letters)
    # the good event between them was processed normally, once
    assert len(await collector.wait_for(keyed("acme/bad-u", ANOMALY), 1)) == 1


async def test_health_ready_and_metrics(worker: WorkerProcess) -> None:
    assert worker.status("/healthz") == 200
    assert worker.status("/ready") == 200
    text = worker.metrics()
    for name in (
        "workers_records_in_total",
        "workers_records_out_total",
        "workers_records_processed_total",
        "workers_deadletters_total",
        "workers_latency_seconds_bucket",
        "workers_stage_seconds_bucket",
        "workers_batch_records_bucket",
    ):
        assert name in text
    assert metric_value(text, "workers_assigned_partitions") == 12  # 3 input topics x 4
    assert metric_value(text, "workers_batch_records_count", topic=AUDIO_CHUNKS) >= 1
    assert (
        metric_value(text, "workers_records_processed_total", topic=AUDIO_CHUNKS, outcome="ok") >= 1
    )
    # per tenant, bounded by the allow-list: a tenant this fleet does not serve is "other"
    per_tenant = "workers_tenant_records_total"
    assert metric_value(text, per_tenant, tenant="acme", topic=LISTENING_EVENTS, outcome="ok") >= 1
    assert metric_value(text, per_tenant, tenant="beats", topic=AUDIO_CHUNKS, outcome="ok") >= 1
    assert (
        metric_value(text, per_tenant, tenant="other", topic=LISTENING_EVENTS, outcome="deadletter")
        >= 1  # the earlier tests' zzz/... events
    )
    assert 'tenant="zzz"' not in text and 'tenant="nobody"' not in text


async def test_state_lives_under_tenant_keys(worker: WorkerProcess, stack: Stack) -> None:
    client = aioredis.Redis.from_url(stack.redis.url)
    names = [name async for name in client.scan_iter()]
    await client.aclose()
    # the tenants' models live with their state, under their hash tags (the popularity
    # forecaster's hash appears once a track's window closes and teaches it)
    assert any(b":reference-moments:listeners" in name for name in names)
    assert names
    # tenants' state under their hash tags; the dead-letter ledger of shared topics (records
    # that may name no served tenant) under the worker's own tag, which no tenant can have
    assert all(name.startswith((b"{acme}:", b"{beats}:", b"{_workers}:")) for name in names)
    ledger = [n for n in names if n.startswith(b"{_workers}:")]
    assert all(n.startswith(b"{_workers}:deadletters:") for n in ledger), ledger


@pytest.mark.parametrize("engine", ["faust", "direct"])
async def test_the_other_engines_end_to_end(
    stack: Stack, collector: Collector, tmp_path_factory: pytest.TempPathFactory, engine: str
) -> None:
    """WORKERS_ENGINE=faust (Faust agents) and =direct (aiokafka): the same contract as the
    default librdkafka engine (each in its own group). Its inputs are a tenant only it
    serves (the module's default worker dead-letters that tenant as unknown), so every
    output read here is the engine's own."""
    own = f"{engine}-only"  # its own tenant: streams, listeners and events
    other = start_worker(
        stack,
        tmp_path_factory.mktemp(engine) / "worker.log",
        WORKERS_ENGINE=engine,
        WORKERS_GROUP_ID=f"{engine}-engine",
        WORKERS_TENANTS=f"acme,beats,{own}",
    )
    try:
        assert (
            metric_value(other.metrics(), "workers_assigned_partitions") == 12
        )  # 3 input topics x 4
        await send_chunks(stack, own, "s", 3, sr=16000, channels=1)
        await send_events(stack, [event_body(own, "u", f"e-{i}") for i in range(10)])
        producer = await start_producer(stack.broker.bootstrap)
        await producer.send(LISTENING_EVENTS, b"{nope", key=f"{own}/u".encode())
        await producer.stop()
        features = await collector.wait_for(keyed(f"{own}/s", AUDIO_FEATURES), 3)
        assert sorted(m.json()["seq"] for m in features) == [0, 1, 2]
        scores = await collector.wait_for(keyed(f"{own}/u", ANOMALY), 10)
        assert sorted(m.json()["ref"] for m in scores) == sorted(f"e-{i}" for i in range(10))
        letters = await collector.wait_for(keyed(f"{own}/u", DEADLETTER), 1)
        # one from the engine (malformed), and the default worker's for the unknown tenant
        assert "malformed-json" in {r.header("error") for r in letters}
        text = other.metrics()  # its own counts (the module's worker reads these too)
        assert (
            metric_value(
                text,
                "workers_deadletters_total",
                source_topic=LISTENING_EVENTS,
                reason="malformed-json",
            )
            >= 1  # it reads the topics from the start: earlier tests' bad records too
        )
        assert (
            metric_value(
                text, "workers_records_processed_total", topic=LISTENING_EVENTS, outcome="ok"
            )
            >= 10
        )
    finally:
        other.terminate()


async def test_a_farm_and_the_tracks_it_pushes_are_caught_from_the_topics(
    worker: WorkerProcess, stack: Stack, collector: Collector
) -> None:
    """70 people over two days and, on the second, a farm of 8 accounts stopping its 4
    targets just past 30 s around the clock, published as a platform would: every farm
    account judged a bot, all in one group, the targets judged pushed on
    predictions.tracks, no person and no other track (its camouflage tracks included)."""
    rng = np.random.default_rng(5)
    hour = 3_600_000
    bodies: list[dict[str, object]] = []
    for p in range(70):  # two days of 20 listens, awake 15 hours a day
        wake = int(rng.integers(6, 10))
        for i in range(40):
            day = 24 * hour * (i // 20)
            ts = TS + day + int(rng.integers(wake, wake + 15)) * hour + int(rng.integers(0, hour))
            track = f"farm-song-{int(rng.integers(0, 60))}"
            skip = rng.random() < 0.2
            played = (
                int(rng.integers(2_000, 25_000)) if skip else int(rng.integers(90_000, 200_000))
            )
            bodies.append(
                event_body(
                    "beats", f"farm-p{p}", f"fp{p}-{i}", track=track, ts=ts, ms_played=played
                )
                | {"type": "skip" if skip else "play"}
            )
    targets = [f"farm-target-{t}" for t in range(4)]
    for a in range(8):  # the second day, around the clock
        for i in range(30):
            ts = TS + 24 * hour + int(rng.integers(0, 24 * hour))
            track = targets[i % 4] if i % 5 else f"farm-song-{int(rng.integers(1, 5))}"
            played = int(rng.integers(31_000, 34_000))
            bodies.append(
                event_body(
                    "beats", f"farm-a{a}", f"fa{a}-{i}", track=track, ts=ts, ms_played=played
                )
            )
    bodies.sort(key=lambda b: int(b["ts"]))  # type: ignore[call-overload]
    # live, day by day: the first day is judged before the second is published
    first = [b for b in bodies if int(b["ts"]) < TS + 24 * hour]  # type: ignore[call-overload]
    await send_events(stack, first)
    await collector.wait_for(keyed("beats/farm-", ANOMALY), len(first), timeout=60)
    await send_events(stack, bodies[len(first) :])
    await collector.wait_for(keyed("beats/farm-", ANOMALY), len(bodies), timeout=60)
    verdicts: dict[str, dict[str, object]] = {}
    for m in collector.matching(keyed("beats/farm-", ACCOUNTS)):
        verdicts[str(m.json()["user_id"])] = m.json()
    tracks: dict[str, dict[str, object]] = {}
    for m in collector.matching(keyed("beats/farm-", TRACKS)):
        tracks[str(m.json()["track_id"])] = m.json()
    check_schema(collector.matching(keyed("beats/farm-", ACCOUNTS, TRACKS)))
    farm = [verdicts[f"farm-a{a}"] for a in range(8)]
    assert all(v["is_bot"] for v in farm), [(v["score"], v["evidence"]) for v in farm]
    assert len({v["group"] for v in farm}) == 1 and farm[0]["group"] in targets
    people = [v for u, v in verdicts.items() if u.startswith("farm-p")]
    assert len(people) == 70 and not any(v["is_bot"] for v in people)
    pushed = {t for t, v in tracks.items() if v["is_suspicious"]}
    assert pushed == set(targets), {t: tracks[t]["score"] for t in tracks}
    assert all(float(tracks[t]["artificial_share"]) >= 0.25 for t in targets)  # type: ignore[arg-type]
