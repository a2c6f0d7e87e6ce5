"""A large mixed batch of hostile input between good records, through a real worker.

Every bad record must end as exactly one dead letter (matched by its source position, with
its original bytes and a stable reason) and one count in `workers_deadletters_total`; the
good records between them are processed once each, at the latency they have without any
bad input around (baseline measured in the same run).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.helpers import TS, event_body, tone
from tests.integration.conftest import start_worker
from workers.core.records import ANOMALY, AUDIO_CHUNKS, AUDIO_FEATURES, DEADLETTER, LISTENING_EVENTS
from workers.dev.client import Collector, audio_headers, pcm_bytes, start_producer
from workers.dev.stack import Stack
from workers.dev.testing import WorkerProcess, metric_value

ROUNDS = 12  # every bad case is sent this many times, each time between good records
Headers = list[tuple[str, bytes]]
Case = tuple[str, bytes | None, bytes, Headers, str]  # topic, key, value, headers, reason


@pytest.fixture(scope="module")
def mixed_worker(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    process = start_worker(stack, tmp_path_factory.mktemp("bad") / "worker.log")
    yield process
    process.terminate()


def listening_cases(r: int) -> list[Case]:
    good = event_body("acme", f"mixu{r}", f"mix-bad-{r}")
    key = f"acme/mixu{r}".encode()

    def with_(**change: object) -> bytes:
        return orjson.dumps({**good, **change})

    reasons: list[tuple[bytes | None, bytes, str]] = [
        (key, b"{nope", "malformed-json"),
        (key, b'{"ts": NaN}', "malformed-json"),
        (key, b'{"event_id": "\xff\xfe"}', "malformed-json"),  # not UTF-8
        (key, b"[" * 5000 + b"]" * 5000, "malformed-json"),  # nested past the parser's limit
        (key, b"", "empty-value"),
        (key, orjson.dumps({**good, "pad": "x" * 70_000}), "oversized"),
        (key, b"[]", "schema-invalid"),
        (key, b"42", "schema-invalid"),
        (key, with_(ms_played="abc"), "schema-invalid"),  # wrong type
        (key, orjson.dumps({k: v for k, v in good.items() if k != "user_id"}), "schema-invalid"),
        (key, with_(ms_played=2**62), "schema-invalid"),  # huge value
        (key, with_(track_id="t" * 5000), "schema-invalid"),  # huge id
        (key, with_(tenant="../acme"), "schema-invalid"),  # path in a tenant id
        (key, with_(tenant="acme*"), "schema-invalid"),  # glob in a tenant id
        (key, with_(tenant="{acme}"), "schema-invalid"),  # a hash tag in a tenant id
        (key, with_(user_id="u?*"), "schema-invalid"),
        (key, with_(event_id="e1\n"), "schema-invalid"),
        (key, with_(ts=12), "timestamp-out-of-range"),  # far past (seconds, not ms)
        (key, with_(ts=int(time.time() * 1000) + 30 * 86_400_000), "timestamp-out-of-range"),
        (b"zzz/" + key.split(b"/")[1], with_(tenant="zzz"), "unknown-tenant"),
        (b"acme/someone-else", with_(), "bad-key"),
        (None, with_(), "bad-key"),
    ]
    return [(LISTENING_EVENTS, k, v, [], reason) for k, v, reason in reasons]


def audio_cases(r: int) -> list[Case]:
    stream = f"mix-bad-s{r}"
    key = f"acme/{stream}".encode()

    def hdr(**kw: object) -> Headers:
        base = dict(tenant="acme", stream=stream, seq=0, sample_rate=16000, channels=1)
        return audio_headers(**{**base, **kw})  # type: ignore[arg-type]

    def without(name: str) -> Headers:
        return [(k, v) for k, v in hdr() if k != name]

    pcm = b"\x00\x01" * 800
    nan = pcm_bytes(np.full((800, 1), np.nan), encoding="f32le")
    inf = pcm_bytes(np.full((800, 1), np.inf), encoding="f32le")
    reasons: list[tuple[bytes | None, bytes, Headers, str]] = [
        (key, b"\x00\x01\x02", hdr(), "truncated-pcm"),  # odd byte count
        (key, b"\x00" * 6, hdr(channels=2), "truncated-pcm"),  # not whole frames
        (key, nan, hdr(encoding="f32le"), "non-finite-samples"),
        (key, inf, hdr(encoding="f32le"), "non-finite-samples"),
        (key, b"", hdr(), "empty-value"),
        (key, b"\x00\x00" * 16000 * 11, hdr(), "oversized"),  # 11 s in one chunk
        (key, pcm, hdr(sample_rate=0), "bad-headers"),
        (key, pcm, hdr(sample_rate=10**9), "bad-headers"),
        (key, pcm, [*without("sample-rate"), ("sample-rate", b"abc")], "bad-headers"),
        (key, pcm, hdr(channels=0), "bad-headers"),
        (key, pcm, hdr(channels=1000), "bad-headers"),
        (key, pcm, hdr(encoding="mp3"), "bad-headers"),
        (key, pcm, without("seq"), "bad-headers"),
        (key, pcm, [*without("seq"), ("seq", b"-1")], "bad-headers"),
        (key, pcm, [*without("stream"), ("stream", b"s*")], "bad-headers"),
        (key, pcm, [*without("tenant"), ("tenant", b"../acme")], "bad-headers"),
        (key, pcm, [*without("tenant"), ("tenant", b"\xff")], "bad-headers"),
        (key, pcm, [], "bad-headers"),
        (key, pcm, hdr(ts=12), "timestamp-out-of-range"),
        (b"nobody/" + stream.encode(), pcm, hdr(tenant="nobody"), "unknown-tenant"),
        (b"acme/elsewhere", pcm, hdr(), "bad-key"),
    ]
    return [(AUDIO_CHUNKS, k, v, h, reason) for k, v, h, reason in reasons]


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def test_a_large_mixed_batch_of_bad_input(
    mixed_worker: WorkerProcess, stack: Stack, tmp_path: Path
) -> None:
    collector = await Collector(stack.broker.bootstrap).start()
    producer = await start_producer(stack.broker.bootstrap)
    chunk = pcm_bytes(tone(seconds=0.1, sr=16000, channels=1))
    before = mixed_worker.metrics()

    async def send(topic: str, key: bytes | None, value: bytes, headers: Headers) -> str:
        meta = await (await producer.send(topic, value, key=key, headers=headers or None))
        return f"{meta.topic}:{meta.partition}:{meta.offset}"

    async def good_event(i: int, phase: str) -> None:
        body = event_body("acme", f"mixu{i % 20}", f"{phase}-{i}", ts=TS + i * 1000)
        await send(LISTENING_EVENTS, f"acme/mixu{i % 20}".encode(), orjson.dumps(body), [])

    def good_latencies(phase: str) -> list[float]:
        return [
            float(m.json()["latency_ms"])  # type: ignore[arg-type]
            for m in collector.matching(lambda r: r.topic == ANOMALY)
            if str(m.json()["ref"]).startswith(f"{phase}-")
        ]

    try:
        # baseline: good events alone, paced like the mixed phase
        for i in range(400):
            await good_event(i, "base")
            await asyncio.sleep(0.004)
        await collector.wait_for(
            lambda r: r.topic == ANOMALY and str(r.json()["ref"]).startswith("base-"), 400
        )

        expected: dict[str, tuple[bytes, str]] = {}  # source position -> (value, reason)
        goods = audio_seq = 0
        for r in range(ROUNDS):
            cases = listening_cases(r) + audio_cases(r)
            # a genuine duplicate of each kind: the same event id / seq in a second record
            dup_body = orjson.dumps(event_body("acme", f"mixu{r}", f"mix-dup-{r}"))
            await send(LISTENING_EVENTS, f"acme/mixu{r}".encode(), dup_body, [])
            dup_headers = audio_headers(
                tenant="acme", stream=f"mix-dup{r}", seq=0, sample_rate=16000, channels=1
            )
            await send(AUDIO_CHUNKS, f"acme/mix-dup{r}".encode(), chunk, dup_headers)
            cases += [
                (LISTENING_EVENTS, f"acme/mixu{r}".encode(), dup_body, [], "duplicate-event"),
                (AUDIO_CHUNKS, f"acme/mix-dup{r}".encode(), chunk, dup_headers, "duplicate-chunk"),
            ]
            for topic, key, value, headers, reason in cases:
                expected[await send(topic, key, value, headers)] = (value, reason)
                await good_event(goods, "mix")  # a good record after every bad one
                goods += 1
                if goods % 10 == 0:  # and a good audio chunk now and then
                    seq = audio_seq + (5 if audio_seq == 20 else 0)  # one seq gap
                    good_headers = audio_headers(
                        tenant="acme", stream="mix-good", seq=seq, sample_rate=16000, channels=1
                    )
                    await send(AUDIO_CHUNKS, b"acme/mix-good", chunk, good_headers)
                    audio_seq = seq + 1
                await asyncio.sleep(0.004)

        letters = await collector.wait_for(
            lambda r: (
                r.topic == DEADLETTER
                and f"{r.header('source-topic')}:{r.header('source-partition')}:"
                f"{r.header('source-offset')}"
                in expected
            ),
            len(expected),
            timeout=90,
        )
        await collector.wait_for(
            lambda r: r.topic == ANOMALY and str(r.json()["ref"]).startswith("mix-"), goods
        )
        await asyncio.sleep(1.0)  # a second letter for any input would arrive now
        letters = collector.matching(lambda r: r.topic == DEADLETTER)
        by_position = Counter(
            f"{r.header('source-topic')}:{r.header('source-partition')}:{r.header('source-offset')}"
            for r in letters
        )
        assert {p for p in by_position if p in expected} == set(expected), "one each"
        assert all(by_position[p] == 1 for p in expected), "never two"
        for letter in letters:
            position = (
                f"{letter.header('source-topic')}:{letter.header('source-partition')}:"
                f"{letter.header('source-offset')}"
            )
            if position in expected:
                value, reason = expected[position]
                assert (letter.header("error"), letter.value) == (reason, value), position
                assert letter.header("error-detail")

        # every count on /metrics, by topic and reason
        after = mixed_worker.metrics()
        wanted = Counter((p.split(":")[0], reason) for p, (_, reason) in expected.items())
        for (topic, reason), count in wanted.items():
            counted = metric_value(
                after, "workers_deadletters_total", source_topic=topic, reason=reason
            ) - metric_value(before, "workers_deadletters_total", source_topic=topic, reason=reason)
            assert counted == count, (topic, reason)

        # the good records between them: each processed once, the seq gap flagged, not refused
        mix = Counter(
            str(m.json()["ref"])
            for m in collector.matching(lambda r: r.topic == ANOMALY)
            if str(m.json()["ref"]).startswith("mix-") and not m.json().get("replay")
        )
        assert set(mix) == {f"mix-{i}" for i in range(goods)} | {
            f"mix-dup-{r}" for r in range(ROUNDS)
        }
        assert max(mix.values()) == 1
        audio = [
            m.json()
            for m in collector.matching(lambda r: r.topic == AUDIO_FEATURES)
            if m.json()["stream"] == "mix-good"
        ]
        assert len(audio) == goods // 10
        assert sum(bool(a["quality"]["seq_gap"]) for a in audio) == 1  # type: ignore[index]

        base, mixed = good_latencies("base"), good_latencies("mix")
        figures = {
            "base": (_percentile(base, 50), _percentile(base, 99)),
            "mixed": (_percentile(mixed, 50), _percentile(mixed, 99)),
        }
        reasons = Counter(reason for _, reason in expected.values())
        print(
            f"\nmixed bad input: {len(expected)} bad records ({len(reasons)} reasons, "
            f"{len(listening_cases(0)) + len(audio_cases(0)) + 2} kinds x {ROUNDS}) between "
            f"{goods} good events and {goods // 10} good chunks; dead letters "
            f"{len(expected)}, one each, all counted; good events in-worker latency p50/p99 "
            f"{figures['mixed'][0]:.2f}/{figures['mixed'][1]:.2f} ms vs "
            f"{figures['base'][0]:.2f}/{figures['base'][1]:.2f} ms with no bad input; "
            f"by reason {dict(sorted(reasons.items()))}"
        )
        # "at normal latency": the same order as without bad input (generous: 2 shared cores)
        assert figures["mixed"][0] <= 2 * figures["base"][0] + 1.0
    finally:
        await collector.stop()
        await producer.stop()
