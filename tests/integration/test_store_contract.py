"""One contract, two stores: the Redis store (Lua, pipelined) and the in-memory store agree,
and the Redis store applies each change entirely or not at all."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import redis.asyncio as aioredis

from workers.core import colisten
from workers.core.behaviour import LISTENER_FEATURES, TRACK_FEATURES
from workers.core.errors import Reason
from workers.core.events import judge_event
from workers.core.listening import ListeningEvent, to_update
from workers.core.listening_state import ListeningState, ListeningUpdate
from workers.core.models.accounts import track_hash
from workers.core.position import Position
from workers.dev.loadgen import ListeningPopulation
from workers.state import MemoryStore, RedisStore, keys
from workers.state.catalogue import MemoryCatalogue, RedisCatalogue
from workers.state.protocol import ModelParams, Refused, StateLimits

HOUR = 3_600_000
NOW = 1_764_100_000_000
TS = 1_764_000_000_000


def update(
    tenant: str,
    user: str,
    event_id: str,
    *,
    offset: int,
    track: str = "t1",
    kind: str = "play",
    ts: int = TS,
    ms_played: int | None = 120_000,
    record_time: int = NOW,
    partition: int = 0,
) -> ListeningUpdate:
    event = ListeningEvent(
        event_id=event_id,
        tenant=tenant,
        user_id=user,
        track_id=track,
        type=kind,
        ts=ts,
        ms_played=ms_played if kind in ("play", "skip") else None,
        track_ms=200_000,
    )
    return to_update(
        event,
        window_s=3600,
        position=Position("listening.events", partition, offset),
        record_time_ms=record_time,
        now_ms=NOW,
    )


def population_events(
    population: ListeningPopulation, n: int, *, offset: int = 0
) -> list[tuple[ListeningEvent, ListeningUpdate]]:
    """The population's next ``n`` events, as parsed and as the store gets them."""
    stream = population.events()
    out = []
    for i in range(n):
        body = next(stream).fields
        event = ListeningEvent(
            event_id=str(body["event_id"]),
            tenant=str(body["tenant"]),
            user_id=str(body["user_id"]),
            track_id=str(body["track_id"]),
            type=str(body["type"]),  # type: ignore[arg-type]
            ts=int(body["ts"]),  # type: ignore[call-overload]
            ms_played=body.get("ms_played"),  # type: ignore[arg-type]
            track_ms=body.get("track_ms"),  # type: ignore[arg-type]
        )
        position = Position("listening.events", 0, offset + i)
        out.append(
            (
                event,
                to_update(event, window_s=3600, position=position, record_time_ms=NOW, now_ms=NOW),
            )
        )
    return out


def population_updates(
    population: ListeningPopulation, n: int, *, offset: int = 0
) -> list[ListeningUpdate]:
    return [u for _, u in population_events(population, n, offset=offset)]


def scenario(tenant: str, n: int, seed: int) -> list[ListeningUpdate]:
    rng = random.Random(seed)
    updates = []
    for i in range(n):
        kind = rng.choice(["play", "play", "play", "skip", "like", "share"])
        # some ids repeat: duplicates; positions repeat too: a re-read record, not a duplicate
        offset = rng.randint(0, n) if rng.random() < 0.3 else i
        updates.append(
            update(
                tenant,
                rng.choice(["u0", "u1", "u1:x", "a@b.c", "u-2"]),
                f"e{rng.randint(0, n)}",
                offset=offset,
                track=rng.choice(["t0", "t1", "t1:live", "t.2"]),
                kind=kind,
                ts=TS + i * 7 * 60_000 + rng.randint(-HOUR, HOUR),
                ms_played=rng.choice([5_000, 31_000, 200_000]),
            )
        )
    return updates


@pytest.fixture
def limits() -> StateLimits:
    return StateLimits(window_s=3600, lateness_ms=3 * HOUR, new_ids_per_day=0)


