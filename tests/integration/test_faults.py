"""Crashes with real processes: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

import orjson

from tests.helpers import event_body, tone
from tests.integration.conftest import start_worker, user_event_total
from workers.core.records import ANOMALY, AUDIO_CHUNKS, AUDIO_FEATURES, DEADLETTER, LISTENING_EVENTS
from workers.dev.client import Collector, Received, audio_headers, pcm_bytes, start_producer
from workers.dev.stack import Stack
from workers.dev.testing import metric_value

N_EVENTS = 3000
USERS = 50


async def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    # the first worker commits nothing before it is killed (a 60 s commit interval), so
    # everything it applied is read again: the replay path is always taken
    first = start_worker(stack, tmp_path / "first.log", WORKERS_COMMIT_INTERVAL_S="60")
    collector = await Collector(stack.broker.bootstrap).start()
    producer = await start_producer(stack.broker.bootstrap)

    async def publish() -> None:
        for i in range(N_EVENTS):
            user = f"crash-u{i % USERS}"
            body = event_body(
                "acme", user, f"crash-{i}", track=f"t{i % 11}", ts=1_764_000_000_000 + i * 1000
            )
            await producer.send(LISTENING_EVENTS, orjson.dumps(body), key=f"acme/{user}".encode())
            if i % 50 == 0:
                await asyncio.sleep(0.02)

    sending = asyncio.create_task(publish())
    await collector.wait_for(lambda r: r.topic == ANOMALY, 600)
    killed_at = len(collector.matching(lambda r: r.topic == ANOMALY))
    first.kill()  # SIGKILL: no graceful stop, offsets of the last second uncommitted
    killed = asyncio.get_running_loop().time()
    await sending
    await producer.flush()
    loop = asyncio.get_running_loop()
    # the dead member holds its partitions until its session times out (6 s here)
    second = await loop.run_in_executor(None, start_worker, stack, tmp_path / "second.log")
    try:
        refs = lambda: Counter(  # noqa: E731
            str(m.json()["ref"])
            for m in collector.matching(lambda r: r.topic == ANOMALY)
            if str(m.json()["ref"]).startswith("crash-")
        )
        for _ in range(450):  # up to 90 s: the survivor waits out the dead member's session
            if len(refs()) >= N_EVENTS:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        scored = refs()
        assert len(scored) == N_EVENTS, "every event scored"
        repeats = [
            m.json()
            for m in collector.matching(lambda r: r.topic == ANOMALY)
            if str(m.json()["ref"]).startswith("crash-") and scored[str(m.json()["ref"])] > 1
        ]
        # a record re-read after the crash is re-emitted, marked, never applied twice
        assert all(
            any(r["replay"] for r in repeats if r["ref"] == ref)
            for ref in {r["ref"] for r in repeats}
        )
        assert not collector.matching(
            lambda r: r.topic == DEADLETTER and (r.key or b"").startswith(b"acme/crash-")
        )
        assert await user_event_total(stack.redis.url, "acme", "crash-") == N_EVENTS  # exact counts
        replays = sum(
            1
            for m in collector.matching(lambda r: r.topic == ANOMALY)
            if str(m.json()["ref"]).startswith("crash-") and m.json()["replay"]
        )
        assert replays >= killed_at > 0, "everything the first worker did was read again"
        print(
            f"\nkill -9: inputs {N_EVENTS}, scored {len(scored)}, outputs at the kill "
            f"{killed_at}, replayed and marked {replays}, dead letters 0, lost 0, applied "
            f"twice 0; all scored {loop.time() - killed:.1f} s after the kill"
        )
    finally:
        second.terminate()
        await collector.stop()
        await producer.stop()


async def test_redis_unreachable_for_a_while_pauses_and_loses_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    worker = start_worker(stack, tmp_path / "redis-pause.log")
    collector = await Collector(stack.broker.bootstrap).start()
    producer = await start_producer(stack.broker.bootstrap)
    assert stack.redis.process is not None

    async def send(start: int, n: int) -> None:
        for i in range(start, start + n):
            user = f"pause-u{i % 20}"
            body = event_body("acme", user, f"pause-{i}", ts=1_764_000_000_000 + i * 1000)
            await producer.send(LISTENING_EVENTS, orjson.dumps(body), key=f"acme/{user}".encode())
        await producer.flush()

    def scored() -> set[str]:
        return {
            str(m.json()["ref"])
            for m in collector.matching(lambda r: r.topic == ANOMALY)
            if str(m.json()["ref"]).startswith("pause-")
        }

    try:
        await send(0, 200)
        await collector.wait_for(
            lambda r: r.topic == ANOMALY and str(r.json()["ref"]).startswith("pause-"), 200
        )
        os.kill(stack.redis.process.pid, signal.SIGSTOP)  # Redis hangs: no answers at all
        try:
            await send(200, 300)
            await asyncio.sleep(7.0)  # past the 5 s socket timeout: the worker retries
            assert worker.process is not None and worker.process.poll() is None, "worker died"
            assert worker.status("/healthz") == 200
            assert len(scored()) < 500
        finally:
            os.kill(stack.redis.process.pid, signal.SIGCONT)
        resumed = asyncio.get_running_loop().time()
        for _ in range(300):
            if len(scored()) >= 500:
                break
            await asyncio.sleep(0.2)
        assert len(scored()) == 500, "everything processed once Redis is back"
        assert not collector.matching(
            lambda r: r.topic == DEADLETTER and (r.key or b"").startswith(b"acme/pause-")
        )
        retries = metric_value(
            worker.metrics(), "workers_state_errors_total", operation="listening.events"
        )
        assert retries >= 1
        assert await user_event_total(stack.redis.url, "acme", "pause-") == 500
        print(
            f"\nredis frozen 7 s: inputs 500 (300 during the outage), scored 500, dead "
            f"letters 0, lost 0, counters exact, {retries:.0f} retries, caught up "
            f"{asyncio.get_running_loop().time() - resumed:.1f} s after Redis resumed"
        )
    finally:
        worker.terminate()
        await collector.stop()
        await producer.stop()


async def test_two_workers_one_killed_the_survivor_takes_over(stack: Stack, tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    survivor = start_worker(stack, tmp_path / "survivor.log", WORKERS_GROUP_ID="pair")
    victim = await loop.run_in_executor(
        None, lambda: start_worker(stack, tmp_path / "victim.log", WORKERS_GROUP_ID="pair")
    )
    collector = await Collector(stack.broker.bootstrap).start()
    producer = await start_producer(stack.broker.bootstrap)

    victim_partitions, killed = 0.0, 0.0

    def partitions(worker: object) -> float:
        return metric_value(worker.metrics(), "workers_assigned_partitions")  # type: ignore[attr-defined]

    try:
        for _ in range(100):  # the group rebalanced: both own partitions
            if (
                partitions(survivor)
                and partitions(victim)
                and partitions(survivor) + partitions(victim) == 12
            ):
                break
            await asyncio.sleep(0.2)
        assert partitions(survivor) + partitions(victim) == 12
        assert partitions(victim) > 0
        for i in range(2000):
            user = f"pair-u{i % 64}"  # spread over every partition
            body = event_body("acme", user, f"pair-{i}", ts=1_764_000_000_000 + i * 1000)
            await producer.send(LISTENING_EVENTS, orjson.dumps(body), key=f"acme/{user}".encode())
            if i == 800:
                victim_partitions = partitions(victim)
                victim.kill()
                killed = loop.time()
        await producer.flush()

        def scored() -> set[str]:
            return {
                str(m.json()["ref"])
                for m in collector.matching(lambda r: r.topic == ANOMALY)
                if str(m.json()["ref"]).startswith("pair-")
            }

        for _ in range(450):
            if len(scored()) >= 2000:
                break
            await asyncio.sleep(0.2)
        assert len(scored()) == 2000, f"survivor took the victim's partitions? {collector.errors}"
        assert partitions(survivor) == 12
        assert await user_event_total(stack.redis.url, "acme", "pair-") == 2000
        assert not collector.matching(
            lambda r: r.topic == DEADLETTER and (r.key or b"").startswith(b"acme/pair-")
        )
        print(
            f"\ntwo workers, one killed (it owned {victim_partitions:.0f} of 8 partitions): "
            f"inputs 2000, scored 2000, dead letters 0, lost 0, counters exact; the survivor "
            f"owned all 8 and had scored everything {loop.time() - killed:.1f} s after the kill"
        )
    finally:
        survivor.terminate()
        victim.kill()
        await collector.stop()
        await producer.stop()


async def test_kill_9_during_audio_streams_re_emits_replayed_chunks(
    stack: Stack, tmp_path: Path
) -> None:
    """A chunk re-read after a crash is re-emitted from what was saved with the stream's
    state (marked `replay`), so every chunk has its outputs and none is a dead letter; a bad
    chunk read again gets its dead letter again, marked `replay`.

    Deterministic: the first worker commits nothing before it is killed (a 60 s commit
    interval), so every chunk it processed is read again, however many came after it."""
    streams, chunks = 8, 40
    first = start_worker(stack, tmp_path / "first.log", WORKERS_COMMIT_INTERVAL_S="60")
    collector = await Collector(stack.broker.bootstrap).start()
    producer = await start_producer(stack.broker.bootstrap)
    samples = tone(seconds=0.25, sr=16000, channels=1)
    payload = pcm_bytes(samples)
    bad: set[str] = set()

    async def publish() -> None:
        for seq in range(chunks):
            for s in range(streams):
                headers = audio_headers(
                    tenant="acme", stream=f"kill-s{s}", seq=seq, sample_rate=16000, channels=1
                )
                await producer.send(
                    AUDIO_CHUNKS, payload, key=f"acme/kill-s{s}".encode(), headers=headers
                )
            if seq % 10 == 5:  # a truncated chunk now and then, on its own stream
                headers = audio_headers(
                    tenant="acme", stream="kill-bad", seq=seq, sample_rate=16000, channels=1
                )
                meta = await (
                    await producer.send(
                        AUDIO_CHUNKS, payload[:-1], key=b"acme/kill-bad", headers=headers
                    )
                )
                bad.add(f"{meta.topic}:{meta.partition}:{meta.offset}")
            await asyncio.sleep(0.01)

    def features() -> list[dict[str, object]]:
        return [
            m.json()
            for m in collector.matching(lambda r: r.topic == AUDIO_FEATURES)
            if str(m.json()["stream"]).startswith("kill-s")
        ]

    sending = asyncio.create_task(publish())
    await collector.wait_for(lambda r: r.topic == AUDIO_FEATURES, 150)
    first.kill()
    loop = asyncio.get_running_loop()
    killed = loop.time()
    processed_before = len(features())
    await sending
    await producer.flush()
    second = await loop.run_in_executor(None, start_worker, stack, tmp_path / "second.log")
    try:
        for _ in range(450):
            if len({(f["stream"], f["seq"]) for f in features()}) >= streams * chunks:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        got = features()
        distinct = {(f["stream"], f["seq"]) for f in got}
        assert distinct == {(f"kill-s{s}", q) for s in range(streams) for q in range(chunks)}
        anomalies = {
            (m.json()["subject"], m.json()["ref"])
            for m in collector.matching(lambda r: r.topic == ANOMALY)
            if m.json()["kind"] == "audio" and str(m.json()["subject"]).startswith("kill-s")
        }
        assert anomalies == distinct
        assert not collector.matching(
            lambda r: r.topic == DEADLETTER and (r.key or b"").startswith(b"acme/kill-s")
        )
        copies = Counter((f["stream"], f["seq"]) for f in got)
        doubled = [f for f in got if copies[(f["stream"], f["seq"])] > 1]
        assert all(
            any(d["replay"] for d in doubled if (d["stream"], d["seq"]) == pair)
            for pair in {(d["stream"], d["seq"]) for d in doubled}
        ), "every second copy is marked"
        # one state per stream, and its framing reached the last chunk exactly once
        assert not any(f["quality"]["seq_gap"] for f in got)  # type: ignore[index]
        replays = sum(1 for f in got if f["replay"])
        assert replays >= processed_before, "everything the first worker did was read again"
        # the bad chunks: one dead letter each on first read; a second one only as a replay
        letters = collector.matching(lambda r: r.topic == DEADLETTER and r.key == b"acme/kill-bad")

        def where(r: Received) -> str:
            return f"{r.header('source-topic')}:{r.header('source-partition')}:" + str(
                r.header("source-offset")
            )

        assert {where(r) for r in letters} == bad, "every bad chunk has its dead letter"
        unmarked = Counter(where(r) for r in letters if r.header("replay") is None)
        assert max(unmarked.values(), default=0) == 1, "a second one is always marked replay"
        marked = sum(1 for r in letters if r.header("replay") == "true")
        print(
            f"\nkill -9 during audio: {streams} streams x {chunks} chunks = {streams * chunks} "
            f"in, each with its features and score, {replays} re-emitted as replays (all "
            f"{processed_before} the first worker had published, and any it had not), "
            f"{len(bad)} bad chunks with one dead letter each ({marked} re-emitted marked "
            f"replay); lost 0; all done {loop.time() - killed:.1f} s after the kill"
        )
    finally:
        second.terminate()
        await collector.stop()
        await producer.stop()


async def test_a_partition_paused_for_its_backlog_flows_again_after_a_rebalance(
    stack: Stack, tmp_path: Path
) -> None:
    """A worker with a backlog pauses the partitions of its busy lane; a rebalance that hands
    the same partitions back to it must not leave them paused (librdkafka keeps a pause
    across a rebalance, the lanes start afresh): every record is still processed."""
    loop = asyncio.get_running_loop()
    small = {"WORKERS_GROUP_ID": "held", "WORKERS_BATCH_MAX": "4"}
    first = start_worker(stack, tmp_path / "first.log", **small)
    collector = await Collector(stack.broker.bootstrap).start()
    producer = await start_producer(stack.broker.bootstrap)
    n = 12_000
    try:
        for i in range(n):
            user = f"held-u{i % 64}"
            body = event_body("acme", user, f"held-{i}", ts=1_764_000_000_000 + i)
            await producer.send(LISTENING_EVENTS, orjson.dumps(body), key=f"acme/{user}".encode())
        await producer.flush()

        def scored() -> int:
            return len(
                {
                    str(m.json()["ref"])
                    for m in collector.matching(lambda r: r.topic == ANOMALY)
                    if str(m.json()["ref"]).startswith("held-")
                }
            )

        while scored() < 500:  # noqa: ASYNC110 (the backlog is being worked through, paused)
            await asyncio.sleep(0.1)
        second = await loop.run_in_executor(
            None, lambda: start_worker(stack, tmp_path / "second.log", **small)
        )
        at_join = scored()
        second.terminate()  # and the partitions go back to the first worker
        for _ in range(900):
            if scored() >= n:
                break
            await asyncio.sleep(0.2)
        resumed = metric_value(first.metrics(), "workers_assigned_partitions")
        assert scored() == n, f"{n - scored()} records stuck on paused partitions"
        assert at_join < n, "the rebalance came after the backlog was gone: nothing was tried"
        print(
            f"\nbacklog of {n}: {at_join} done when a second worker joined and left; all {n} "
            f"processed afterwards on {resumed:.0f} partitions"
        )
    finally:
        first.terminate()
        await collector.stop()
        await producer.stop()
