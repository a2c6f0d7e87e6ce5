"""What a play says about its track and its listener, kept as decayed sums (pure; the
reference ``listening.lua`` is checked against: ``lua/evidence.lua``).

A decayed sum halves every ``HALF_LIFE_MS`` of event time. It is kept with the newest time
it has seen, ``at``: a term dated ``ts`` adds ``x * 2^(-(at - ts) / half_life)`` (and moves
``at`` forward, scaling what was there, when ``ts`` is newer). The result is the same
whatever order the terms arrive in, so a backlog read out of order gives the sums live
traffic gives.

Per track (24 h): listens, listeners arriving (first listens), listens ending just past
30 s, the listeners' loyalty (the share of their own listening this track is) and their
suspicion (their last published score above 0.5), each weighed by ``1 / i`` for a
listener's i-th listen of the track (so a listener counts about the logarithm of their
listens: one heavy looper is not an audience), the suspicion also per listen (the
artificial share), and listens in a *burst*: a 10-minute
bucket (with the one before it) holding at least ``BURST_MIN`` listens and ``BURST_RATE``
times the track's usual rate, accounts playing the same track at the same time. The usual
rate is the track's listens before those two buckets over the time since its first listen
(at least an hour, at most the half-life's reach), so a steady audience is never a burst and
a new track's first listeners can be; a listener playing the track again within a bucket
of their last play of it is not counted again (one looper is not a crowd).

Per listener (24 h), over the tracks they play, each listen weighted by
``1 / ln(5 + the track's listens)`` so that popular tracks (a farm's camouflage) count
little (FRAUDAR's weighting): those tracks' near-30 s share, concentration (listens per
arriving listener, as a logarithm), thin-audience share, how pushed they are (``pushed``:
their audience's suspicion, from a fifth to a half), and burst share.

>>> t = TrackEvidence()
>>> for i in range(5):  # five accounts on one track within two minutes
...     t, burst = add_listen(t, ts=1_000_000 + i * 20_000, near30=True, loyalty=1.0,
...                           suspicion=0.0, listens=1)
>>> burst, round(t.p, 2), round(t.n / t.p, 2)
(True, 5.0, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

__all__ = [
    "BUCKET_MS",
    "BURST_MIN",
    "BURST_RATE",
    "HALF_LIFE_MS",
    "AccountEvidence",
    "ListenerEvidence",
    "TrackEvidence",
    "add_listen",
    "decay",
    "fold_listener",
    "harmonic",
    "is_burst",
    "listen_weight",
    "others",
    "pushed",
    "royalty_weight",
]

HALF_LIFE_MS = 24 * 3600 * 1000
BUCKET_MS = 10 * 60 * 1000
#: a burst: at least this many listens of a track in its bucket and the one before ...
BURST_MIN = 3
#: ... and this many times its usual rate there (decayed listens over ~1.44 days / 207
#: buckets of 10 minutes)
BURST_RATE = 4.0
#: a track is marked pushed from this share of its audience suspicious, fully at the next
PUSHED_FROM, PUSHED_AT = 0.2, 0.5
#: buckets kept per track (the one before the current is counted too)
BUCKETS_KEPT = 6
#: the usual rate is measured over at least this many buckets before the two counted ...
MIN_SPAN_BUCKETS = 6.0
#: ... and at most the buckets a decayed sum reaches (half-life / bucket / ln 2)
MAX_SPAN_BUCKETS = HALF_LIFE_MS / BUCKET_MS / math.log(2.0)


def decay(value: float, at: int, ts: int) -> tuple[float, int]:
    """A decayed sum ``value`` kept at ``at``, moved to ``max(at, ts)``: (value, new at)."""
    if ts <= at:
        return value, at
    return value * 2.0 ** (-(ts - at) / HALF_LIFE_MS), ts


def _term(x: float, at: int, ts: int) -> float:
    """A term ``x`` dated ``ts`` as it counts in a sum kept at ``at >= ts``."""
    return x if ts >= at else x * 2.0 ** (-(at - ts) / HALF_LIFE_MS)


@dataclass(frozen=True, slots=True)
class TrackEvidence:
    at: int = 0
    p: float = 0.0  # listens
    arrivals: float = 0.0  # first listens of a listener
    n: float = 0.0  # ending just past 30 s
    t: float = 0.0  # Σ loyalty / i (i: the listener's i-th listen of the track)
    s: float = 0.0  # Σ suspicion (per listen: the artificial share's mass)
    y: float = 0.0  # listens in a burst
    q: float = 0.0  # Σ 1 / i: each listener counts about ln(their listens), not their listens
    h: float = 0.0  # Σ suspicion / i
    #: the track's first listen (event time; 0 before any)
    first: int = 0
    #: listens per 10-minute bucket (the latest ``BUCKETS_KEPT``)
    buckets: dict[int, int] = field(default_factory=dict)


def is_burst(together: int, usual: float, *, bucket: int, first: int) -> bool:
    """``together`` counted listens in the bucket and the one before it, ``usual`` the
    track's decayed listens before this one, ``first`` its first listen's time."""
    if together < BURST_MIN:
        return False
    before = max(0.0, usual - (together - 1))  # the listens before the two buckets
    since = (bucket - 1) - first // BUCKET_MS
    span = min(MAX_SPAN_BUCKETS, max(MIN_SPAN_BUCKETS, float(since)))
    return together >= BURST_RATE * 2.0 * before / span + 1.0


def add_listen(
    t: TrackEvidence,
    *,
    ts: int,
    near30: bool,
    loyalty: float,
    suspicion: float,
    listens: int,
    counted: bool = True,
) -> tuple[TrackEvidence, bool]:
    """The track's evidence after one more listen, and whether the listen was in a burst;
    ``listens``: the listener's listens of the track with this one (0: beyond the tracks
    kept per listener: weighed as a first, not counted as an arrival), ``counted``: not
    the same listener again within a bucket of their last play of it."""
    at = max(t.at, ts)
    scale = 2.0 ** (-(at - t.at) / HALF_LIFE_MS) if t.at else 1.0
    usual = t.p * scale  # the track's listens so far, before this one
    bucket = ts // BUCKET_MS
    began = min(t.first, ts) if t.first else ts
    buckets = dict(t.buckets)
    if counted:
        buckets[bucket] = buckets.get(bucket, 0) + 1
    newest = max([*buckets, bucket])
    for old in [b for b in buckets if b <= newest - BUCKETS_KEPT]:
        del buckets[old]
    together = buckets.get(bucket, 0) + buckets.get(bucket - 1, 0)
    burst = counted and is_burst(together, usual, bucket=bucket, first=began)
    one = _term(1.0, at, ts)
    first = listens == 1
    harmonic = one / max(1, listens)
    return (
        TrackEvidence(
            at=at,
            p=t.p * scale + one,
            arrivals=t.arrivals * scale + (one if first else 0.0),
            n=t.n * scale + (one if near30 else 0.0),
            t=t.t * scale + harmonic * loyalty,
            s=t.s * scale + one * suspicion,
            y=t.y * scale + (one if burst else 0.0),
            q=t.q * scale + harmonic,
            h=t.h * scale + harmonic * suspicion,
            first=began,
            buckets=buckets,
        ),
        burst,
    )


def pushed(suspicion_share: float) -> float:
    """How far a track's listeners' suspicion marks it as pushed: 0 up to a fifth of its
    audience suspicious (a person sharing a favourite with one caught looper), 1 from half."""
    return min(1.0, max(0.0, (suspicion_share - PUSHED_FROM) / (PUSHED_AT - PUSHED_FROM)))


def royalty_weight(track: TrackEvidence, listens: int) -> float:
    """A repeated listen's weight in the listener's royalty evidence: 1 for a track nobody
    else plays, less the larger its audience beside the listener's ``listens`` of it."""
    if listens < 2:
        return 0.0
    return math.log(5.0) / math.log(5.0 + max(0.0, track.p - listens))


