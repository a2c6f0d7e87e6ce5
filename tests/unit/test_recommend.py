"""Recommendations: requests parsed at the boundary, the hybrid ranking, and the step over
the in-memory store fed by the real listening step."""

from __future__ import annotations

import asyncio
import contextlib
import time

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import TS, event_record, schema_error
from workers.core.errors import Reason, Rejected
from workers.core.recommend import hybrid, merge_seeds, parse_request
from workers.core.records import DEADLETTER, RECOMMEND_REQUESTS, RECOMMENDATIONS, Record
from workers.pipeline.listening import ListeningStep
from workers.pipeline.recommend import RecommendStep
from workers.state import MemoryStore
from workers.state.catalogue import MemoryCatalogue

GOOD = {"request_id": "r-1", "tenant": "acme", "k": 5, "track_id": "t:1"}


def request(body: object, key: bytes | None = b"acme/r-1", offset: int = 0) -> Record:
    value = body if isinstance(body, bytes) else orjson.dumps(body)
    return Record(RECOMMEND_REQUESTS, 0, offset, key, value)


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        (b"", b"acme/r-1", Reason.EMPTY_VALUE),
        (b"{", b"acme/r-1", Reason.MALFORMED_JSON),
        (b"x" * 20_000, b"acme/r-1", Reason.OVERSIZED),
        (orjson.dumps({**GOOD, "user_id": "u1"}), b"acme/r-1", Reason.SCHEMA_INVALID),
        (orjson.dumps({k: v for k, v in GOOD.items() if k != "track_id"}), b"acme/r-1",
         Reason.SCHEMA_INVALID),
        (orjson.dumps({**GOOD, "k": 0}), b"acme/r-1", Reason.SCHEMA_INVALID),
        (orjson.dumps({**GOOD, "k": 5.5}), b"acme/r-1", Reason.SCHEMA_INVALID),
        (orjson.dumps({**GOOD, "track_id": "t1\n"}), b"acme/r-1", Reason.SCHEMA_INVALID),
        (orjson.dumps(GOOD), b"acme/other", Reason.BAD_KEY),
        (orjson.dumps(GOOD), None, Reason.BAD_KEY),
    ],
)  # fmt: skip
def test_bad_requests_are_refused_with_their_reason(
    value: bytes, key: bytes | None, reason: Reason
) -> None:
    with pytest.raises(Rejected) as refused:
        parse_request(value, key=key)
    assert refused.value.reason is reason


def test_a_good_request_parses_with_unusual_valid_values() -> None:
    parsed = parse_request(orjson.dumps({**GOOD, "k": 3.0, "extra": 1}), key=b"acme/r-1")
    assert (parsed.kind, parsed.subject, parsed.k) == ("track", "t:1", 3)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*GOOD, "stream", "user_id", "x"]), json_values))
def test_any_json_is_a_request_or_a_rejection(changes: dict[str, object]) -> None:
    try:
        body = orjson.dumps({**GOOD, **changes})
    except TypeError:
        return
    with contextlib.suppress(Rejected):
        parse_request(body, key=b"acme/r-1")


def test_a_cold_track_is_reached_through_content_alone() -> None:
    items = hybrid([("new", 0.9), ("a", 0.5)], [], k=5, content_weight=0.3)
    assert [(i.id, i.why) for i in items] == [("new", ("content",)), ("a", ("content",))]
    assert items[0].score == pytest.approx(0.3)


def test_co_listening_ranks_and_sound_fills_in() -> None:
    items = hybrid(
        [("a", 0.9), ("b", 0.3), ("d", 0.8)],
        [("b", 5.0), ("c", 1.0), ("e", 0.5)],
        k=5,
        exclude={"c"},
        content_weight=0.3,
    )
    # b and e have co-listening evidence (b's sound breaks no tie here); a and d only sound
    assert [i.id for i in items] == ["b", "a", "d", "e"]
    assert {i.id: i.why for i in items}["b"] == ("content", "collaborative")
    assert all(0.0 <= i.score <= 1.0 for i in items)
    assert merge_seeds([[], [("x", 2.0)]]) == [("x", 0.85)]


NOW = int(time.time() * 1000)


def play(user: str, track: str, n: int, offset: int) -> Record:
    return event_record(
        "acme", user, f"e{n}", offset=offset, track=track, ts=NOW - 60_000 + n, ms_played=90_000
    )


