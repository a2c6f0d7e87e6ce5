import json
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.core.behaviour import LISTENER_FEATURES, listener_features
from workers.core.errors import Reason, Rejected
from workers.core.listening import parse_event, to_update
from workers.core.listening_state import UserState
from workers.core.models.evidence import ListenerEvidence
from workers.core.models.reference import Reference
from workers.core.models.verdict import combine
from workers.core.position import Position

GOOD = {
    "event_id": "e1",
    "tenant": "acme",
    "user_id": "u1",
    "track_id": "t1",
    "type": "play",
    "ts": 1_764_000_000_000,
    "ms_played": 31_000,
    "track_ms": 200_000,
}


def parse(body: object, key: bytes | None = b"acme/u1") -> object:
    return parse_event(orjson.dumps(body) if not isinstance(body, bytes) else body, key=key)


def test_good_event() -> None:
    event = parse(GOOD)
    update = to_update(
        event,
        window_s=3600,
        position=Position("listening.events", 0, 0),
        record_time_ms=GOOD["ts"],  # type: ignore[arg-type]
        now_ms=GOOD["ts"],  # type: ignore[arg-type]
    )
    assert update.near_30s and not update.completed
    assert update.window == GOOD["ts"] // 3_600_000
    assert update.hour == (GOOD["ts"] // 3_600_000) % 24


@pytest.mark.parametrize("ts", [12, 1_764_000_000, 1_764_086_400_001, 9_999_999_999_999])
def test_event_time_far_past_or_future_is_out_of_range(ts: int) -> None:
    with pytest.raises(Rejected) as caught:
        parse_event(orjson.dumps({**GOOD, "ts": ts}), key=b"acme/u1", now_ms=1_764_000_000_000)
    assert caught.value.reason is Reason.TIMESTAMP_OUT_OF_RANGE


def test_back_filled_history_is_accepted() -> None:
    assert parse({**GOOD, "ts": 946_684_800_000}).ts == 946_684_800_000  # 2000-01-01


def test_like_needs_no_ms_played() -> None:
    body = {k: v for k, v in GOOD.items() if k not in ("ms_played", "track_ms")} | {"type": "like"}
    assert parse(body).type == "like"


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        (b"", b"acme/u1", Reason.EMPTY_VALUE),
        (b"{not json", b"acme/u1", Reason.MALFORMED_JSON),
        (b"[1, 2]", b"acme/u1", Reason.SCHEMA_INVALID),
        (b'"text"', b"acme/u1", Reason.SCHEMA_INVALID),
        ({**GOOD, "type": "download"}, b"acme/u1", Reason.SCHEMA_INVALID),
        ({k: v for k, v in GOOD.items() if k != "ms_played"}, b"acme/u1", Reason.SCHEMA_INVALID),
        ({**GOOD, "ts": "yesterday"}, b"acme/u1", Reason.SCHEMA_INVALID),
        ({**GOOD, "ms_played": -5}, b"acme/u1", Reason.SCHEMA_INVALID),
        ({**GOOD, "ms_played": 10**12}, b"acme/u1", Reason.SCHEMA_INVALID),
        ({**GOOD, "tenant": "ACME"}, b"ACME/u1", Reason.SCHEMA_INVALID),
        ({**GOOD, "tenant": "a*"}, b"a*/u1", Reason.SCHEMA_INVALID),
        ({**GOOD, "user_id": "{x}"}, b"acme/{x}", Reason.SCHEMA_INVALID),
        ({**GOOD, "country": "France"}, b"acme/u1", Reason.SCHEMA_INVALID),
        ({**GOOD, "ts": 1_764_000_000}, b"acme/u1", Reason.TIMESTAMP_OUT_OF_RANGE),
        ({**GOOD, "ts": 5_000_000_000_000}, b"acme/u1", Reason.TIMESTAMP_OUT_OF_RANGE),
        (GOOD, b"acme/u2", Reason.BAD_KEY),
        (GOOD, None, Reason.BAD_KEY),
        (b"{" + b'"a":1,' * 20000 + b'"b":2}', b"acme/u1", Reason.OVERSIZED),
    ],
)
def test_bad_events(body: object, key: bytes | None, reason: Reason) -> None:
    with pytest.raises(Rejected) as caught:
        parse(body, key)
    assert caught.value.reason is reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


