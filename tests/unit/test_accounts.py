"""The listening models' pure parts: decayed evidence, the reference of listeners, the
combination of p-values, and the account and track verdicts (docs/models.md)."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.core.behaviour import LISTENER_FEATURES, TRACK_FEATURES, shrink
from workers.core.models.accounts import (
    MIN_LISTENS,
    MIN_REFERENCE,
    AccountEvidence,
    judge_account,
    member_hash,
)
from workers.core.models.evidence import (
    HALF_LIFE_MS,
    ListenerEvidence,
    TrackEvidence,
    add_listen,
    fold_listener,
    listen_weight,
    others,
    royalty_weight,
)
from workers.core.models.reference import Rank, Reference
from workers.core.models.tracks import judge_track
from workers.core.models.verdict import Feature, combine, feature_p, p_of_score, wilkinson

T0 = 1_764_000_000_000
NAMES = [f.name for f in LISTENER_FEATURES]


def calm(spec: tuple[Feature, ...] = LISTENER_FEATURES) -> dict[str, Rank]:
    """Every feature in the middle of a reference of 1,000."""
    return {f.name: Rank(at_least=500, size=1000, mean=0.1) for f in spec}


def extreme(p: float) -> Rank:
    """A rank whose p-value is about ``p`` in a reference of 1,000 (0: beyond it, with a
    tail from 0.3 on whose mean excess is 0.05)."""
    return Rank(max(0, round(p * 1001) - 1), size=1000, mean=0.1, threshold=0.3, excess=0.05)


# -- decayed evidence ---------------------------------------------------------------------


@given(st.permutations(list(range(12))), st.integers(0, 2**31))
def test_decayed_sums_do_not_depend_on_arrival_order(order: list[int], seed: int) -> None:
    """A backlog read out of order gives the evidence live traffic gives."""
    rng = random.Random(seed)
    plays = [
        (T0 + rng.randrange(0, 3 * HALF_LIFE_MS), rng.random() < 0.5, rng.random())
        for _ in range(12)
    ]

    def fold(sequence: list[int]) -> TrackEvidence:
        t = TrackEvidence()
        for i in sequence:
            ts, near30, loyalty = plays[i]
            t, _ = add_listen(t, ts=ts, near30=near30, loyalty=loyalty, suspicion=0, listens=1)
        return t

    a, b = fold(list(range(12))), fold(order)
    for name in ("p", "arrivals", "n", "t", "s", "q", "h"):
        assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-9), name
    assert a.at == b.at


def test_a_play_halves_in_a_half_life() -> None:
    t, _ = add_listen(TrackEvidence(), ts=T0, near30=False, loyalty=0, suspicion=0, listens=1)
    t, _ = add_listen(t, ts=T0 + HALF_LIFE_MS, near30=False, loyalty=0, suspicion=0, listens=2)
    assert t.p == pytest.approx(1.5) and t.arrivals == pytest.approx(0.5)


def test_accounts_on_one_track_at_one_time_are_a_burst_and_a_steady_audience_is_not() -> None:
    steady = TrackEvidence()
    bursts = []
    for i in range(300):  # a play every 5 minutes for a day
        steady, burst = add_listen(
            steady, ts=T0 + i * 300_000, near30=False, loyalty=0.1, suspicion=0, listens=1
        )
        bursts.append(burst)
    assert not any(bursts[20:])
    together = [
        add_listen(
            steady,
            ts=T0 + 300 * 300_000 + 1,
            near30=True,
            loyalty=1.0,
            suspicion=0,
            listens=1,
        )
    ]
    for i in range(12):  # then twelve accounts within ten minutes
        together.append(
            add_listen(
                together[-1][0],
                ts=T0 + 300 * 300_000 + i * 40_000,
                near30=True,
                loyalty=1.0,
                suspicion=0,
                listens=1,
            )
        )
    assert together[-1][1]


def test_plays_of_popular_tracks_weigh_little_in_a_listener_s_evidence() -> None:
    assert listen_weight(10_000) < listen_weight(5) / 3
    hit = TrackEvidence(at=T0, p=10_000, arrivals=9_000, n=300, t=50)
    target = TrackEvidence(at=T0, p=40, arrivals=4, n=36, t=38)
    e = ListenerEvidence()
    for i in range(20):  # a farm account: mostly camouflage plays of a hit
        e = fold_listener(e, hit, ts=T0 + i, burst=False, near30=True, listens=1, loyalty=0.05)
    for i in range(5):
        e = fold_listener(
            e, target, ts=T0 + 100 + i, burst=False, near30=True, listens=i + 1, loyalty=0.2
        )
    unweighted = (20 * hit.n / hit.p + 5 * target.n / target.p) / 25
    assert e.n / e.w > 1.5 * unweighted, "camouflage plays of a hit dilute the farm's little"


def test_a_fan_of_a_niche_track_is_not_judged_by_their_own_devotion() -> None:
    alone = TrackEvidence()
    for i in range(1, 41):  # one listener, forty listens: all of the track's audience
        alone, _ = add_listen(alone, ts=T0 + i * 60_000, near30=False, loyalty=0.8,
                              suspicion=0, listens=i)  # fmt: skip
    assert others(alone, listens=40, loyalty=0.8) == (0.0, 0.0, 0.0)
    farm = alone
    for i in range(10):  # ten accounts, each all about it
        for j in range(1, 5):
            farm, _ = add_listen(farm, ts=T0 + 3_000_000 + i * 1000 + j, near30=True,
                                 loyalty=0.9, suspicion=0, listens=j)  # fmt: skip
    concentration, thin, _ = others(farm, listens=40, loyalty=0.8)
    assert thin > 0.8 and concentration > math.log(3.5)


def test_a_curator_is_not_judged_by_their_own_stop_and_a_farm_member_is_by_the_others() -> None:
    release, _ = add_listen(TrackEvidence(), ts=T0, near30=True, loyalty=0.02, suspicion=0,
                            listens=1)  # fmt: skip
    assert others(release, listens=1, loyalty=0.02)[2] == 0.0  # nobody else heard it
    target = TrackEvidence()
    for i in range(10):  # ten accounts, each stopping it just past 30 s four times
        for j in range(1, 5):
            target, _ = add_listen(target, ts=T0 + i * 1000 + j, near30=True, loyalty=0.5,
                                   suspicion=0, listens=j)  # fmt: skip
    assert others(target, listens=4, loyalty=0.5)[2] == 1.0


# -- the reference ------------------------------------------------------------------------


def test_the_reference_is_the_listeners_with_the_smallest_hashes_whatever_the_order() -> None:
    members = [(f"u{i}", member_hash(f"u{i}"), {"a": float(i)}) for i in range(200)]
    kept = []
    for seed in (1, 2):
        ref = Reference(("a",), size=50)
        random.Random(seed).shuffle(members)
        for member, h, x in members:
            ref.upsert(member, h, x)
        kept.append(set(ref.members))
        assert len(ref.members) == 50
        assert ref.sums["a"] == pytest.approx(sum(ref.values["a"].values()))
    smallest = {m for m, _, _ in sorted(members, key=lambda m: m[1])[:50]}
    assert kept[0] == kept[1] == smallest


def test_a_member_leaves_the_reference_with_its_values() -> None:
    ref = Reference(("a",), size=10)
    for i in range(5):
        ref.upsert(f"u{i}", i, {"a": float(i)})
    ref.remove("u4")
    ref.remove("nobody")
    ref.refit()
    # too few members for a tail; it once held five
    assert ref.rank({"a": 3.0})["a"] == Rank(1, 4, 1.5, peak=5)
    for i in range(5, 20):  # the ten smallest hashes stay: u0-u3, u5-u10
        ref.upsert(f"u{i}", i, {"a": float(i)})
    ref.refit()
    # the tail: from the 10th largest (0), the median excess of the 9 above it (6) / ln 2
    assert ref.rank({"a": 99.0})["a"] == Rank(0, 10, 5.1, 0.0, 6 / math.log(2), peak=10)


def test_a_warm_reference_stays_warm_while_suspects_leave_it() -> None:
    """Verdicts do not flap off and on when listeners judged bots leave a reference that
    stands at its warm size: warm once it held the minimum, until it loses half of it."""
    ref = Reference(("a",), size=100)
    for i in range(49):
        ref.upsert(f"u{i}", i, {"a": 0.1})
    assert not ref.rank({"a": 0.1})["a"].warm(50)
    ref.upsert("u49", 49, {"a": 0.1})
    assert ref.rank({"a": 0.1})["a"].warm(50)
    for i in range(25):
        ref.remove(f"u{i}")
        assert ref.rank({"a": 0.1})["a"].warm(50), i
    ref.remove("u25")
    assert not ref.rank({"a": 0.1})["a"].warm(50)  # 24 left: too few to rank against
    ref.upsert("u0", 0, {"a": 0.1})
    assert ref.rank({"a": 0.1})["a"].warm(50)
    assert Rank(0, 50, 0.1).warm(50) and not Rank(0, 49, 0.1).warm(50)  # peak unknown


def test_a_few_extreme_members_do_not_stretch_the_tail_and_hide_themselves() -> None:
    people = [(f"p{i}", i, {"a": 0.05 + 0.0001 * i}) for i in range(200)]
    farm = [(f"f{i}", 1000 + i, {"a": 0.95}) for i in range(5)]
    ref = Reference(("a",), size=1000)
    for member, h, x in people + farm:
        ref.upsert(member, h, x)
    ref.refit()
    rank = ref.rank({"a": 0.95})["a"]
    assert rank.at_least == 5  # by rank alone: 6 / 206
    assert feature_p(0.95, rank) < 1e-6  # by the tail fitted on the people


# -- combining p-values -------------------------------------------------------------------


def test_one_extreme_signal_or_two_moderate_ones_convict_and_one_moderate_does_not() -> None:
    assert wilkinson([1e-5, 0.5, 0.5, 0.5]) < 1e-3
    assert wilkinson([0.003, 0.003, 0.5, 0.5]) < 1e-3
    assert wilkinson([0.003, 0.5, 0.5, 0.5]) > 1e-2
    assert wilkinson([]) == 1.0


@given(st.lists(st.floats(1e-12, 1.0), min_size=1, max_size=8))
def test_wilkinson_is_a_p_value_and_grows_with_its_inputs(ps: list[float]) -> None:
    p = wilkinson(ps)
    assert 0.0 <= p <= 1.0
    assert wilkinson([min(1.0, q * 2) for q in ps]) >= p - 1e-12


def test_the_tail_beyond_the_reference_is_not_capped() -> None:
    top = extreme(0)  # the tail: from 0.3, e-fold per 0.05
    assert feature_p(0.3, top) == pytest.approx(1 / 1001)  # the threshold: its rank
    assert feature_p(0.3001, top) == pytest.approx(100 / 1001, rel=1e-2)  # the tail's top
    assert feature_p(0.9, top) < 1e-6  # twelve scales past the threshold
    # a feature whose people spread far has a longer tail
    assert feature_p(0.9, Rank(0, 1000, 0.1, 0.3, 0.2)) > 100 * feature_p(0.9, top)


def test_support_evidence_never_convicts_alone_and_features_of_a_group_vote_once() -> None:
    ranks = calm()
    x = dict.fromkeys(NAMES, 0.1)
    support = {f.name: extreme(0) for f in LISTENER_FEATURES if f.support}
    far = {**x, **dict.fromkeys(support, 0.9)}  # each support feature at p < 1e-6
    assert combine(LISTENER_FEATURES, far, {**ranks, **support}).score < 0.5
    # four farm features at 1e-2 are one group at 4e-2, not four signals
    farm = {f.name: extreme(0.01) for f in LISTENER_FEATURES if f.group == "farm"}
    assert combine(LISTENER_FEATURES, x, {**ranks, **farm}).score < 0.5
    # one convicting signal beyond every member of the reference convicts on its own
    hours = combine(
        LISTENER_FEATURES, {**x, "hour_spread": 0.7}, {**ranks, "hour_spread": extreme(0)}
    )
    assert hours.score >= 0.75 and hours.evidence == ["hour_spread"]
    royalty = combine(LISTENER_FEATURES, {**x, "near30": 0.7}, {**ranks, "near30": extreme(0)})
    assert royalty.score >= 0.75 and royalty.evidence == ["near30"]


def test_royalty_evidence_is_repeated_stops_on_tracks_few_others_play() -> None:
    release = TrackEvidence(at=T0, p=1, arrivals=1, n=1)
    target = TrackEvidence(at=T0, p=12, arrivals=1, n=12)  # one account's own loop
    hit = TrackEvidence(at=T0, p=2_000, arrivals=1_500, n=60)
    assert royalty_weight(release, 1) == 0.0  # a curator's one preview of a release
    assert royalty_weight(target, 12) == 1.0  # the same target again, nobody else on it
    assert royalty_weight(hit, 3) < 0.25  # a chart browser's third stop on a hit
    e = ListenerEvidence()
    for i in range(1, 11):  # ten stops on one's own target, its only listener
        own = TrackEvidence(at=T0, p=i, arrivals=1, n=i)
        e = fold_listener(e, own, ts=T0 + i, burst=False, near30=True, listens=i, loyalty=1)
    assert e.r / e.k == pytest.approx(0.9, rel=1e-6)  # the first is no repeat


@given(st.dictionaries(st.sampled_from(NAMES), st.floats(0, 1), min_size=len(NAMES)))
def test_a_score_is_between_0_and_1(percentiles: dict[str, float]) -> None:
    ranks = {
        name: Rank(round((1 - q) * 1000), 1000, 0.1, 0.3, 0.05) for name, q in percentiles.items()
    }
    combined = combine(LISTENER_FEATURES, dict.fromkeys(NAMES, 0.5), ranks)
    assert 0.0 <= combined.score <= 1.0 and 0.0 <= combined.p <= 1.0
    assert p_of_score(combined.score) == pytest.approx(max(combined.p, 1e-4), rel=1e-3)


def test_few_listens_of_strong_evidence_convict_and_few_ordinary_ones_do_not() -> None:
    means = dict.fromkeys(NAMES, 0.05)
    observed = dict.fromkeys(NAMES, 8.0)
    strong = shrink({**means, "near30": 1.0}, means, LISTENER_FEATURES, observed=observed)
    assert strong["near30"] == pytest.approx((8 + 5 * 0.05) / 13)
    ordinary = shrink({**means, "near30": 0.1}, means, LISTENER_FEATURES, observed=observed)
    assert ordinary["near30"] < 0.1


# -- verdicts -----------------------------------------------------------------------------


def test_the_account_verdict_needs_listens_and_a_reference_and_does_not_flicker() -> None:
    x = dict.fromkeys(NAMES, 0.1)
    bot = {**calm(), "hour_spread": extreme(0)}
    x_bot = {**x, "hour_spread": 0.7}
    assert not judge_account(AccountEvidence(listens=MIN_LISTENS - 1), x_bot, bot).is_bot
    warming = {n: Rank(0, MIN_REFERENCE - 1, 0.1, 0.3, 0.05) for n in NAMES}
    early = judge_account(AccountEvidence(listens=500), x_bot, warming)
    assert early.warming and not early.is_bot and early.publish  # the first verdict
    on = judge_account(AccountEvidence(listens=200), x_bot, bot)
    assert on.is_bot and on.publish and on.evidence == ["hour_spread"]
    # once on, a score a little under ON keeps it on and publishes nothing new
    was = AccountEvidence(listens=200, published="0.74|1|2")
    slightly = {**x, "hour_spread": 0.625}  # scores 0.73, between OFF and ON
    held = judge_account(was, slightly, bot, segment=2)
    assert held.is_bot and not held.publish and held.marker.endswith("|1|2|")
    assert judge_account(was, slightly, bot, segment=4).publish  # a settled listener moved
    off = judge_account(was, x, calm(), segment=2)
    assert not off.is_bot and off.publish


def test_a_member_of_a_convicted_group_is_judged_through_it() -> None:
    x = dict.fromkeys(NAMES, 0.1)
    member = AccountEvidence(listens=8, group="target", group_marker="1.0|1")
    # alone, the member looks ordinary; a third of their listening in the group's bursts
    assert not judge_account(member, x, calm(), sync=0.1).is_bot
    judged = judge_account(member, x, calm(), sync=0.5)
    assert judged.is_bot and judged.group == "target" and "group" in judged.evidence
    # the group it shows is published again when it changes
    shown = replace(member, published=judged.marker)
    assert not judge_account(shown, x, calm(), sync=0.5).publish
    assert judge_account(replace(shown, group="other"), x, calm(), sync=0.5).publish


def test_a_pushed_track_is_flagged_with_its_artificial_share() -> None:
    names = [f.name for f in TRACK_FEATURES]
    x = dict.fromkeys(names, 0.1)
    ranks = calm(TRACK_FEATURES)
    pushed = judge_track(
        "", x, {**ranks, "near30": extreme(1e-3), "thin": extreme(1e-3)}, listens=40, suspicion=30
    )
    assert pushed.is_suspicious and pushed.publish
    assert pushed.artificial_share == 0.75 and set(pushed.evidence) == {"near30", "thin"}
    quiet = judge_track("", x, ranks, listens=2, suspicion=0)
    assert not quiet.is_suspicious and not quiet.publish  # too few listens to say anything
    assert not math.isnan(judge_track("", x, ranks, listens=0, suspicion=0).artificial_share)


# -- the generators the benchmarks judge on -----------------------------------------------


def test_every_population_writes_valid_events_in_time_order() -> None:
    from workers.core.listening import parse_event
    from workers.dev.benchmarks.accounts import populations

    for spec in populations(scale=0.1, hours=6):
        population = spec.make()
        truth, events, last = population.truth(), population.events(), 0
        for _ in range(3000):
            body = next(events).fields
            key = f"{body['tenant']}/{body['user_id']}".encode()
            event = parse_event(orjson.dumps(body), key=key, now_ms=int(body["ts"]))  # type: ignore[call-overload]
            assert event.user_id in truth and event.ts >= last, spec.name
            last = event.ts