@pytest.fixture
async def world() -> tuple[MemoryStore, MemoryCatalogue]:
    store = MemoryStore()
    listening = ListeningStep(tenants=["acme"], store=store, window_s=3600)
    sessions = [("u1", ["A", "B"]), ("u2", ["A", "B"]), ("u3", ["A", "C"]), ("u4", ["E", "A"])]
    records, n = [], 0
    for user, tracks in sessions:
        for track in tracks:
            records.append(play(user, track, n, n))
            n += 1
    for outcome in await listening.process_batch(records):
        assert outcome.rejected is None
    catalogue = MemoryCatalogue(store)
    rng = np.random.default_rng(1)
    base = rng.standard_normal(16)
    for track, noise in (("A", 0.0), ("D", 0.1), ("B", 3.0), ("C", 3.0), ("E", 3.0)):
        vector = base + noise * rng.standard_normal(16)
        await catalogue.save_embedding("acme", track, vector, now_ms=TS)
    return store, catalogue


async def answer(step: RecommendStep, body: dict[str, object]) -> dict[str, object]:
    key = f"acme/{body['request_id']}".encode()
    outcome = await step.process(request({"tenant": "acme", **body}, key=key))
    (output,) = outcome.outputs
    assert output.topic == RECOMMENDATIONS
    value = {**output.value, "latency_ms": 0.1}  # type: ignore[dict-item]
    assert schema_error(RECOMMENDATIONS, value) is None
    return value


async def test_similar_tracks_mix_sound_and_sessions(world) -> None:  # type: ignore[no-untyped-def]
    store, catalogue = world
    step = RecommendStep(tenants=["acme"], store=store, catalogue=catalogue)
    reply = await answer(step, {"request_id": "r1", "track_id": "A", "k": 5})
    items = {item["id"]: item["why"] for item in reply["items"]}  # type: ignore[union-attr]
    assert items["B"] == ["content", "collaborative"] or items["B"] == ["collaborative"]
    assert items["D"] == ["content"]  # never played: reached by its sound
    assert "A" not in items
    cold = await answer(step, {"request_id": "r2", "track_id": "D", "k": 2})
    assert cold["items"][0]["id"] == "A"  # type: ignore[index]


async def test_a_listeners_next_tracks_leave_out_what_they_just_played(world) -> None:  # type: ignore[no-untyped-def]
    store, catalogue = world
    step = RecommendStep(tenants=["acme"], store=store, catalogue=catalogue)
    reply = await answer(step, {"request_id": "r3", "user_id": "u3", "k": 5})
    ids = [item["id"] for item in reply["items"]]  # type: ignore[union-attr]
    assert "A" not in ids and "C" not in ids and "B" in ids
    new = await answer(step, {"request_id": "r4", "user_id": "nobody", "k": 2})
    assert new["strategy"] == "popular"
    assert new["items"][0] == {"id": "A", "score": 1.0, "why": ["popular"]}  # type: ignore[index]


async def test_large_catalogues_switch_to_the_graph(world) -> None:  # type: ignore[no-untyped-def]
    store, catalogue = world
    step = RecommendStep(tenants=["acme"], store=store, catalogue=catalogue, exact_limit=3)
    first = await answer(step, {"request_id": "r5", "track_id": "A", "k": 2})
    assert first["catalogue"] == {"embedded": 5, "search": "exact"}  # the graph is building
    for _ in range(100):
        if step.indexes["acme"].approximate:
            break
        await asyncio.sleep(0.02)
    a = np.frombuffer(store.shelf("acme", catalogue.model).vectors["A"], "<f4")
    await catalogue.save_embedding("acme", "F", a + 0.01, now_ms=TS)  # after the graph was built
    later = await answer(step, {"request_id": "r6", "track_id": "F", "k": 2})
    assert later["catalogue"] == {"embedded": 6, "search": "approximate"}
    assert [i["id"] for i in later["items"]] == ["A", "D"]  # type: ignore[union-attr]


async def test_a_bad_request_is_one_dead_letter(world) -> None:  # type: ignore[no-untyped-def]
    store, catalogue = world
    step = RecommendStep(tenants=["acme"], store=store, catalogue=catalogue)
    stranger = request({**GOOD, "tenant": "zzz"}, key=b"zzz/r-1")
    outcome = await step.process(stranger)
    assert outcome.rejected is not None and outcome.rejected.reason is Reason.UNKNOWN_TENANT
    assert [o.topic for o in outcome.outputs] == [DEADLETTER]
