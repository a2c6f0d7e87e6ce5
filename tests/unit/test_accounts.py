"""Account verdicts: evidence folding, the score, hysteresis and when a verdict is published."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from workers.core.listening_state import WindowCounts
from workers.core.models.accounts import (
    MIN_LISTENS,
    AccountEvidence,
    fold_evidence,
    judge_account,
    track_hash,
)

BOTLIKE = dict.fromkeys(("near_30s_share", "hour_spread", "skip_rate", "engagement"), 0.99)
HUMAN = dict.fromkeys(("near_30s_share", "hour_spread", "skip_rate", "engagement"), 0.5)


def test_ordinary_tracks_leave_no_farm_evidence_and_no_group() -> None:
    e = AccountEvidence()
    for i in range(50):
        e = fold_evidence(e, WindowCounts(plays=100, listeners=90, skips=30, near30=4), f"t{i}", i)
    assert 1.0 < e.concentration < 1.2 and e.track_near30 < 0.05 and e.group == ""
    verdict = judge_account(e, HUMAN, listens=50, warming=False)
    assert not verdict.is_bot and "farm_concentration" not in verdict.evidence


def test_a_farm_converges_on_one_canonical_target() -> None:
    targets = ["a", "b", "c", "d"]
    groups = set()
    for account in range(5):
        e = AccountEvidence()
        for i in range(40):
            track = targets[(i + account) % 4]
            e = fold_evidence(
                e, WindowCounts(plays=60, listeners=5, near30=50), track, track_hash(track)
            )
        groups.add(e.group)
    assert groups == {min(targets, key=track_hash)}


def test_verdict_needs_evidence_and_does_not_flicker() -> None:
    e = AccountEvidence(listens=MIN_LISTENS - 1)
    assert not judge_account(e, BOTLIKE, listens=MIN_LISTENS - 1, warming=False).is_bot
    e = AccountEvidence(listens=200)
    on = judge_account(e, BOTLIKE, listens=200, warming=False)
    assert on.is_bot and on.publish and on.evidence[0] in BOTLIKE
    # once on, a score a little under ON keeps it on and publishes nothing new
    e = AccountEvidence(listens=200, published="0.88|1|2")
    slightly = dict.fromkeys(BOTLIKE, 0.89)  # a score between OFF and ON
    held = judge_account(e, slightly, listens=200, warming=False, segment=2)
    assert held.is_bot and not held.publish and held.marker.endswith("|1|2")
    moved = judge_account(e, slightly, listens=200, warming=False, segment=4)
    assert moved.publish and moved.segment == 4  # another segment: published again
    off = judge_account(e, HUMAN, listens=200, warming=False, segment=2)
    assert not off.is_bot and off.publish


def test_nothing_is_decided_while_the_detector_warms_up() -> None:
    verdict = judge_account(AccountEvidence(listens=500), BOTLIKE, listens=500, warming=True)
    assert not verdict.is_bot and verdict.publish  # the first verdict, whatever it says


@given(
    st.lists(
        st.tuples(
            st.integers(0, 500), st.integers(0, 50), st.integers(0, 100), st.integers(0, 500)
        ),
        max_size=60,
    ),
    st.dictionaries(st.sampled_from(sorted(BOTLIKE)), st.floats(0, 1)),
)
def test_scores_stay_between_0_and_1(
    windows: list[tuple[int, int, int, int]], ranks: dict[str, float]
) -> None:
    e = AccountEvidence()
    for plays, listeners, skips, near30 in windows:
        counts = WindowCounts(
            plays=plays, listeners=listeners, skips=skips, near30=min(near30, plays + skips)
        )
        e = fold_evidence(e, counts, "t", 1)
    verdict = judge_account(e, ranks, listens=e.listens, warming=False)
    assert 0.0 <= verdict.score <= 1.0


def test_every_population_writes_valid_events_in_time_order() -> None:
    from workers.core.listening import parse_event
    from workers.dev.benchmarks.accounts import populations

    for events, truth, _ in populations(quick=True).values():
        last = 0
        for _ in range(3000):
            body = next(events).fields
            key = f"{body['tenant']}/{body['user_id']}".encode()
            event = parse_event(orjson.dumps(body), key=key, now_ms=int(body["ts"]))  # type: ignore[call-overload]
            assert event.user_id in truth and event.ts >= last
            last = event.ts
