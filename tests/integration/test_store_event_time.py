"""Event time and ids the way producers really send them, on both stores: an id used again
by another listener, a play dated a day ahead, plays arriving out of order, a backlog whose
partitions drain at different speeds. Each must give the answers live, ordered traffic
gives."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis

from tests.integration.test_store_contract import HOUR, NOW, TS, update
from workers.core import colisten
from workers.core.behaviour import listener_features
from workers.core.errors import Reason
from workers.core.listening import MAX_SKEW_MS
from workers.core.listening_state import ListeningState, ListeningUpdate
from workers.core.models.evidence import ListenerEvidence
from workers.core.position import Position
from workers.state import MemoryStore, RedisStore, keys
from workers.state.catalogue import MemoryCatalogue, RedisCatalogue
from workers.state.protocol import Refused, StateLimits, StreamSaved

Store = RedisStore | MemoryStore


@pytest.fixture
def limits() -> StateLimits:
    return StateLimits(window_s=3600, lateness_ms=3 * HOUR)


def both(redis_client: aioredis.Redis, limits: StateLimits) -> list[Store]:
    return [RedisStore(redis_client, limits=limits), MemoryStore(limits=limits)]


async def test_an_event_id_is_used_once_per_tenant_whoever_sends_it(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    for store in both(redis_client, limits):
        first = update("acme", "u1", "e1", offset=1)
        results = await store.apply_listening(
            [
                first,
                update("acme", "u2", "e1", offset=2),  # another listener, the same id
                update("beats", "u2", "e1", offset=3),  # another tenant: its own ids
            ],
            now_ms=NOW,
        )
        assert isinstance(results[0], ListeningState)
        assert isinstance(results[1], Refused)
        assert results[1].reason is Reason.DUPLICATE_EVENT
        assert isinstance(results[2], ListeningState)
        (again,) = await store.apply_listening([first], now_ms=NOW)  # the same record again
        assert isinstance(again, ListeningState)


async def test_a_play_dated_a_day_ahead_bends_no_later_judgement(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    for store in both(redis_client, limits):
        now = NOW
        habit = [
            update("acme", "u1", f"h{i}", offset=i, ts=now - (10 - i) * HOUR, track=f"t{i}")
            for i in range(10)
        ]
        await store.apply_listening(habit, now_ms=now)
        (ahead,) = await store.apply_listening(
            [update("acme", "u1", "ahead", offset=20, ts=now + 23 * HOUR, track="hit")],
            now_ms=now,
        )
        (later,) = await store.apply_listening(
            [update("acme", "u1", "later", offset=21, ts=now, track="t20")], now_ms=now
        )
        assert isinstance(ahead, ListeningState) and ahead.early
        assert isinstance(later, ListeningState) and not later.late
        # the listener's span ends at the clock plus the allowed skew, not 23 h ahead
        assert later.user.last_ts == now + MAX_SKEW_MS
        assert later.models is not None
        volume = listener_features(later.user, ListenerEvidence())["volume"]  # listens per hour
        assert volume == pytest.approx(12 / (10 + MAX_SKEW_MS / HOUR), rel=1e-6)
        # in "popular now" it weighs one play at that bound, not one 23 h ahead (14 of them)
        catalogue = (
            RedisCatalogue(redis_client, limits=limits, model="MSD_musicnn")
            if isinstance(store, RedisStore)
            else MemoryCatalogue(store)
        )
        _, _, popular, _ = await catalogue.reads("acme", user=None, tracks=[], now_ms=now, n=50)
        hit = dict(popular)["hit"]
        _, one_play = colisten.decayed(now + MAX_SKEW_MS, colisten.POPULAR_HALF_LIFE_MS)
        assert hit == pytest.approx(one_play)
        await redis_client.flushdb()


async def _co_listening(store: Store, tenant: str, catalogue: object) -> dict[str, list[tuple]]:
    tracks = ["a", "b", "c", "d"]
    _, co, _, _ = await catalogue.reads(  # type: ignore[attr-defined]
        tenant, user=None, tracks=tracks, now_ms=TS, n=10
    )
    return {
        t: sorted((name, round(score, 9)) for name, score in pairs)
        for t, pairs in zip(tracks, co, strict=True)
    }


async def test_co_listening_follows_event_time_not_arrival_order(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    """A listener's plays a, b, c, d (five minutes apart) arriving as a, c, d, b pair the
    same tracks with the same weights as in order, and leave the same recent plays."""
    for store in both(redis_client, limits):
        catalogue = (
            RedisCatalogue(redis_client, limits=limits, model="MSD_musicnn")
            if isinstance(store, RedisStore)
            else MemoryCatalogue(store)
        )
        at = {t: TS + i * 5 * 60_000 for i, t in enumerate("abcd")}
        for tenant, order in (("acme", "abcd"), ("beats", "acdb")):
            plays = [
                update(tenant, "u1", f"{tenant}-{t}", offset=i, track=t, ts=at[t])
                for i, t in enumerate(order)
            ]
            for play in plays:  # one by one, as a listener's records arrive
                await store.apply_listening([play], now_ms=NOW)
        in_order = await _co_listening(store, "acme", catalogue)
        shuffled = await _co_listening(store, "beats", catalogue)
        assert in_order == shuffled
        assert [t for t, _ in in_order["b"]] == ["a", "c"]
        recent = [
            await catalogue.reads(t, user="u1", tracks=[], now_ms=TS, n=10)  # type: ignore[attr-defined]
            for t in ("acme", "beats")
        ]
        assert recent[0][0] == recent[1][0] == ["d", "c", "b", "a"]
        await redis_client.flushdb()


def _plays(n: int, partition: int, tenant: str, span_ms: int) -> list[ListeningUpdate]:
    """``n`` plays of three shared tracks spread evenly over ``span_ms`` of event time, by
    listeners of one partition."""
    return [
        update(
            tenant,
            f"p{partition}-u{i % 7}",
            f"{tenant}-{partition}-{i}",
            offset=i,
            partition=partition,
            track=f"t{i % 3}",
            ts=TS + i * span_ms // n,
        )
        for i in range(n)
    ]


def _window_plays(
    states: Sequence[ListeningState | Refused], sent: Sequence[ListeningUpdate]
) -> Counter[tuple[str, int]]:
    """The plays each (track, window) reached, as its outputs reported them (the highest)."""
    best: Counter[tuple[str, int]] = Counter()
    for state, u in zip(states, sent, strict=True):
        assert isinstance(state, ListeningState)
        key = (u.track_id, u.window)
        best[key] = max(best[key], state.current.plays)
    return best


async def test_a_backlog_draining_unevenly_counts_what_live_traffic_counts(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    """Two partitions with ten hours of plays each. Live, they arrive interleaved by time;
    as a backlog, partition 0 is read ten times faster than partition 1 (as librdkafka
    drains partitions at their own speeds). The track windows count the same plays."""
    span = 10 * HOUR
    # partitions silent for half a second stop holding the watermark back (a minute in
    # production), so the watermark is known from the fifth batch on
    limits = dataclasses.replace(limits, watermark_idle_ms=500)
    for store in both(redis_client, limits):
        truth: Counter[tuple[str, int]] = Counter()
        for u in _plays(600, 0, "acme", span) + _plays(600, 1, "acme", span):
            truth[(u.track_id, u.window)] += 1
        # live: batches of both partitions, in event time
        live = sorted(
            _plays(600, 0, "acme", span) + _plays(600, 1, "acme", span), key=lambda u: u.ts
        )
        # backlog: 60 of partition 0 for every 6 of partition 1, then the rest of partition 1
        fast, slow = _plays(600, 0, "beats", span), _plays(600, 1, "beats", span)
        backlog: list[list[ListeningUpdate]] = []
        while fast or slow:
            backlog.append(fast[:60] + slow[:6])
            fast, slow = fast[60:], slow[6:]
        now = NOW
        got = {}
        for tenant, batches in (
            ("acme", [live[i : i + 66] for i in range(0, 1200, 66)]),
            ("beats", backlog),
        ):
            states, sent = [], []
            for batch in batches:
                now += 100  # the worker's clock moves on while it reads
                states += await store.apply_listening(batch, now_ms=now)
                sent += batch
            got[tenant] = _window_plays(states, sent)
        assert got["acme"] == truth, "live, every play reached its window"
        assert got["beats"] == truth, "as a backlog, every play reached its window too"
        await redis_client.flushdb()


async def test_an_erasure_refuses_what_was_read_before_it_whatever_its_timestamp(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    for store in both(redis_client, limits):
        erased_at = NOW - 1_000
        if isinstance(store, RedisStore):
            await redis_client.set(keys.erased("acme", "u1"), erased_at)
        else:
            store.erasures[keys.erased("acme", "u1")] = erased_at
        read_before = dataclasses.replace(
            update("acme", "u1", "e1", offset=1, record_time=NOW + HOUR),  # producer's clock
            read_time_ms=erased_at - 10,
        )
        published_after = dataclasses.replace(
            update("acme", "u1", "e2", offset=2, record_time=NOW), read_time_ms=NOW
        )
        refused, fresh = await store.apply_listening([read_before, published_after], now_ms=NOW)
        assert isinstance(refused, Refused) and refused.reason is Reason.SUBJECT_ERASED
        assert isinstance(fresh, ListeningState)
        await redis_client.flushdb()


async def test_a_partition_with_records_waiting_holds_the_watermark_back(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    """As a backlog is read partition by partition (librdkafka hands a whole fetch of one
    partition at a time), partition 1 has not been read at all while partition 0 is ten
    hours on; its owner says it has records waiting, so none of its plays is late."""
    limits = dataclasses.replace(limits, watermark_idle_ms=500)
    for store in both(redis_client, limits):
        now = NOW
        first, rest = _plays(300, 0, "acme", 10 * HOUR), _plays(300, 1, "acme", 10 * HOUR)
        await store.report_waiting("acme", [0, 1], now_ms=now)
        states: list[ListeningState | Refused] = []
        for start in range(0, 300, 30):
            now += 1_000  # slowly enough for the watermark to be known, were it not held
            await store.report_waiting("acme", [0, 1], now_ms=now)
            states += await store.apply_listening(first[start : start + 30], now_ms=now)
        for start in range(0, 300, 30):
            now += 1_000
            await store.report_waiting("acme", [1], now_ms=now)
            states += await store.apply_listening(rest[start : start + 30], now_ms=now)
        truth = Counter((u.track_id, u.window) for u in first + rest)
        assert _window_plays(states, first + rest) == truth
        assert not any(isinstance(s, ListeningState) and s.late for s in states)
        await redis_client.flushdb()


async def test_both_consumers_of_a_chunk_admit_its_stream_alike(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    """The core worker and the tagger save a stream's chunks each in its own lane, at their
    own pace; the quota admits the stream once for both, by the day of each chunk's record."""
    limits = dataclasses.replace(limits, new_ids_per_day=1)
    day = NOW // 86_400_000 * 86_400_000

    async def save(store: Store, stream: str, seq: int, lane: str, at: int) -> object:
        return await store.save_stream(
            "acme",
            stream,
            seq,
            b"state",
            position=Position("audio.chunks", 0, seq),
            outputs=b"[]",
            record_time_ms=at,
            lane=lane,
        )

    for store in both(redis_client, limits):
        assert isinstance(await save(store, "s1", 0, "audio", day + 1), StreamSaved)
        refused = await save(store, "s2", 0, "audio", day + 2)  # the day's quota is used
        assert isinstance(refused, Refused) and refused.reason is Reason.QUOTA_EXCEEDED
        # the next day's chunk of s2 is admitted, and counted, once
        assert isinstance(await save(store, "s2", 1, "audio", day + 86_400_000), StreamSaved)
        # the tagger, later: s1 and s2 as the core saw them, chunk by chunk
        assert isinstance(await save(store, "s1", 0, "tags", day + 1), StreamSaved)
        again = await save(store, "s2", 0, "tags", day + 2)
        assert isinstance(again, Refused) and again.reason is Reason.QUOTA_EXCEEDED
        assert isinstance(await save(store, "s2", 1, "tags", day + 86_400_000), StreamSaved)
        # and nothing was counted twice: the next day still has no room for another stream
        late = await save(store, "s3", 0, "tags", day + 86_400_000)
        assert isinstance(late, Refused) and late.reason is Reason.QUOTA_EXCEEDED
        await redis_client.flushdb()


async def test_a_batch_spanning_hours_answers_what_one_record_at_a_time_answers(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    """A sparse tenant's ten hours on one partition, read as a backlog: one batch holds all
    of them (as a consumer fetching a queued partition does). Each record is judged against
    its partition's time as of that record, not the batch's newest: the windows count every
    play, and the forecasts (and the labels they learn from) are those of records read one
    at a time."""
    limits = dataclasses.replace(limits, watermark_idle_ms=0)
    plays = _plays(300, 0, "acme", 10 * HOUR)
    truth = Counter((u.track_id, u.window) for u in plays)
    for store in both(redis_client, limits):
        answers = {}
        for tenant, batches in (
            ("acme", [[u] for u in plays]),
            ("beats", [[dataclasses.replace(u, tenant="beats") for u in plays]]),
        ):
            states, sent = [], []
            for batch in batches:
                states += await store.apply_listening(batch, now_ms=NOW)
                sent += batch
            assert _window_plays(states, sent) == truth, tenant
            answers[tenant] = [
                s.models.forecaster.forecast
                for s in states
                if isinstance(s, ListeningState) and s.models is not None
            ]
        assert answers["beats"] == answers["acme"]
        await redis_client.flushdb()
