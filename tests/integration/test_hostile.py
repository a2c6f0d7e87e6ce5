"""Valid by the contract, but unusual: records a careful attacker would send, from the topics,
through a real worker. For each class, the triggering records and then good traffic; every
input ends as its outputs or exactly one dead letter, the good traffic after it flows at
normal latency, no first read is marked ``replay``, and nothing else in Redis changes."""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import numpy as np
import orjson
import pytest
import redis.asyncio as aioredis

from tests.helpers import event_body, schema_error, tone
from tests.integration.conftest import start_worker
from workers.core.records import (
    ANOMALY,
    AUDIO_CHUNKS,
    AUDIO_FEATURES,
    DEADLETTER,
    LISTENING_EVENTS,
    POPULARITY,
    RECOMMEND_REQUESTS,
    RECOMMENDATIONS,
)
from workers.dev.client import (
    Collector,
    Received,
    audio_headers,
    pcm_bytes,
    send_raw_headers,
    start_producer,
)
from workers.dev.stack import Stack
from workers.dev.testing import WorkerProcess, metric_value
from workers.state import keys

Headers = list[tuple[str, bytes]]
HOUR = 3_600_000


@pytest.fixture(scope="module")
def hostile_worker(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    process = start_worker(stack, tmp_path_factory.mktemp("hostile") / "worker.log")
    yield process
    process.terminate()


def position_of(r: Received) -> str:
    return f"{r.header('source-topic')}:{r.header('source-partition')}:{r.header('source-offset')}"


class Run:
    """Publishes records, remembers what each should become, and checks it came out."""

    def __init__(self, stack: Stack, collector: Collector) -> None:
        self.stack = stack
        self.collector = collector
        self.letters: dict[str, str] = {}  # position -> expected reason
        self.scored: set[str] = set()  # event_ids that must be scored
        self.chunks: set[tuple[str, int]] = set()  # (stream, seq) that must get features

    async def start(self) -> Run:
        self.producer = await start_producer(self.stack.broker.bootstrap)
        return self

    async def send(self, topic: str, key: bytes, value: bytes, headers: Headers | None) -> str:
        meta = await (await self.producer.send(topic, value, key=key, headers=headers or None))
        return f"{meta.topic}:{meta.partition}:{meta.offset}"

    async def event(
        self, body: dict[str, object], *, reason: str | None = None, raw: bytes | None = None
    ) -> str:
        key = f"{body['tenant']}/{body['user_id']}".encode()
        value = raw if raw is not None else orjson.dumps(body)
        where = await self.send(LISTENING_EVENTS, key, value, None)
        if reason is None:
            self.scored.add(str(body["event_id"]))
        else:
            self.letters[where] = reason
        return where

    async def chunk(
        self, stream: str, seq: int, samples: np.ndarray, *, encoding: str = "s16le", **kw: str
    ) -> str:
        reason = kw.pop("reason", None)
        headers = audio_headers(
            tenant="acme",
            stream=stream,
            seq=seq,
            sample_rate=16000,
            channels=samples.shape[1],
            encoding=encoding,
        )
        value = pcm_bytes(samples, encoding=encoding)
        where = await self.send(AUDIO_CHUNKS, f"acme/{stream}".encode(), value, headers)
        if reason is None:
            self.chunks.add((stream, seq))
        else:
            self.letters[where] = reason
        return where

    async def good_traffic(self, phase: str, n: int = 20) -> None:
        for i in range(n):
            await self.event(
                event_body("acme", f"good-{i % 7}", f"{phase}-{i}", ts=_now() - 60_000)
            )
            await asyncio.sleep(0.004)

    def scored_refs(self) -> Counter[str]:
        return Counter(
            str(m.json()["ref"]) for m in self.collector.matching(lambda r: r.topic == ANOMALY)
        )

    async def settled(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            refs = self.scored_refs()
            letters = {position_of(r) for r in self.collector.matching(_is_letter)}
            features = {
                (m.json()["stream"], m.json()["seq"])
                for m in self.collector.matching(lambda r: r.topic == AUDIO_FEATURES)
            }
            if (
                self.scored <= set(refs)
                and set(self.letters) <= letters
                and self.chunks <= features
            ):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # a second output or letter for any input would arrive now

    def latencies(self, prefix: str) -> list[float]:
        return [
            float(m.json()["latency_ms"])  # type: ignore[arg-type]
            for m in self.collector.matching(lambda r: r.topic == ANOMALY)
            if str(m.json()["ref"]).startswith(prefix)
        ]


def _is_letter(r: Received) -> bool:
    return r.topic == DEADLETTER


def _now() -> int:
    return int(time.time() * 1000)


async def _dump(client: aioredis.Redis, tenant: str) -> dict[bytes, bytes]:
    """The tenant's state, but for its event-time clock: how far each partition was read
    (a refused record was read too)."""
    return {
        name: await client.dump(name)
        async for name in client.scan_iter(f"{{{tenant}}}:*")
        if b":event-time:" not in name
    }


async def test_hostile_but_valid_input(
    hostile_worker: WorkerProcess, stack: Stack, redis_client_for: aioredis.Redis
) -> None:
    redis = redis_client_for
    collector = await Collector(stack.broker.bootstrap).start()
    run = await Run(stack, collector).start()
    now = _now()
    try:
        await run.good_traffic("base", 60)
        await run.settled()

        # 1. a key of another type where a listener's hash goes (written by someone else):
        # only that record stops, as one state-error; nothing of the tenant changes
        await redis.set(keys.user("acme", "poisoned"), b"not a hash")
        before = await _dump(redis, "acme")
        await run.event(event_body("acme", "poisoned", "h-poison", ts=now), reason="state-error")
        await collector.wait_for(_is_letter, 1, timeout=30)
        assert await _dump(redis, "acme") == before, "a refused record wrote nothing"
        await run.good_traffic("after-poison")

        # 2. ids with ':', '@' and '.', and one that spells another user's key in the old
        # layout: each its own listener
        for user in ("h-u1", "h-u1:tracks", "h-u1:plays", "a@b.c", "x.y:z"):
            await run.event(event_body("acme", user, f"id-{user}", ts=now))
        await run.good_traffic("after-ids")

        # 3. whole-number floats are integers; anything else is schema-invalid
        await run.event({**event_body("acme", "h-float", "f-1", ts=now), "ms_played": 31000.0})
        await run.event({**event_body("acme", "h-float", "f-2"), "ts": float(now + 1000)})
        await run.event(
            {**event_body("acme", "h-float", "f-3", ts=now), "ms_played": 31000.5},
            reason="schema-invalid",
        )
        await run.event(
            {**event_body("acme", "h-float", "f-4", ts=now), "ms_played": True},
            reason="schema-invalid",
        )
        await run.good_traffic("after-floats")

        # 4. huge and tiny numbers
        await run.event(event_body("acme", "h-num", "n-0", ts=now, ms_played=0))
        await run.event(event_body("acme", "h-num", "n-max", ts=now, ms_played=86_400_000))
        for i, (field, value, reason) in enumerate(
            [
                ("ms_played", 86_400_001, "schema-invalid"),
                ("ms_played", 10**18, "schema-invalid"),
                ("ms_played", -1, "schema-invalid"),
                ("ts", 12, "timestamp-out-of-range"),
                ("ts", 10**13, "schema-invalid"),
                ("ts", 1e300, "schema-invalid"),
            ]
        ):
            body = {**event_body("acme", "h-num", f"n-bad-{i}", ts=now), field: value}
            await run.event(body, reason=reason)
        huge = event_body("acme", "h-num", "n-huge", ts=now)  # beyond 64 bits: raw JSON
        raw = orjson.dumps(huge).replace(b'"ms_played":120000', b'"ms_played":' + b"9" * 40)
        await run.event(huge, reason="schema-invalid", raw=raw)
        await run.good_traffic("after-numbers")

        # 5. a near-future event cannot reset a track's live window; a back-filled one cannot
        # pin a listener's first event time back
        # (each listener's events go to its own partition, which may be read in any order:
        # each step waits for the previous one's outputs, so the order is the one sent)
        for i in range(3):
            await run.event(event_body("acme", f"h-fan{i}", f"live-{i}", track="h-live", ts=now))
        await run.settled(timeout=30)
        await run.event(event_body("acme", "h-fan9", "early", track="h-live", ts=now + 23 * HOUR))
        await run.settled(timeout=30)
        await run.event(event_body("acme", "h-fan3", "live-3", track="h-live", ts=now))
        await run.event(event_body("acme", "h-fan0", "backfill", ts=978_307_200_000))
        await run.good_traffic("after-time")

        # 6. samples: far outside full scale refused, a little over full scale processed
        loud = np.full((1600, 1), 1e30)
        await run.chunk("h-s1", 0, loud, encoding="f32le", reason="samples-out-of-range")
        over = tone(seconds=0.2, sr=16000, channels=1) * 5.0  # peaks at 1.5
        await run.chunk("h-s2", 0, over, encoding="f32le")
        await run.chunk("h-s2", 1, over * 1e-6, encoding="f32le")  # tiny
        await run.good_traffic("after-samples")

        # 7. an event id is the tenant's: used again by another listener it is a duplicate,
        # while another tenant's events may use it freely
        await run.event(event_body("acme", "h-id1", "h-shared-id", ts=now))
        await run.settled(timeout=30)
        await run.event(
            event_body("acme", "h-id2", "h-shared-id", ts=now), reason="duplicate-event"
        )
        beats_key = b"beats/h-id1"
        await run.send(
            LISTENING_EVENTS,
            beats_key,
            orjson.dumps(event_body("beats", "h-id1", "h-shared-id", ts=now)),
            None,
        )
        await collector.wait_for(lambda r: r.topic == ANOMALY and r.key == beats_key, 1, timeout=30)
        await run.good_traffic("after-ids-shared")

        await run.settled(timeout=90)

        # every input accounted for: its outputs, or exactly one dead letter
        letters = Counter(position_of(r) for r in collector.matching(_is_letter))
        assert {p: letters[p] for p in run.letters} == dict.fromkeys(run.letters, 1)
        for letter in collector.matching(_is_letter):
            if position_of(letter) in run.letters:
                assert letter.header("error") == run.letters[position_of(letter)]
        refs = Counter(
            str(m.json()["ref"])
            for m in collector.matching(lambda r: r.topic == ANOMALY and r.key != beats_key)
        )
        assert {r: refs[r] for r in run.scored} == dict.fromkeys(run.scored, 1)
        features = [m.json() for m in collector.matching(lambda r: r.topic == AUDIO_FEATURES)]
        assert run.chunks <= {(f["stream"], f["seq"]) for f in features}
        # every published value is valid by its schema: no null where a number belongs
        for m in collector.matching(lambda r: r.topic in (AUDIO_FEATURES, ANOMALY, POPULARITY)):
            assert schema_error(m.topic, m.json()) is None, m.json()
            assert m.json().get("replay") is False, "no first read is a replay"
        # the float event counted its 31000 ms, and nothing was half-applied
        user = await redis.hgetall(keys.user("acme", "h-float"))
        assert int(user[b"events"]) == 2
        assert int(user[b"ms_played"]) == 31_000 + 120_000
        # the early event did not reset the live window: the 4th live play counts 4 (+1 early
        # in its own window), and the back-filled one left first_ts within the bound
        live = [
            m.json()
            for m in collector.matching(lambda r: r.topic == POPULARITY)
            if m.json()["ref"] == "live-3"
        ]
        assert live[0]["plays"] == 4
        fan0 = await redis.hgetall(keys.user("acme", "h-fan0"))
        assert int(fan0[b"first_ts"]) >= now - 3 * HOUR
        metrics = hostile_worker.metrics()
        assert metric_value(metrics, "workers_early_events_total", topic=LISTENING_EVENTS) >= 1
        assert metric_value(metrics, "workers_late_events_total", topic=LISTENING_EVENTS) >= 1
        errors = [
            r for r in collector.matching(_is_letter) if r.header("error") == "internal-error"
        ]
        assert not errors
        assert hostile_worker.status("/healthz") == 200
        # good traffic after each hostile batch at the latency it has alone
        base = float(np.percentile(run.latencies("base-"), 50))
        after = float(np.percentile(run.latencies("after-"), 50))
        print(
            f"\nhostile input: {len(run.letters)} dead letters as expected, "
            f"{len(run.scored)} events and {len(run.chunks)} chunks scored once; good events "
            f"p50 {after:.2f} ms after hostile batches vs {base:.2f} ms before"
        )
        assert after <= 2 * base + 1.0
    finally:
        await collector.stop()
        await run.producer.stop()


@pytest.fixture
async def redis_client_for(stack: Stack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(stack.redis.url)
    yield client
    await client.aclose()


def _fuzzed_headers(rng: random.Random) -> list[tuple[bytes, bytes | None]]:
    """Up to four headers: names of any bytes (a third not UTF-8), values of any bytes."""
    out: list[tuple[bytes, bytes | None]] = []
    for _ in range(rng.randrange(0, 5)):
        pick = rng.random()
        if pick < 0.33:
            name = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        elif pick < 0.66:
            name = "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(0, 9)))
            name = name.encode("utf-8", "surrogatepass")
        else:
            name = rng.choice([b"x-trace", b"", b"tenant\x00", b"\xff", b"content-type"])
        value = None if rng.random() < 0.2 else rng.randbytes(rng.randrange(0, 17))
        out.append((name, value))
    return out


def _is_utf8(name: bytes) -> bool:
    """Whether librdkafka hands the name over as text: it keeps names as C strings, so a
    name is read up to its first NUL byte (the rest is never seen)."""
    name = name.split(b"\x00")[0]
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return "\udc80" not in name.decode("utf-8", "surrogatepass")


async def test_a_fuzz_of_header_names_and_values_on_every_input_topic(
    hostile_worker: WorkerProcess, stack: Stack
) -> None:
    """10,000 records a topic with random header names (bytes, a third not UTF-8) and
    values: the worker stays up, and every record ends as its outputs or exactly one dead
    letter (``bad-headers`` for a name that is not UTF-8)."""
    rng = random.Random(21)
    n = 10_000
    producer = await start_producer(stack.broker.bootstrap)
    collector = await Collector(stack.broker.bootstrap).start()
    expected: dict[str, tuple[str, str | None]] = {}  # position -> (identity, reason)
    now = _now()
    samples = pcm_bytes(tone(seconds=0.01, sr=8000, channels=1))
    try:
        plans: dict[str, list[tuple[bytes, bytes, list[tuple[bytes, bytes | None]], str]]] = {
            LISTENING_EVENTS: [],
            AUDIO_CHUNKS: [],
            RECOMMEND_REQUESTS: [],
        }
        seqs: Counter[str] = Counter()
        for i in range(n):
            fuzz = _fuzzed_headers(rng)
            user = f"fz-{i % 211}"
            body = event_body("acme", user, f"fz-e{i}", track=f"fz-t{i % 97}", ts=now - i)
            plans[LISTENING_EVENTS].append(
                (f"acme/{user}".encode(), orjson.dumps(body), fuzz, f"fz-e{i}")
            )
            request = {"request_id": f"fz-r{i}", "tenant": "acme", "track_id": f"fz-t{i % 97}"}
            plans[RECOMMEND_REQUESTS].append(
                (b"acme/fz-r%d" % i, orjson.dumps(request), _fuzzed_headers(rng), f"fz-r{i}")
            )
            stream = f"fz-s{i % 53}"
            if rng.random() < 0.5:  # a real chunk with extra headers; else only the fuzz
                chunk = [
                    (name.encode(), value)
                    for name, value in audio_headers(
                        tenant="acme",
                        stream=stream,
                        seq=seqs[stream],
                        sample_rate=8000,
                        channels=1,
                    )
                ]
                fuzz = [
                    *chunk,
                    *((nm, v) for nm, v in fuzz if nm.split(b"\x00")[0] not in _AUDIO_NAMES),
                ]
                identity = f"{stream}#{seqs[stream]}"
                seqs[stream] += 1 if all(_is_utf8(nm) for nm, _ in fuzz) else 0
            else:
                identity = f"{stream}#none"
            plans[AUDIO_CHUNKS].append((f"acme/{stream}".encode(), samples, fuzz, identity))
        for topic, plan in plans.items():
            by_partition: dict[int, list[int]] = {}
            for index, (key, _, _, _) in enumerate(plan):
                by_partition.setdefault(zlib.crc32(key) % 4, []).append(index)
            for partition, indexes in by_partition.items():
                offsets = await send_raw_headers(
                    producer, topic, [plan[i][:3] for i in indexes], partition=partition
                )
                for index, offset in zip(indexes, offsets, strict=True):
                    _, _, headers, identity = plan[index]
                    readable = all(_is_utf8(name) for name, _ in headers)
                    reason = None if readable else "bad-headers"
                    if topic == AUDIO_CHUNKS and identity.endswith("#none") and readable:
                        reason = "any"  # random headers only: some dead letter
                    expected[f"{topic}:{partition}:{offset}"] = (identity, reason)

        def accounted() -> tuple[Counter[str], set[str]]:
            letters = Counter(position_of(r) for r in collector.matching(_is_letter))
            answered = {str(m.json()["ref"]) for m in collector.matching(_scored)}
            answered |= {
                str(m.json()["request_id"])
                for m in collector.matching(lambda r: r.topic == RECOMMENDATIONS)
            }
            answered |= {
                f"{m.json()['stream']}#{m.json()['seq']}"
                for m in collector.matching(lambda r: r.topic == AUDIO_FEATURES)
            }
            return letters, answered

        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert hostile_worker.process is not None
            assert hostile_worker.process.poll() is None, "the worker died"
            letters, answered = accounted()
            if all(p in letters or e[0] in answered for p, e in expected.items()):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)  # a second output or letter for any input would arrive now
        letters, answered = accounted()
        kinds = Counter(
            r.header("error") for r in collector.matching(_is_letter) if position_of(r) in expected
        )
        details = {position_of(r): r.header("error-detail") for r in collector.matching(_is_letter)}
        missing = [p for p, e in expected.items() if p not in letters and e[0] not in answered]
        assert not missing, f"{len(missing)} records never answered, e.g. {missing[:3]}"
        for position, (identity, reason) in expected.items():
            if reason is None:
                assert position not in letters, (identity, details.get(position))
            else:
                assert letters[position] == 1, f"{position}: {letters[position]} dead letters"
        by_reason = {
            position_of(r): r.header("error")
            for r in collector.matching(_is_letter)
            if position_of(r) in expected
        }
        wrong = {p: by_reason[p] for p, e in expected.items() if e[1] == "bad-headers"}
        assert set(wrong.values()) == {"bad-headers"}
        assert "internal-error" not in kinds
        assert hostile_worker.status("/healthz") == 200
        print(f"\nheader fuzz: {3 * n} records, dead letters {dict(kinds)}")
    finally:
        await collector.stop()
        await producer.stop()


_AUDIO_NAMES = {
    b"tenant",
    b"stream",
    b"seq",
    b"sample-rate",
    b"channels",
    b"encoding",
    b"track",
    b"ts",
}


def _scored(r: Received) -> bool:
    return r.topic == ANOMALY