def _dumps(value: object) -> bytes:
    """stdlib json, which also writes integers beyond 64 bits (orjson refuses them)."""
    return json.dumps(value).encode()


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.dictionaries(st.sampled_from(list(GOOD)), json_values).map(_dumps),
        st.builds(
            lambda d: _dumps({**GOOD, **d}),
            st.dictionaries(st.sampled_from(list(GOOD)), json_values, max_size=2),
        ),
    )
)
def test_anything_parses_or_is_rejected(value: bytes) -> None:
    try:
        event = parse_event(value, key=b"acme/u1")
    except Rejected as rejected:
        assert rejected.reason in Reason
        return
    assert event.tenant == "acme" and event.user_id == "u1"


def test_bot_like_behaviour_is_scored_high_and_explained() -> None:
    bot = UserState(
        events=200,
        plays=200,
        near30=190,
        ms_played=200 * 31_000,
        first_ts=0,
        last_ts=3 * 3_600_000,
        hours=(9,) * 20 + (10,) * 2 + (0,) * 2,
        distinct_tracks=3,
        top_track=120,
    )
    names = tuple(f.name for f in LISTENER_FEATURES)
    reference = Reference(names, size=1000)
    rng = random.Random(0)
    for i in range(400):  # a tenant of ordinary listeners
        listens = rng.randint(5, 80)
        skips = rng.randint(1, listens // 3 + 1)
        human = UserState(
            events=listens,
            plays=listens - skips,
            skips=skips,
            near30=rng.randint(0, 3),
            first_ts=0,
            last_ts=rng.randint(5, 40) * 3_600_000,
            hours=tuple(rng.randint(0, 3) if 8 <= h <= 23 else 0 for h in range(24)),
            distinct_tracks=max(1, listens - rng.randint(0, 5)),
            likes=rng.randint(0, 3),
            top_track=rng.randint(1, 4),
        )
        # their stops just past 30 s: on hits, seldom the same track again
        evidence = ListenerEvidence(k=float(listens), r=0.2 * human.near30)
        reference.upsert(f"u{i}", i, listener_features(human, evidence))
    # the bot's: the same three tracks again and again, nobody else on them
    x = listener_features(bot, ListenerEvidence(k=200.0, r=187.0))
    verdict = combine(LISTENER_FEATURES, x, reference.rank(x))
    assert verdict.score >= 0.75
    assert {"near30", "hour_spread"} <= set(verdict.evidence)


@pytest.mark.parametrize("field", ["event_id", "user_id", "track_id"])
def test_a_trailing_newline_is_not_a_valid_id(field: str) -> None:
    body = {**GOOD, field: "u1\n"}
    key = b"acme/u1\n" if field == "user_id" else b"acme/u1"
    with pytest.raises(Rejected) as caught:
        parse(body, key)
    assert caught.value.reason is Reason.SCHEMA_INVALID


def test_whole_number_floats_become_integers_and_others_are_refused() -> None:
    event = parse({**GOOD, "ms_played": 31000.0, "ts": float(GOOD["ts"])})  # type: ignore[arg-type]
    assert event.ms_played == 31000 and isinstance(event.ms_played, int)  # type: ignore[attr-defined]
    assert isinstance(event.ts, int)  # type: ignore[attr-defined]
    for bad in (31000.5, True, "31000", 1e30):
        with pytest.raises(Rejected) as caught:
            parse({**GOOD, "ms_played": bad})
        assert caught.value.reason is Reason.SCHEMA_INVALID, bad