def listen_weight(track_listens: float) -> float:
    """A listen's weight in its listener's evidence: popular tracks count little."""
    return 1.0 / math.log(5.0 + track_listens)


@dataclass(frozen=True, slots=True)
class ListenerEvidence:
    at: int = 0
    k: float = 0.0  # listens
    w: float = 0.0  # Σ weight
    n: float = 0.0  # Σ weight x the track's near-30 s share
    c: float = 0.0  # Σ weight x ln(the track's listens per arriving listener)
    t: float = 0.0  # Σ weight x the track's thin-audience share
    s: float = 0.0  # Σ weight x how pushed the track is (``pushed``)
    y: float = 0.0  # Σ weight x burst
    #: Σ a listen ending just past 30 s of a track the listener played before, weighed
    #: ln 5 / ln(5 + the track's other listens): a royalty farm's repeated streams of
    #: targets few others play (``royalty_weight``), not a previewer's one stop on a release
    #: or repeated stops on hits
    r: float = 0.0


def harmonic(n: int) -> float:
    """1 + 1/2 + ... + 1/n (asymptotically past 16)."""
    if n <= 16:
        total = 0.0
        for i in range(1, n + 1):
            total += 1.0 / i
        return total
    return math.log(n) + 0.5772156649015329 + 1.0 / (2.0 * n) - 1.0 / (12.0 * n * n)