async def test_redis_and_memory_stores_agree(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    memory = MemoryStore(limits=limits)
    store = RedisStore(redis_client, limits=limits)
    updates = scenario("acme", 300, seed=1)
    for start in range(0, len(updates), 17):  # uneven batches, one pipeline each
        batch = updates[start : start + 17]
        got = await store.apply_listening(batch, now_ms=NOW)
        assert got == await memory.apply_listening(batch, now_ms=NOW)
    reasons = {r.reason for r in got if isinstance(r, Refused)}
    assert reasons <= {Reason.DUPLICATE_EVENT}


async def test_a_replay_an_own_retry_and_a_duplicate(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    for store in (RedisStore(redis_client, limits=limits), MemoryStore(limits=limits)):
        first = update("acme", "u1", "e1", offset=10)
        (applied,) = await store.apply_listening([first], now_ms=NOW)
        (retried,) = await store.apply_listening([first], now_ms=NOW)  # its answer was lost
        assert isinstance(applied, ListeningState) and isinstance(retried, ListeningState)
        assert not applied.replay and not retried.replay, "a retry of one's own is no replay"
        assert retried.user.events == 1
        other = (
            RedisStore(redis_client, limits=limits)
            if isinstance(store, RedisStore)
            else dataclasses.replace(store, incarnation="another-worker")
        )
        (replayed,) = await other.apply_listening([first], now_ms=NOW + 3 * 86_400_000)
        assert isinstance(replayed, ListeningState) and replayed.replay
        assert replayed.user.events == 1, "nothing applied twice, days later too"
        (duplicate,) = await store.apply_listening(
            [update("acme", "u1", "e1", offset=11)], now_ms=NOW
        )
        assert isinstance(duplicate, Refused) and duplicate.reason is Reason.DUPLICATE_EVENT
        await redis_client.flushdb()


async def test_ids_with_colons_never_reach_each_others_keys(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    store = RedisStore(redis_client, limits=limits)
    results = await store.apply_listening(
        [
            update("acme", "u1", "e1", offset=1, track="t1"),
            update("acme", "u1:tracks", "e2", offset=2, track="u1"),
            update("acme", "u1:plays", "e3", offset=3, track="t1:live"),
            update("acme", "user:u1", "e4", offset=4),
        ],
        now_ms=NOW,
    )
    assert all(isinstance(r, ListeningState) and r.user.events == 1 for r in results)
    for user in ("u1", "u1:tracks", "u1:plays", "user:u1"):
        assert await redis_client.type(keys.user("acme", user)) == b"hash"
        assert await redis_client.type(keys.user_tracks("acme", user)) == b"string"


@pytest.mark.parametrize(
    ("make_key", "value"),
    [
        (lambda: keys.user("acme", "u1"), ("set", b"x")),  # a string where a hash is
        (lambda: keys.user_tracks("acme", "u1"), ("set", b"not a hyperloglog")),
        (lambda: keys.track("acme", "t1"), ("lpush", b"x")),
        (lambda: keys.user("acme", "u1"), ("hset", b"plays", b"1e3")),  # not an integer
        (lambda: keys.track("acme", "t1"), ("hset", b"maxw", b"abc")),
        (lambda: keys.seen("acme", NOW // 86_400_000, keys.event_digest("e1")), ("set", b"x")),
        (lambda: keys.recent("acme", "u1"), ("set", b"x")),
    ],
)
async def test_a_key_of_the_wrong_type_refuses_the_event_and_changes_nothing(
    redis_client: aioredis.Redis, limits: StateLimits, make_key: object, value: tuple
) -> None:
    key = make_key()  # type: ignore[operator]
    command, *args = value
    if command == "hset":
        await redis_client.hset(key, args[0], args[1])
    else:
        await getattr(redis_client, command)(key, *args)
    before = await _dump_tenant(redis_client, "acme")
    store = RedisStore(redis_client, limits=limits)
    refused, fine = await store.apply_listening(
        [update("acme", "u1", "e1", offset=1), update("acme", "u2", "e2", offset=2, track="t2")],
        now_ms=NOW,
    )
    assert isinstance(refused, Refused) and refused.reason is Reason.STATE_ERROR
    assert isinstance(fine, ListeningState), "only the record that met the bad key stops"
    after = await _dump_tenant(redis_client, "acme")
    # the fine event changed its own keys, the quota, the tenant's models (it was learnt), its
    # marker among the tenant's applied events and the tenant's event-time clock
    e2 = keys.seen("acme", NOW // 86_400_000, keys.event_digest("e2")).encode()
    others = (b"u2", b"t2", b"quota", b":reference", b":model:", b":popular:", b":event-time:", e2)
    untouched = {k: v for k, v in after.items() if not any(s in k for s in others)}
    assert untouched == {k: v for k, v in before.items() if not any(s in k for s in others)}


async def test_late_and_early_events_cannot_move_windows_or_first_seen_times(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    for store in (RedisStore(redis_client, limits=limits), MemoryStore(limits=limits)):
        now = TS + 10 * HOUR + 30 * 60_000  # mid-window
        live = [update("acme", "u1", f"live{i}", offset=i, ts=now - i * 60_000) for i in range(5)]
        await store.apply_listening(live, now_ms=NOW)
        # 23 h ahead of the clock: counted in its own window, the live one stays
        early = update("acme", "u2", "early", offset=10, ts=NOW + 23 * HOUR)
        (state,) = await store.apply_listening([early], now_ms=NOW)
        assert isinstance(state, ListeningState) and state.early and state.rolled_from == -1
        (after,) = await store.apply_listening(
            [update("acme", "u3", "next", offset=11, ts=now)], now_ms=NOW
        )
        assert isinstance(after, ListeningState) and after.current.plays == 6
        # a back-filled event from 2001 cannot pin u1's first event time back by 24 years
        old = update("acme", "u1", "old", offset=12, ts=978_307_200_000)
        (late,) = await store.apply_listening([old], now_ms=NOW)
        assert isinstance(late, ListeningState) and late.late
        assert late.user.first_ts == now - 3 * HOUR - 0  # clamped to the lateness bound
        assert late.user.events == 6
        await redis_client.flushdb()


async def test_results_for_a_listener_do_not_depend_on_arrival_order_within_the_bound(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    rng = random.Random(7)
    events = [
        update(
            "acme",
            "u1",
            f"o{i}",
            offset=i,
            track=f"t{rng.randint(0, 5)}",
            kind=rng.choice(["play", "play", "skip", "like"]),
            ts=TS + rng.randint(0, 2 * HOUR),  # all within the 3 h lateness bound
        )
        for i in range(60)
    ]
    finals = []
    for seed in range(3):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        store = RedisStore(redis_client, limits=limits)
        for start in range(0, len(shuffled), 7):
            await store.apply_listening(shuffled[start : start + 7], now_ms=NOW)
        user = await redis_client.hgetall(keys.user("acme", "u1"))
        # the evidence weighs each listen by what its track's audience was when it was
        # played, and a burst is the crowd a listen found: a moving picture by design
        # (v_*, the group ag/ah, the last listen lb); the counters do not depend on order
        moving = (b"ag", b"ah", b"lb")
        finals.append(
            {k: v for k, v in user.items() if not k.startswith(b"v_") and k not in moving}
        )
        await redis_client.flushdb()
    assert finals[0] == finals[1] == finals[2]


async def test_a_tenant_past_its_quota_of_new_ids_keeps_its_known_ones(
    redis_client: aioredis.Redis,
) -> None:
    limits = StateLimits(window_s=3600, new_ids_per_day=4)
    for store in (RedisStore(redis_client, limits=limits), MemoryStore(limits=limits)):
        results = await store.apply_listening(
            [update("acme", f"u{i}", f"q{i}", offset=i, track="t1") for i in range(5)]
            + [update("acme", "u0", "known", offset=9, track="t1")],
            now_ms=NOW,
        )
        refused = [r.reason for r in results if isinstance(r, Refused)]
        assert refused == [Reason.QUOTA_EXCEEDED, Reason.QUOTA_EXCEEDED]  # u3 and u4
        assert isinstance(results[-1], ListeningState), "a known listener still counts"
        await redis_client.flushdb()


async def test_stream_contract_outputs_kept_until_committed(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    memory, store = MemoryStore(limits=limits), RedisStore(redis_client, limits=limits)
    assert await store.load_stream("acme", "s") is None
    for offset, seq in enumerate((0, 1, 1, 5, 3, 6, *range(7, 300))):
        blob = f"state-{seq}".encode() + bytes(range(256))
        position = Position("audio.chunks", 0, offset, committed=-1 if offset < 250 else 100)
        saved = {"position": position, "outputs": b"out|" + blob, "record_time_ms": NOW}
        got = await store.save_stream("acme", "s:1", seq, blob, **saved)
        assert got == await memory.save_stream("acme", "s:1", seq, blob, **saved)
        assert await store.load_stream("acme", "s:1") == await memory.load_stream("acme", "s:1")
    for offset in (0, 5, 99, 100, 101, 200, 298, 299):
        position = Position("audio.chunks", 0, offset)
        kept = await store.kept_chunk("acme", "s:1", position)
        assert (kept is None) == (await memory.kept_chunk("acme", "s:1", position) is None)
        # everything not yet committed is kept, however many chunks came after it
        assert (kept is not None) == (100 <= offset <= 298), offset
    kept = await store.kept_chunk("acme", "s:1", Position("audio.chunks", 0, 298))
    assert kept is not None and kept.own
    assert kept.outputs == b"out|state-299" + bytes(range(256))
    assert await store.kept_chunk("acme", "s:1", Position("audio.chunks", 1, 298)) is None


async def test_dead_letter_ledger(redis_client: aioredis.Redis, limits: StateLimits) -> None:
    memory, store = MemoryStore(limits=limits), RedisStore(redis_client, limits=limits)
    letters = [
        (None, Position("listening.events", 0, 5)),
        ("acme", Position("acme.audio.chunks", 1, 5)),
        (None, Position("listening.events", 0, 6, committed=3)),
    ]
    assert await store.note_dead_letters(letters) == [True, True, True]
    assert await memory.note_dead_letters(letters) == [True, True, True]
    again = [*letters[:2], (None, Position("listening.events", 0, 7))]
    assert await store.note_dead_letters(again) == [False, False, True]
    assert await memory.note_dead_letters(again) == [False, False, True]


async def _dump_tenant(client: aioredis.Redis, tenant: str) -> dict[bytes, bytes]:
    dumped = {}
    async for name in client.scan_iter(match=f"{{{tenant}}}:*"):
        dumped[name] = await client.dump(name)
    return dumped


async def test_one_tenant_never_touches_another(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    store = RedisStore(redis_client, limits=limits)
    await store.apply_listening(scenario("beats", 50, seed=2), now_ms=NOW)
    before = await _dump_tenant(redis_client, "beats")
    assert before
    for seed in range(5):
        await store.apply_listening(scenario("acme", 100, seed=seed), now_ms=NOW)
        await store.save_stream(
            "acme",
            "s",
            seed,
            b"state",
            position=Position("audio.chunks", 0, seed),
            outputs=b"[]",
            record_time_ms=NOW,
        )
    assert await _dump_tenant(redis_client, "beats") == before
    async for name in redis_client.scan_iter():
        assert name.startswith((b"{acme}:", b"{beats}:"))


async def test_every_key_has_a_time_to_live(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    store = RedisStore(redis_client, limits=limits)
    await store.apply_listening(scenario("acme", 100, seed=4), now_ms=NOW)
    await store.save_stream(
        "acme",
        "s",
        0,
        b"state",
        position=Position("audio.chunks", 0, 0),
        outputs=b"[]",
        record_time_ms=NOW,
    )
    await store.note_dead_letters([(None, Position("listening.events", 0, 1))])
    async for name in redis_client.scan_iter():
        assert await redis_client.ttl(name) > 0, name


async def test_the_references_keys_live_and_expire_together(
    redis_client: aioredis.Redis,
) -> None:
    """A tenant's references are renewed together (the moments once an eighth of their time
    to live has passed, not on every event), so none outlives or predeceases the others."""
    limits = StateLimits(window_s=3600, models=ModelParams(reference_size=3))
    store = RedisStore(redis_client, limits=limits)
    population = ListeningPopulation("acme", users=12, bot_share=0.0, seed=5)
    await store.apply_listening(population_updates(population, 900), now_ms=NOW)
    names = [name async for name in redis_client.scan_iter(match="{acme}:reference*")]
    # per population (listeners, tracks): members, moments and one set per feature
    assert len(names) == 2 * 2 + len(LISTENER_FEATURES) + len(TRACK_FEATURES), names
    assert await redis_client.zcard(keys.reference_members("acme", "listeners")) == 3
    for name in names:  # ranked with a skiplist's cost, not a listpack's
        if b"reference-values" in name:
            assert await redis_client.object("encoding", name) == b"skiplist", name
    for name in names:
        await redis_client.expire(name, limits.state_ttl_s - limits.state_ttl_s // 4)
    await store.apply_listening(population_updates(population, 40, offset=900), now_ms=NOW)
    ttls = [await redis_client.ttl(name) for name in names]
    assert min(ttls) > limits.state_ttl_s - 5, ttls


async def test_the_models_agree_on_a_population_with_farms(redis_client: aioredis.Redis) -> None:
    """Evidence, bursts, groups, references and verdicts: Redis computes what the Python
    references compute, event by event, on listening with farms and loopers in it."""
    limits = StateLimits(window_s=3600, models=ModelParams(reference_size=60))
    memory, store = MemoryStore(limits=limits), RedisStore(redis_client, limits=limits)
    population = ListeningPopulation("acme", users=90, bot_share=0.07, seed=11)
    events = population_events(population, 6000)
    flagged = 0
    for start in range(0, len(events), 50):
        chunk = events[start : start + 50]
        batch = [u for _, u in chunk]
        got = await store.apply_listening(batch, now_ms=NOW)
        assert got == await memory.apply_listening(batch, now_ms=NOW)
        accounts, tracks = [], []
        for (event, u), state in zip(chunk, got, strict=True):
            if isinstance(state, ListeningState) and state.models is not None:
                verdict = judge_event(event, state, window_s=3600)
                if verdict.account_marker is not None:
                    accounts.append((u.tenant, u.user_id, verdict.account_marker))
                    flagged += verdict.account.is_bot
                if verdict.track_marker is not None:
                    tracks.append((u.tenant, u.track_id, verdict.track_marker))
        for s in (store, memory):
            await s.note_accounts(accounts)
            await s.note_tracks(tracks)
    assert flagged > 0, "the farms were judged, so suspicion flowed back into the evidence"


async def test_account_evidence_groups_a_farm_and_remembers_verdicts(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    memory = MemoryStore(limits=limits)
    store = RedisStore(redis_client, limits=limits)
    targets = ["farm:a", "farm.b", "farm-c"]
    batch = [
        update("acme", f"bot{i % 4}", f"f{i}", offset=i, track=targets[i % 3], ms_played=31_000)
        for i in range(48)
    ] + [update("acme", "human", "h1", offset=99, track="t1")]
    got = await store.apply_listening(batch, now_ms=NOW)
    assert got == await memory.apply_listening(batch, now_ms=NOW)
    farm = [s for s in got[-5:-1] if isinstance(s, ListeningState)]
    canonical = min(targets, key=track_hash)
    assert {s.models.account.group for s in farm if s.models and s.models.account} == {canonical}
    last = got[-1]
    assert isinstance(last, ListeningState) and last.models and last.models.account
    assert last.models.account.group == "" and last.models.account.listens == 1
    # the verdict last published: remembered by both; an erased listener is not brought back
    await redis_client.delete(keys.user("acme", "bot3"))
    marks = [("acme", "bot0", "0.97|1"), ("acme", "bot3", "0.5|0")]
    await store.note_accounts(marks)
    await memory.note_accounts(marks)
    assert await redis_client.hget(keys.user("acme", "bot0"), "ap") == b"0.97|1"
    assert not await redis_client.exists(keys.user("acme", "bot3"))
    again = [update("acme", "bot0", "f99", offset=100, track="farm:a", ms_played=31_000)]
    (after,) = await store.apply_listening(again, now_ms=NOW)
    assert after == (await memory.apply_listening(again, now_ms=NOW))[0]
    assert isinstance(after, ListeningState) and after.models and after.models.account
    assert after.models.account.published == "0.97|1"
    # evidence that is not a number refuses the event before anything is written
    await redis_client.hset(keys.user("acme", "bot1"), "v_c", "not-a-number")
    before = await redis_client.hgetall(keys.user("acme", "bot1"))
    (refused,) = await store.apply_listening(
        [update("acme", "bot1", "f100", offset=101, track="farm:a")], now_ms=NOW
    )
    assert isinstance(refused, Refused) and refused.reason is Reason.STATE_ERROR
    assert await redis_client.hgetall(keys.user("acme", "bot1")) == before


async def test_co_listening_recent_plays_and_popularity_agree(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    """listening.lua keeps co-listening, recent plays and what is popular now as the memory
    store does, across a new popularity epoch (whose standings carry over)."""
    memory = MemoryStore(limits=limits)
    store = RedisStore(redis_client, limits=limits)
    epoch_ms = colisten.POPULAR_HALF_LIFE_MS * colisten.EPOCH_HALF_LIVES
    boundary = colisten.EPOCH_ORIGIN_MS + (TS - colisten.EPOCH_ORIGIN_MS) // epoch_ms * epoch_ms
    updates = scenario("acme", 200, seed=9)
    updates = [dataclasses.replace(u, ts=boundary - 40 * HOUR + i * 12 * 60_000)
               for i, u in enumerate(updates)]  # fmt: skip
    for start in range(0, len(updates), 23):
        batch = updates[start : start + 23]
        assert await store.apply_listening(batch, now_ms=NOW) == await memory.apply_listening(
            batch, now_ms=NOW
        )
    redis_side = RedisCatalogue(redis_client, limits=limits, model="MSD_musicnn")
    memory_side = MemoryCatalogue(memory)
    tracks = ["t0", "t1", "t1:live", "t.2"]
    for user in ("u0", "u1", "u1:x", "a@b.c", "nobody"):
        for now in (boundary - HOUR, updates[-1].ts):
            got = await redis_side.reads("acme", user=user, tracks=tracks, now_ms=now, n=10)
            want = await memory_side.reads("acme", user=user, tracks=tracks, now_ms=now, n=10)
            assert got[0] == want[0]
            for mine, theirs in zip([*got[1], got[2]], [*want[1], want[2]], strict=True):
                assert [t for t, _ in mine] == [t for t, _ in theirs]
                assert [s for _, s in mine] == pytest.approx([s for _, s in theirs], rel=1e-9)
    assert any(got[1]), "sessions paired tracks"


async def test_the_popularity_forecaster_learns_the_same_labels(
    redis_client: aioredis.Redis,
) -> None:
    """Profile, levels, seasonal ring and both Hedges: Redis learns each track's delayed
    labels as the Python reference does, over three days on two partitions whose batches
    run ahead of the windows they close (the watermark is known from the first batch)."""
    limits = StateLimits(window_s=3600, watermark_idle_ms=0, new_ids_per_day=0)
    memory, store = MemoryStore(limits=limits), RedisStore(redis_client, limits=limits)
    rng = random.Random(5)
    day = TS - TS % (24 * HOUR)
    updates = []
    for i in range(1500):
        ts = day + i * 3 * 60_000 + rng.randint(0, 60_000)  # 75 h, the evenings busier
        if (ts // HOUR) % 24 < 17 and rng.random() < 0.5:
            continue
        updates.append(
            update(
                "acme",
                f"u{rng.randint(0, 30)}",
                f"e{i}",
                offset=i,
                track=rng.choice(["t0", "t0", "t0", "t1", "t1", "t.2"]),
                ts=ts,
                record_time=ts,
                partition=i % 2,
            )
        )
    got = None
    for start in range(0, len(updates), 40):
        batch = updates[start : start + 40]
        now = batch[-1].ts + 1000
        got = await store.apply_listening(batch, now_ms=now)
        assert got == await memory.apply_listening(batch, now_ms=now)
    assert got is not None
    last = got[-1]
    assert isinstance(last, ListeningState) and last.models is not None
    forecaster = last.models.forecaster
    assert forecaster.trained > 50, "the labels were learnt"
    assert max(forecaster.weights) > 0.3 > min(forecaster.weights), "the weights moved apart"


async def test_embeddings_are_read_by_what_changed(
    redis_client: aioredis.Redis, limits: StateLimits
) -> None:
    """A tenant's catalogue of one model: read by what changed, items counted against the
    quota of new ids, items unwritten for the state's time to live removed (readers are
    told), and a reader far behind told to start afresh."""
    limits = dataclasses.replace(limits, new_ids_per_day=3, state_ttl_s=3600)
    day = 86_400_000
    memory = MemoryStore(limits=limits)
    for catalogue, other in (
        (
            RedisCatalogue(redis_client, limits=limits, model="m1"),
            RedisCatalogue(redis_client, limits=limits, model="m2"),
        ),
        (MemoryCatalogue(memory, model="m1"), MemoryCatalogue(memory, model="m2")),
    ):
        v1 = await catalogue.save_embedding("acme", "t:1", np.array([3.0, 4.0]), now_ms=NOW)
        v2 = await catalogue.save_embedding("acme", "t2", np.array([0.0, 2.0]), now_ms=NOW)
        await catalogue.save_embedding("acme", "t:1", np.array([1.0, 0.0]), now_ms=NOW)
        everything = await catalogue.embeddings_since("acme", 0)
        assert set(everything.ids) == {"t:1", "t2"} and everything.version == 3
        since = await catalogue.embeddings_since("acme", v2)
        assert since.ids == ("t:1",) and since.removed == ()
        np.testing.assert_allclose(since.vectors, [[1.0, 0.0]])
        assert (await catalogue.embeddings_since("acme", 3)).ids == ()
        assert v1 == 1
        assert (await catalogue.embeddings_since("beats", 0)).version == 0
        assert (await other.embeddings_since("acme", 0)).ids == (), "models never mix"
        # the third new id of the day is kept, the fourth is not (the day's quota)
        assert await catalogue.save_embedding("acme", "t3", np.array([1.0, 1.0]), now_ms=NOW)
        assert await catalogue.save_embedding("acme", "t4", np.array([1.0, 1.0]), now_ms=NOW) == 0
        # two hours on (the time to live is one): t2 and t3 leave, and a reader is told
        later = NOW + 2 * 3_600_000
        before = (await catalogue.embeddings_since("acme", 0)).version
        await catalogue.save_embedding("acme", "t:1", np.array([1.0, 0.0]), now_ms=later)
        gone = await catalogue.embeddings_since("acme", before)
        assert set(gone.removed) == {"t2", "t3"} and gone.ids == ("t:1",) and not gone.reset
        # a day on, the tombstones go too: a reader that old starts afresh
        await catalogue.save_embedding("acme", "t:1", np.array([0.0, 1.0]), now_ms=later + day + 1)
        stale = await catalogue.embeddings_since("acme", before)
        assert stale.reset and stale.ids == ("t:1",) and stale.removed == ()
    async for name in redis_client.scan_iter():
        assert await redis_client.ttl(name) > 0, name
