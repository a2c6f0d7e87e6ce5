"""A fleet is one system: the same population through 1, 2 and 3 worker processes, a
worker killed and one added mid-stream, and partitions handed over quickly.

The tenants' models live in Redis and learn each event in the same atomic step as its
state, so how many workers share the input changes neither what is learnt nor how well
(quality within noise of one worker), and a crash loses no learning.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
import redis.asyncio as aioredis

from tests.helpers import event_body
from tests.integration.conftest import start_worker
from workers.core.records import (
    ANOMALY,
    INPUT_TOPICS,
    LISTENING_EVENTS,
    OUTPUT_TOPICS,
    Record,
    topic_name,
)
from workers.dev.benchmarks.common import roc_auc
from workers.dev.client import Collector, Received, start_producer
from workers.dev.loadgen import ListeningPopulation
from workers.dev.stack import Stack, free_port
from workers.dev.testing import WorkerProcess, metric_value
from workers.pipeline.listening import ListeningStep
from workers.state import MemoryStore, keys

EVENTS = 5000
#: listeners who listen enough, within 5,000 events, for the tenant's reference to warm
#: early: most verdicts are made warm (2,200 of 5,000 in process), a thousand of them on bots
POPULATION = {"users": 150, "bot_share": 0.08, "seed": 11}
#: the quality is compared on the events after this one, when every fleet's reference is warm
SETTLED = EVENTS // 2
FLEETS = {"solo": 1, "duo": 2, "trio": 3}
HANDOVER = {"WORKERS_SESSION_TIMEOUT_S": "6", "WORKERS_REBALANCE_TIMEOUT_S": "3"}


@pytest.fixture(scope="module")
def fleet_stack() -> Iterator[Stack]:
    topics = [
        topic_name(topic, owner=t) for t in FLEETS for topic in (*INPUT_TOPICS, *OUTPUT_TOPICS)
    ]
    running = Stack().start(topics=[*topics, *INPUT_TOPICS, *OUTPUT_TOPICS])
    yield running
    running.stop()


def fleet(stack: Stack, tenant: str, n: int, tmp_path: Path) -> list[WorkerProcess]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = {
        "WORKERS_TENANTS": tenant,
        "WORKERS_ISOLATION": "strict",
        "WORKERS_GROUP_ID": f"fleet-{tenant}",
        **HANDOVER,
    }
    return [start_worker(stack, tmp_path / f"{tenant}-{i}.log", **env) for i in range(n)]


async def test_one_two_or_three_workers_learn_the_same(fleet_stack: Stack, tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    workers: dict[str, list[WorkerProcess]] = {}
    for tenant, n in FLEETS.items():
        workers[tenant] = await loop.run_in_executor(None, fleet, fleet_stack, tenant, n, tmp_path)
    topics = [topic_name(ANOMALY, owner=t) for t in FLEETS] + [
        topic_name("events.deadletter", owner=t) for t in FLEETS
    ]
    collector = await Collector(fleet_stack.broker.bootstrap, topics).start()
    producer = await start_producer(fleet_stack.broker.bootstrap)
    truth: dict[str, bool] = {}
    order: dict[str, int] = {}  # event id -> its place in the population
    listener: dict[str, str] = {}  # event id -> its listener
    added: WorkerProcess | None = None
    try:
        for tenant in FLEETS:  # every fleet sees the same population, in the same order
            population = ListeningPopulation(tenant, **POPULATION)
            events = population.events()
            for i in range(EVENTS):
                event = next(events)
                truth[str(event.fields["event_id"])] = event.is_bot
                order[str(event.fields["event_id"])] = i
                listener[str(event.fields["event_id"])] = str(event.fields["user_id"])
                body = orjson.dumps(event.fields)
                key = f"{tenant}/{event.fields['user_id']}".encode()
                await producer.send(topic_name(LISTENING_EVENTS, owner=tenant), body, key=key)
                if tenant == "trio" and i == EVENTS // 3:
                    workers["trio"][0].kill()  # kill -9 one of three mid-stream
                if tenant == "trio" and i == 2 * EVENTS // 3:
                    added = await loop.run_in_executor(
                        None, lambda: fleet(fleet_stack, "trio", 1, tmp_path / "added")[0]
                    )
                if i % 200 == 0:
                    await asyncio.sleep(0.01)
        await producer.flush()

        def scores(tenant: str) -> list[Received]:
            return collector.matching(lambda r: r.topic == topic_name(ANOMALY, owner=tenant))

        for _ in range(600):
            if all(len({m.json()["ref"] for m in scores(t)}) >= EVENTS for t in FLEETS):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        client = aioredis.Redis.from_url(fleet_stack.redis.url)
        figures, accounts = {}, {}
        for tenant in FLEETS:
            got = scores(tenant)
            first = {}
            for m in got:  # the first copy of each: a replay may repeat it
                first.setdefault(str(m.json()["ref"]), m.json())
            assert len(first) == EVENTS, f"{tenant}: every event scored"
            assert not collector.matching(
                lambda r, t=tenant: r.topic == topic_name("events.deadletter", owner=t)
            )
            # exact counters: every event applied once, whichever worker and however often read
            total = 0
            async for name in client.scan_iter(match=f"{keys.prefix(tenant)}user:*"):
                total += int(await client.hget(name, "events") or 0)
            assert total == EVENTS, tenant
            # every event learnt exactly once by the tenant's models, in Redis
            moments = keys.reference_moments(tenant, "listeners")
            learnt = int(await client.hget(moments, "inputs") or 0)
            assert learnt == EVENTS, tenant
            # judged once every fleet's reference is warm: the second half of the events
            warm = [
                v for v in first.values() if not v["warming_up"] and order[str(v["ref"])] >= SETTLED
            ]
            labels = np.array([truth[str(v["ref"])] for v in warm])
            figures[tenant] = roc_auc(np.array([v["score"] for v in warm]), labels)
            accounts[tenant] = last_verdicts(list(first.values()), order, listener)
        await client.aclose()
        spread = max(figures.values()) - min(figures.values())
        bench, bench_accounts = await in_process_auc(truth, order, listener)
        by_account = {t: listener_auc(v, truth) for t, v in accounts.items()}
        account_spread = max(by_account.values()) - min(by_account.values())
        print(
            "\nscale: the same 5,000 events through 1, 2 and 3 workers (one killed with -9 "
            f"and one added mid-stream in the last): event ROC AUC {figures}, spread "
            f"{spread:.4f}; listener ROC AUC on each one's last verdict {by_account}, spread "
            f"{account_spread:.4f}; through the pipeline in process, as bench models runs it: "
            f"{bench:.4f} and {listener_auc(bench_accounts, truth):.4f}; counters and the "
            "models' inputs exact (5,000 each)"
        )
        # an event's verdict depends on the reference at that moment, which depends on how
        # the partitions interleave: twelve bots' events swing the figure (spread
        # 0.016-0.041 over nine runs, solo within 0.019 of the run in process); the noise
        # of the figure itself, resampling its listeners, is 0.035 (bootstrap), and the
        # bounds are two of it. A broken fleet (learning lost, tenants mixed) moves far more
        assert spread < 0.07, "quality within noise of one worker"
        assert abs(figures["solo"] - bench) < 0.04, "real workers agree with bench models"
        # a listener's last verdict is printed, not asserted: a listener whose partition was
        # drained before the others was judged against a reference still warming, and is
        # judged again only at their next event (docs/models.md, known limits)
    finally:
        for group in workers.values():
            for worker in group:
                worker.kill()
        if added is not None:
            added.terminate()
        await collector.stop()
        await producer.stop()


def last_verdicts(
    verdicts: list[dict[str, object]], order: dict[str, int], listener: dict[str, str]
) -> dict[str, dict[str, object]]:
    """Each listener's verdict on their last event, by event id of that event."""
    last: dict[str, dict[str, object]] = {}
    for v in sorted(verdicts, key=lambda v: order[str(v["ref"])]):
        last[listener[str(v["ref"])]] = v
    return last


