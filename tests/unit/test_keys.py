"""Keys are unambiguous: every id the contract allows maps to its own keys, and no id can
reach another id's keys or a key of another kind."""

from __future__ import annotations

import re
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from workers.state import keys

IDS = st.from_regex(re.compile(r"[A-Za-z0-9._:@-]{1,24}"), fullmatch=True)
NUMBERS = st.integers(min_value=0, max_value=10**6)

#: every kind of key built from ids, with the arguments it takes
KINDS: dict[str, Callable[..., str]] = {
    "user": lambda t, i, n: keys.user(t, i),
    "user-tracks": lambda t, i, n: keys.user_tracks(t, i),
    "user-plays": lambda t, i, n: keys.user_plays(t, i),
    "seen": lambda t, i, n: keys.seen(t, n, keys.event_digest(i)),
    "event-time": lambda t, i, n: keys.event_time(t, i),
    "erased": lambda t, i, n: keys.erased(t, i),
    "track": lambda t, i, n: keys.track(t, i),
    "track-listeners": lambda t, i, n: keys.track_listeners(t, n, i),
    "stream": lambda t, i, n: keys.stream(t, i),
    "stream-outputs": lambda t, i, n: keys.stream_outputs(t, n, i),
    "tag-stream": lambda t, i, n: keys.stream(t, i, "tags"),
    "tag-stream-outputs": lambda t, i, n: keys.stream_outputs(t, n, i, "tags"),
    "recent": lambda t, i, n: keys.recent(t, i),
    "co-listen": lambda t, i, n: keys.co_listen(t, n, i),
    "model": lambda t, i, n: keys.model(t, i),
    "quota": lambda t, i, n: keys.quota(t, n),
}


@given(
    st.tuples(st.sampled_from(sorted(KINDS)), IDS, NUMBERS),
    st.tuples(st.sampled_from(sorted(KINDS)), IDS, NUMBERS),
)
def test_two_different_keys_never_share_a_name(
    first: tuple[str, str, int], second: tuple[str, str, int]
) -> None:
    (kind_a, id_a, n_a), (kind_b, id_b, n_b) = first, second
    a = KINDS[kind_a]("acme", id_a, n_a)
    b = KINDS[kind_b]("acme", id_b, n_b)
    if kind_a == kind_b == "quota":
        same = n_a == n_b
    elif kind_a == kind_b == "seen":  # a tenant's applied events, spread over buckets
        same = n_a == n_b and a.rpartition(":")[2] == b.rpartition(":")[2]
    elif kind_a == kind_b and kind_a in (
        "track-listeners",
        "stream-outputs",
        "tag-stream-outputs",
        "co-listen",
    ):
        same = (id_a, n_a) == (id_b, n_b)
    else:
        same = (kind_a, id_a) == (kind_b, id_b)
    assert (a == b) == same, (a, b)


@given(IDS, IDS)
def test_a_listeners_keys_are_theirs_alone(user_a: str, user_b: str) -> None:
    mine = set(keys.user_keys("acme", user_a))
    theirs = set(keys.user_keys("acme", user_b))
    assert (mine == theirs) == (user_a == user_b)
    assert not mine & theirs or user_a == user_b


def test_the_example_of_the_issue() -> None:
    """A play for u1, then an event whose user_id is u1:tracks: two users, no collision."""
    u1 = keys.user_keys("acme", "u1")
    other = keys.user_keys("acme", "u1:tracks")
    assert keys.user_tracks("acme", "u1") not in other
    assert not set(u1) & set(other)


def test_bookkeeping_without_a_tenant_cannot_be_a_tenants() -> None:
    assert keys.deadletter_ledger(None, "listening.events", 3).startswith("{_workers}:")
    assert keys.deadletter_ledger("acme", "acme.audio.chunks", 0).startswith("{acme}:")