def others(track: TrackEvidence, *, listens: int, loyalty: float) -> tuple[float, float, float]:
    """The track's concentration, thin-audience share and near-30 s share without this
    listener (their ``listens`` of it, their ``loyalty`` to it): a fan of a niche track is
    not judged by their own devotion, nor a curator by their own stop. 0 when nobody else
    is there."""
    own = max(1, listens)
    arrivals = track.arrivals - 1.0
    rest = track.p - own
    concentration = 0.0
    if arrivals >= 1.0:
        concentration = math.log(max(1.0, max(0.0, rest) / arrivals))
    own_q = harmonic(own)
    q = track.q - own_q
    thin = max(0.0, track.t - own_q * loyalty) / q if q >= 1.0 else 0.0
    near30 = max(0.0, track.n - own) / rest if rest >= 1.0 else 0.0
    return concentration, thin, near30


def fold_listener(
    e: ListenerEvidence,
    track: TrackEvidence,
    *,
    ts: int,
    burst: bool,
    near30: bool,
    listens: int,
    loyalty: float,
) -> ListenerEvidence:
    """The listener's evidence after one more listen of ``track`` (its evidence after it):
    ``near30`` the listen itself ended just past 30 s (a track's near-30 s share counts
    only for listens that did), ``listens`` and ``loyalty`` as for ``others``."""
    at = max(e.at, ts)
    scale = 2.0 ** (-(at - e.at) / HALF_LIFE_MS) if e.at else 1.0
    w = _term(listen_weight(track.p), at, ts)
    q = max(track.q, 1e-9)
    concentration, thin, others_near30 = others(track, listens=listens, loyalty=loyalty)
    return replace(
        e,
        at=at,
        k=e.k * scale + _term(1.0, at, ts),
        w=e.w * scale + w,
        n=e.n * scale + (w * others_near30 if near30 else 0.0),
        c=e.c * scale + w * concentration,
        t=e.t * scale + w * thin,
        s=e.s * scale + w * pushed(track.h / q),
        y=e.y * scale + (w if burst else 0.0),
        r=e.r * scale + (_term(royalty_weight(track, listens), at, ts) if near30 else 0.0),
    )


@dataclass(frozen=True, slots=True)
class AccountEvidence:
    """What the store keeps per listener for the verdict beside its features."""

    listens: int = 0
    #: the canonical target of the listener's group ("" when none) and its hash
    group: str = ""
    group_hash: int = -1
    #: the verdict last published, "score|is_bot|segment|group" ("" before the first)
    published: str = ""
    #: the group track's verdict last published ("score|flag"), "" when none
    group_marker: str = ""