def listener_auc(last: dict[str, dict[str, object]], truth: dict[str, bool]) -> float:
    """ROC AUC over listeners of their last verdict's score."""
    scores = np.array([float(v["score"]) for v in last.values()])  # type: ignore[arg-type]
    return roc_auc(scores, np.array([truth[str(v["ref"])] for v in last.values()]))


async def in_process_auc(
    truth: dict[str, bool], order: dict[str, int], listener: dict[str, str]
) -> tuple[float, dict[str, dict[str, object]]]:
    """The same population through the listening step and the in-memory store (the
    reference models), in process, as ``bench models`` measures: event ROC AUC over the
    same settled events, and each listener's last verdict."""
    step = ListeningStep(tenants=["solo"], store=MemoryStore(), window_s=3600)
    events = ListeningPopulation("solo", **POPULATION).events()
    scores, labels = [], []
    verdicts: list[dict[str, object]] = []
    batch: list[Record] = []
    for offset in range(EVENTS):
        fields = next(events).fields
        key = f"solo/{fields['user_id']}".encode()
        batch.append(Record(LISTENING_EVENTS, 0, offset, key, orjson.dumps(fields)))
        if len(batch) == 100 or offset == EVENTS - 1:
            for outcome in await step.process_batch(batch):
                if outcome.on_delivered is not None:  # as the broker would: acknowledged
                    outcome.on_delivered(True)
                value = outcome.outputs[0].value
                assert isinstance(value, dict)
                verdicts.append(value)
                if not value["warming_up"] and order[str(value["ref"])] >= SETTLED:
                    scores.append(value["score"])
                    labels.append(truth[str(value["ref"])])
            await step.noted()
            batch = []
    return roc_auc(np.array(scores), np.array(labels)), last_verdicts(verdicts, order, listener)


