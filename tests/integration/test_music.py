"""Music understanding as a tenant uses it: a core worker and a tagger on the real broker
and Redis; audio rendered by sox and espeak-ng in, tags out; listening sessions and
recommendation requests in, recommendations (or exactly one dead letter each) out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import numpy as np
import orjson
import pytest
import soxr

from tests.helpers import event_body, needs, schema_error
from tests.integration.conftest import start_worker
from workers.core.records import (
    AUDIO_CHUNKS,
    DEADLETTER,
    LISTENING_EVENTS,
    POPULARITY,
    RECOMMEND_REQUESTS,
    RECOMMENDATIONS,
    TAGS,
)
from workers.dev import corpus, decoders
from workers.dev.client import Collector, audio_headers, pcm_bytes, start_producer
from workers.dev.stack import Stack
from workers.dev.testing import WorkerProcess, metric_value
from workers.runtime.settings import VERSION


@pytest.fixture(scope="module", autouse=True)
def _renderers() -> None:
    needs(corpus.available(), "sox and espeak-ng", "apt-get install sox espeak-ng")


SR = 22050
NOW = int(time.time() * 1000)
#: new ids (listeners, tracks, streams) a tenant may create a day in this module
QUOTA = 40


@pytest.fixture(scope="module")
def worker(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("core") / "core.log"
    process = start_worker(stack, log, WORKERS_TENANT_NEW_IDS_PER_DAY=str(QUOTA))
    yield process
    process.terminate()


@pytest.fixture(scope="module")
def tagger(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("tagger") / "tagger.log"
    process = start_worker(
        stack, log, WORKERS_ROLE="tagger", WORKERS_TENANT_NEW_IDS_PER_DAY=str(QUOTA)
    )
    yield process
    process.terminate()


async def send_audio(
    stack: Stack, tenant: str, stream: str, track: str | None, audio: np.ndarray, *, sr: int = SR
) -> None:
    producer = await start_producer(stack.broker.bootstrap)
    step = sr // 2
    for seq, start in enumerate(range(0, audio.size, step)):
        headers = audio_headers(
            tenant=tenant, stream=stream, seq=seq, sample_rate=sr, channels=1, track=track
        )
        value = pcm_bytes(audio[start : start + step, None])
        await producer.send(AUDIO_CHUNKS, value, key=f"{tenant}/{stream}".encode(), headers=headers)
    await producer.stop()


async def send(stack: Stack, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    producer = await start_producer(stack.broker.bootstrap)
    for key, value in items:
        await producer.send(topic, value, key=key)
    await producer.stop()


def request(rid: str, **subject: object) -> tuple[bytes, bytes]:
    return f"acme/{rid}".encode(), orjson.dumps({"request_id": rid, "tenant": "acme", **subject})


def keyed(topic: str, key: str):  # type: ignore[no-untyped-def]
    return lambda r: r.topic == topic and r.key == key.encode()


async def test_tags_similar_tracks_and_next_tracks(
    worker: WorkerProcess, tagger: WorkerProcess, stack: Stack, collector: Collector
) -> None:
    clips = {
        "mu-a": ("tr:a", corpus.music(0, sr=SR, seconds=7.0)),
        "mu-b": ("tr:b", corpus.music(4, sr=SR, seconds=7.0)),
        "sp-a": ("tr:s", corpus.speech(0, sr=SR, seconds=7.0)),
    }
    for stream, (track, audio) in clips.items():
        await send_audio(stack, "acme", stream, track, audio)
    for stream in clips:
        windows = await collector.wait_for(keyed(TAGS, f"acme/{stream}"), 2, timeout=60)
        assert [w.json()["window"]["index"] for w in windows] == [0, 1]  # type: ignore[index]
        for window in windows:
            assert schema_error(TAGS, window.json()) is None
        last = windows[-1].json()
        assert last["aggregate"]["windows"] == 2 and len(last["tags"]) == 50  # type: ignore[index, arg-type]
        assert last["track"] == clips[stream][0]

    # sessions: many listeners play X then Y; one played X then Z
    sessions = [(f"fan{i}", ["X", "Y"]) for i in range(5)] + [("odd", ["X", "Z"])]
    events = []
    for user, tracks in sessions:
        for n, track in enumerate(tracks):
            body = event_body("acme", user, f"m-{user}-{n}", track=track, ts=NOW + n * 200_000)
            events.append((f"acme/{user}".encode(), orjson.dumps(body)))
    await send(stack, LISTENING_EVENTS, events)
    # the topics are independent: wait until the sessions are applied before asking
    await collector.wait_for(
        lambda r: r.topic == POPULARITY and (r.key or b"") in (b"acme/X", b"acme/Y", b"acme/Z"),
        len(events),
    )
    await send(
        stack,
        RECOMMEND_REQUESTS,
        [
            request("r:similar", track_id="tr:a", k=2),
            request("r-stream", stream="sp-a", k=3),
            request("r-next", track_id="X", k=2),
            request("r-user", user_id="odd", k=3),
            request("r-new", user_id="nobody", k=1),
        ],
    )
    answers = {}
    for rid in ("r:similar", "r-stream", "r-next", "r-user", "r-new"):
        (reply,) = await collector.wait_for(keyed(RECOMMENDATIONS, f"acme/{rid}"), 1)
        assert schema_error(RECOMMENDATIONS, reply.json()) is None
        answers[rid] = reply.json()
    by_stream = [item["id"] for item in answers["r-stream"]["items"]]  # type: ignore[union-attr, index]
    assert "tr:s" not in by_stream and "sp-a" not in by_stream  # not itself, by any name
    similar = answers["r:similar"]["items"]
    assert similar and all(item["why"] == ["content"] for item in similar)  # type: ignore[union-attr, index]
    assert "tr:a" not in [item["id"] for item in similar]  # type: ignore[union-attr, index]
    next_x = answers["r-next"]["items"]
    assert next_x[0]["id"] == "Y" and next_x[0]["why"] == ["collaborative"]  # type: ignore[index]
    mine = [item["id"] for item in answers["r-user"]["items"]]  # type: ignore[union-attr, index]
    assert "X" not in mine and "Z" not in mine and "Y" in mine  # what they just played: out
    assert answers["r-new"]["strategy"] == "popular"
    assert answers["r-new"]["items"][0]["why"] == ["popular"]  # type: ignore[index]


async def test_bad_requests_and_chunks_are_one_dead_letter_each(
    worker: WorkerProcess, tagger: WorkerProcess, stack: Stack, collector: Collector
) -> None:
    bad_requests = [
        (b"acme/q1", b"not json"),
        (b"acme/q2", orjson.dumps({"request_id": "q2", "tenant": "acme", "k": 3})),
        (b"acme/q3", orjson.dumps({"request_id": "q3", "tenant": "acme", "user_id": "u",
                                   "track_id": "t"})),
        (b"acme/other", orjson.dumps({"request_id": "q4", "tenant": "acme", "track_id": "t"})),
        (b"zzz/q5", orjson.dumps({"request_id": "q5", "tenant": "zzz", "track_id": "t"})),
        (b"acme/q6", b""),
    ]  # fmt: skip
    await send(stack, RECOMMEND_REQUESTS, bad_requests)
    producer = await start_producer(stack.broker.bootstrap)
    headers = audio_headers(tenant="acme", stream="bad-s", seq=0, sample_rate=SR, channels=1)
    await producer.send(AUDIO_CHUNKS, b"\x00\x01\x02", key=b"acme/bad-s", headers=headers)
    await producer.stop()
    await send(stack, RECOMMEND_REQUESTS, [request("q-after", track_id="X", k=1)])
    await collector.wait_for(keyed(RECOMMENDATIONS, "acme/q-after"), 1)
    letters = await collector.wait_for(lambda r: r.topic == DEADLETTER, 7, timeout=30)
    await asyncio.sleep(3.0)  # a copy from the tagger (it must not add its own) arrives by now
    letters = collector.matching(lambda r: r.topic == DEADLETTER)
    sources = [(r.header("source-topic"), r.key) for r in letters]
    assert sorted(sources, key=str) == sorted(
        [(RECOMMEND_REQUESTS, key) for key, _ in bad_requests] + [(AUDIO_CHUNKS, b"acme/bad-s")],
        key=str,
    )
    reasons = {r.key: r.header("error") for r in letters}
    assert reasons[b"acme/q1"] == "malformed-json" and reasons[b"zzz/q5"] == "unknown-tenant"
    assert reasons[b"acme/other"] == "bad-key" and reasons[b"acme/q6"] == "empty-value"
    text = tagger.metrics()
    ignored = metric_value(
        text, "workers_records_processed_total", topic=AUDIO_CHUNKS, outcome="ignored"
    )
    assert ignored >= 1
    # the two roles apart on /metrics, as an operator joins on them
    build = {"version": VERSION, "engine": "rdkafka"}
    assert metric_value(text, "workers_build_info", **build, role="tagger", group="workers-tagger")
    assert metric_value(
        worker.metrics(), "workers_build_info", **build, role="core", group="workers"
    )


async def test_a_stream_through_a_decoder_is_flagged_and_its_original_is_not(
    worker: WorkerProcess, tagger: WorkerProcess, stack: Stack, collector: Collector
) -> None:
    """24 s of speech at 44.1 kHz, once as it is and once through a DAC-like decoder
    stack: the tagger's last message of each carries the stream's verdict and its stems."""
    rate = 44100
    spoken = soxr.resample(corpus.speech(1, sr=22050, seconds=24.0), 22050, rate)
    real = spoken.astype(np.float32)
    fake = decoders.decode_like(real, decoders.FAMILIES["dac"], np.random.default_rng(1), bias=0.02)
    for stream, audio in (("ai-real", real), ("ai-made", fake)):
        await send_audio(stack, "acme", stream, None, audio, sr=rate)
    verdicts = {}
    for stream in ("ai-real", "ai-made"):
        windows = await collector.wait_for(keyed(TAGS, f"acme/{stream}"), 8, timeout=90)
        assert len(windows) == 8
        first, last = windows[0].json(), windows[-1].json()
        for window in (first, last):
            assert schema_error(TAGS, window) is None
            assert sum(window["stems"].values()) == pytest.approx(1.0, abs=1e-3)  # type: ignore[attr-defined]
        assert first["ai_music"]["flag"] is None  # type: ignore[index]  # 3 s: too early
        verdicts[stream] = last["ai_music"]
    made, real_verdict = verdicts["ai-made"], verdicts["ai-real"]
    assert made["flag"] is True and made["seconds"] >= 20  # type: ignore[index, operator]
    assert made["evidence"]["known_period"] and made["evidence"]["rate_hz"] == rate  # type: ignore[index]
    assert real_verdict["flag"] is False and real_verdict["score"] < 0.1  # type: ignore[index, operator]


async def test_tenants_sharing_a_stream_id_get_the_tags_of_their_own_audio(
    worker: WorkerProcess, tagger: WorkerProcess, stack: Stack, collector: Collector
) -> None:
    """acme's tone and beats' music arrive interleaved under one stream id; acme's tags are
    those of the same tone under an id no one else uses."""
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(7 * SR) / SR)).astype(np.float32)
    music = corpus.music(2, sr=SR, seconds=7.0)
    producer = await start_producer(stack.broker.bootstrap)
    step = SR // 2
    for seq, start in enumerate(range(0, tone.size, step)):
        for tenant, stream, audio in (
            ("acme", "shared-id", tone),
            ("beats", "shared-id", music),
            ("acme", "solo-id", tone),
        ):
            headers = audio_headers(
                tenant=tenant, stream=stream, seq=seq, sample_rate=SR, channels=1
            )
            value = pcm_bytes(audio[start : start + step, None])
            await producer.send(
                AUDIO_CHUNKS, value, key=f"{tenant}/{stream}".encode(), headers=headers
            )
    await producer.stop()
    shared = await collector.wait_for(keyed(TAGS, "acme/shared-id"), 2, timeout=60)
    solo = await collector.wait_for(keyed(TAGS, "acme/solo-id"), 2, timeout=60)
    theirs = await collector.wait_for(keyed(TAGS, "beats/shared-id"), 2, timeout=60)
    for mine, alone in zip(shared, solo, strict=True):
        a, b = mine.json()["tags"], alone.json()["tags"]
        assert max(abs(a[t] - b[t]) for t in a) < 1e-6  # type: ignore[index, operator]
    far = max(
        abs(m.json()["tags"][t] - o.json()["tags"][t])  # type: ignore[index, operator]
        for m, o in zip(shared, theirs, strict=True)
        for t in m.json()["tags"]  # type: ignore[union-attr]
    )
    assert far > 0.01, "the other tenant's audio sounds different: its tags are its own"


async def test_the_tagger_tags_only_what_the_core_worker_admits(
    worker: WorkerProcess, tagger: WorkerProcess, stack: Stack, collector: Collector
) -> None:
    """Past the tenant's quota of new ids, and for a ts too far ahead of its record, the core
    worker dead-letters a chunk: the tagger then tags nothing of it."""
    producer = await start_producer(stack.broker.bootstrap)
    chunk = corpus.music(1, sr=SR, seconds=3.2)
    streams = [f"quota-{i}" for i in range(QUOTA + 5)]
    for stream in streams:
        for seq, start in enumerate((0, SR * 3 // 2)):
            headers = audio_headers(
                tenant="beats", stream=stream, seq=seq, sample_rate=SR, channels=1
            )
            value = pcm_bytes(chunk[start : start + SR * 3 // 2 + SR // 10, None])
            await producer.send(
                AUDIO_CHUNKS, value, key=f"beats/{stream}".encode(), headers=headers
            )
    ahead = audio_headers(
        tenant="beats", stream="quota-0", seq=2, sample_rate=SR, channels=1, ts=NOW + 30 * 3_600_000
    )
    await producer.send(
        AUDIO_CHUNKS, pcm_bytes(chunk[:SR, None]), key=b"beats/quota-0", headers=ahead
    )
    # then a window of another tenant's stream on every partition: once both workers have
    # answered them, they have read everything sent before them
    for partition in range(4):
        for seq, start in enumerate((0, SR * 3 // 2)):
            headers = audio_headers(
                tenant="acme", stream=f"after-{partition}", seq=seq, sample_rate=SR, channels=1
            )
            value = pcm_bytes(chunk[start : start + SR * 3 // 2 + SR // 10, None])
            await producer.send(
                AUDIO_CHUNKS,
                value,
                key=f"acme/after-{partition}".encode(),
                headers=headers,
                partition=partition,
            )
    await producer.stop()
    for partition in range(4):
        await collector.wait_for(keyed(TAGS, f"acme/after-{partition}"), 1, timeout=90)
        await collector.wait_for(keyed("audio.features", f"acme/after-{partition}"), 2, timeout=60)
    featured = {
        m.json()["stream"]
        for m in collector.matching(lambda r: r.topic == "audio.features")
        if str(m.json()["stream"]).startswith("quota-") and m.json()["tenant"] == "beats"
    }
    tagged = {
        m.json()["stream"]
        for m in collector.matching(lambda r: r.topic == TAGS)
        if str(m.json()["stream"]).startswith("quota-")
    }
    letters = collector.matching(
        lambda r: r.topic == DEADLETTER and (r.key or b"").startswith(b"beats/quota-")
    )
    refused = {
        (r.key or b"").decode().split("/")[1]
        for r in letters
        if r.header("error") == "quota-exceeded"
    }
    assert refused and featured and tagged == featured, (len(featured), len(tagged))
    assert not refused & tagged
    assert [r.header("error") for r in letters].count("timestamp-out-of-range") == 1
    windows = [m.json() for m in collector.matching(keyed(TAGS, "beats/quota-0"))]
    assert all(w["seq"] != 2 for w in windows), "no tags from the chunk dated too far ahead"