async def events_counted(stack: Stack, prefix: str, users: int) -> int:
    """The events Redis counted for acme's listeners ``prefix0`` .. ``prefix{users-1}``."""
    client = aioredis.Redis.from_url(stack.redis.url)
    total = 0
    for i in range(users):
        total += int(await client.hget(keys.user("acme", f"{prefix}{i}"), "events") or 0)
    await client.aclose()
    return total


async def test_partitions_are_served_again_quickly_after_a_stop_and_a_kill(
    fleet_stack: Stack, tmp_path: Path
) -> None:
    """Hand-over after a graceful stop and after a kill -9 (targets: 5 s, and the session
    timeout, 6 s here, + 2 s), measured from the stop to the first output of a record sent
    after it, on each partition the stopped worker owned; printed, not asserted (timings
    belong to benchmarks), while every partition must be served again and nothing lost."""
    loop = asyncio.get_running_loop()
    env = {"WORKERS_GROUP_ID": "handover", **HANDOVER}
    keeper = start_worker(fleet_stack, tmp_path / "keeper.log", **env)
    leaver = await loop.run_in_executor(
        None, lambda: start_worker(fleet_stack, tmp_path / "leaver.log", **env)
    )
    collector = await Collector(fleet_stack.broker.bootstrap, [ANOMALY]).start()
    producer = await start_producer(fleet_stack.broker.bootstrap)
    sent: dict[str, tuple[int, float]] = {}  # event id -> (partition, when sent)
    running = True

    async def traffic() -> None:
        i = 0
        while running:
            user = f"ho-u{i % 64}"
            body = event_body("acme", user, f"ho-{i}", ts=int(time.time() * 1000))
            meta = await (
                await producer.send(
                    LISTENING_EVENTS, orjson.dumps(body), key=f"acme/{user}".encode()
                )
            )
            sent[f"ho-{i}"] = (meta.partition, time.time())
            i += 1
            await asyncio.sleep(0.01)

    def owned(worker: WorkerProcess) -> set[int]:
        return {
            int(line.split('partition="')[1].split('"')[0])
            for line in worker.metrics().splitlines()
            if line.startswith("workers_consumer_lag{") and LISTENING_EVENTS in line
        }

    async def served_again(partitions: set[int], since: float, timeout: float) -> float:
        """Seconds from ``since`` until every one of ``partitions`` had an output again for
        an event sent after it (read from the outputs' arrival times, so polling for them
        does not change the figure)."""
        deadline = time.time() + timeout
        while True:
            firsts: dict[int, float] = {}
            for m in collector.matching(lambda r: r.topic == ANOMALY):
                ref = str(m.json()["ref"])
                if ref in sent and sent[ref][0] in partitions and sent[ref][1] >= since:
                    firsts[sent[ref][0]] = min(firsts.get(sent[ref][0], 1e18), m.arrived)
            if set(firsts) == partitions:
                return max(firsts.values()) - since
            assert time.time() < deadline, "every one of its partitions served again"
            await asyncio.sleep(0.2)

    sending = asyncio.create_task(traffic())
    joiner: WorkerProcess | None = None
    try:
        for _ in range(150):  # both own partitions and have read from them
            if owned(keeper) and owned(leaver):
                break
            await asyncio.sleep(0.2)
        partitions = owned(leaver)
        stopped = time.time()
        await loop.run_in_executor(None, leaver.terminate)  # SIGTERM: drains and leaves
        graceful = await served_again(partitions, stopped, timeout=30.0)

        joiner = await loop.run_in_executor(
            None, lambda: start_worker(fleet_stack, tmp_path / "joiner.log", **env)
        )
        for _ in range(150):
            if owned(joiner):
                break
            await asyncio.sleep(0.2)
        partitions = owned(joiner)
        paused_before = metric_value(keeper.metrics(), "workers_rebalance_seconds_total")
        killed = time.time()
        joiner.kill()  # kill -9: its session must time out
        crash = await served_again(partitions, killed, timeout=40.0)
        paused = metric_value(keeper.metrics(), "workers_rebalance_seconds_total") - paused_before

        running = False
        await sending
        await producer.flush()
        deadline = time.time() + 30.0
        while True:  # every event sent has its score
            refs = Counter(
                str(m.json()["ref"]) for m in collector.matching(lambda r: r.topic == ANOMALY)
            )
            if set(sent) <= set(refs) or time.time() > deadline:
                break
            await asyncio.sleep(0.2)
        assert set(sent) <= set(refs), "every event scored"
        assert await events_counted(fleet_stack, "ho-u", 64) == len(sent), "counters exact"
        print(
            f"\nhand-over: partitions served again {graceful:.1f} s after a graceful stop "
            f"(target 5 s) and {crash:.1f} s after a kill -9 (target: 6 s session + 2 s), "
            f"{paused:.1f} s of it in the keeper's rebalance (revocation to assignment); "
            f"{len(sent)} events, every one scored, counters exact, "
            f"{sum(refs.values()) - len(refs)} re-emitted as replays"
        )
        assert metric_value(keeper.metrics(), "workers_partitions_blocked") == 0
    finally:
        running = False
        keeper.terminate()
        leaver.kill()
        if joiner is not None:
            joiner.kill()
        await collector.stop()
        await producer.stop()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def children_of(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


async def test_run_processes_n_is_one_group_supervised(fleet_stack: Stack, tmp_path: Path) -> None:
    """``python -m workers run --processes 2`` as an operator runs it: two children in one
    group, each with its metrics port, sharing the partitions; a child killed with -9 is
    started again by the parent; SIGTERM to the parent stops both cleanly; every event
    scored and the counters exact."""
    from tests.integration.conftest import TENANTS

    port = free_port(2)
    env = {
        **fleet_stack.env(),
        "WORKERS_TENANTS": TENANTS,
        "WORKERS_GROUP_ID": "supervised",
        **HANDOVER,
    }
    parent = WorkerProcess(
        env, log=tmp_path / "workers.log", metrics_port=port, args=["--processes", "2"]
    )
    # the children answer on the parent's port and the next one (the first child's is the
    # parent's: the parent itself serves nothing)
    children = [parent, WorkerProcess(env, log=parent.log, metrics_port=port + 1)]
    collector = await Collector(fleet_stack.broker.bootstrap, [ANOMALY]).start()
    producer = await start_producer(fleet_stack.broker.bootstrap)
    parent.start()
    sent: list[str] = []

    async def burst(n: int) -> None:
        for _ in range(n):
            i = len(sent)
            user = f"sp-u{i % 48}"
            body = event_body("acme", user, f"sp-{i}", ts=int(time.time() * 1000))
            await producer.send(LISTENING_EVENTS, orjson.dumps(body), key=f"acme/{user}".encode())
            sent.append(f"sp-{i}")
            await asyncio.sleep(0.002)
        await producer.flush()

    async def all_scored() -> Counter[str]:
        for _ in range(300):
            refs = Counter(
                str(m.json()["ref"]) for m in collector.matching(lambda r: r.topic == ANOMALY)
            )
            if set(sent) <= set(refs):
                return refs
            await asyncio.sleep(0.2)
        raise AssertionError(f"{len(set(sent) - set(refs))} events not scored")

    def assigned(child: WorkerProcess) -> float:
        if child.status("/ready") != 200:
            return 0.0
        return metric_value(child.metrics(), "workers_assigned_partitions")

    async def both_serving() -> None:
        for _ in range(300):
            if all(assigned(child) > 0 for child in children):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"not both serving; see {parent.log}")

    try:
        await both_serving()
        await burst(600)
        await all_scored()
        served = [
            metric_value(c.metrics(), "workers_records_in_total", topic=LISTENING_EVENTS)
            for c in children
        ]
        assert all(n > 0 for n in served), served

        assert parent.process is not None
        pids = children_of(parent.process.pid)
        assert len(pids) == 2
        os.kill(pids[0], signal.SIGKILL)
        await burst(600)  # while one child is down and then back
        await both_serving()
        assert len(set(children_of(parent.process.pid)) - set(pids)) == 1, "restarted"
        refs = await all_scored()
        assert await events_counted(fleet_stack, "sp-u", 48) == len(sent), "counters exact"
        assert parent.terminate() == 0
        assert not any(alive(pid) for pid in pids), "no child left behind"
        print(
            f"\nrun --processes 2: records per child {served}; one child killed -9 and "
            f"started again by the parent; {len(sent)} events, every one scored, "
            f"{sum(refs.values()) - len(refs)} re-emitted as replays, counters exact"
        )
    finally:
        parent.kill()
        await collector.stop()
        await producer.stop()
