"""Collaborative signals from listening: which tracks are played together, what is popular.

Two tracks are *co-listened* when one listener plays them one after the other within a
session (at most ``SESSION_GAP_MS`` apart), each a qualifying play (30 s or more: a
stream, by the industry's count; skips are not taste). Each track keeps the tracks played
next to it, and each tenant its tracks by plays, as sorted sets of *forward-decayed*
weights (Cormode et al., 2009): an event at time ``ts`` adds ``2^((ts - E) / half_life)``
for a fixed origin ``E``, so older evidence weighs less without ever rewriting it, and
scores stay comparable within a key. The origin moves every ``EPOCH_HALF_LIVES`` half-lives
(before doubles overflow), and a new epoch starts new keys: co-listening (half-life 14
days) starts afresh every ~19 years, what is popular now (half-life 6 hours) every 128
days, carrying its standings over.

Keys stay bounded: a set holding more than twice its ``top`` is cut back to its top.

>>> decayed(EPOCH_ORIGIN_MS + POPULAR_HALF_LIFE_MS, POPULAR_HALF_LIFE_MS)
(0, 2.0)
"""

from __future__ import annotations

__all__ = [
    "CO_LISTEN_HALF_LIFE_MS",
    "CO_LISTEN_TOP",
    "EPOCH_HALF_LIVES",
    "EPOCH_ORIGIN_MS",
    "POPULAR_HALF_LIFE_MS",
    "POPULAR_TOP",
    "QUALIFYING_MS",
    "RECENT_KEPT",
    "SESSION_GAP_MS",
    "decayed",
    "epoch_of",
    "epoch_origin",
    "qualifies",
    "weight_at",
]

SESSION_GAP_MS = 30 * 60 * 1000
QUALIFYING_MS = 30_000
CO_LISTEN_HALF_LIFE_MS = 14 * 24 * 3600 * 1000
POPULAR_HALF_LIFE_MS = 6 * 3600 * 1000
EPOCH_HALF_LIVES = 512
EPOCH_ORIGIN_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
#: tracks kept per co-listen set and in a tenant's popular set
CO_LISTEN_TOP = 50
POPULAR_TOP = 1000
#: plays kept per listener (seeds for their recommendations)
RECENT_KEPT = 20


def epoch_of(ts_ms: int, half_life_ms: int) -> int:
    """The epoch of event time ``ts_ms`` (its keys' number).

    >>> epoch_of(EPOCH_ORIGIN_MS - 1, POPULAR_HALF_LIFE_MS)
    -1
    """
    return (ts_ms - EPOCH_ORIGIN_MS) // (half_life_ms * EPOCH_HALF_LIVES)


def epoch_origin(ts_ms: int, half_life_ms: int) -> int:
    """The origin (ms) of the epoch of ``ts_ms``: weights double every half-life from it."""
    return EPOCH_ORIGIN_MS + epoch_of(ts_ms, half_life_ms) * half_life_ms * EPOCH_HALF_LIVES


def weight_at(ts_ms: int, origin_ms: int, half_life_ms: int) -> float:
    """An event's forward-decayed weight relative to ``origin_ms`` (as listening.lua
    computes it: ``2 ^ ((ts - origin) / half_life)``)."""
    return float(2.0 ** ((ts_ms - origin_ms) / half_life_ms))


def decayed(ts_ms: int, half_life_ms: int) -> tuple[int, float]:
    """(epoch, weight) of an event at ``ts_ms``: the weight doubles every half-life from
    its epoch's origin (1.0 at the origin, 2^512 at the next epoch's)."""
    epoch = epoch_of(ts_ms, half_life_ms)
    origin = EPOCH_ORIGIN_MS + epoch * half_life_ms * EPOCH_HALF_LIVES
    return epoch, float(2.0 ** ((ts_ms - origin) / half_life_ms))


def qualifies(kind: str, ms_played: int) -> bool:
    """A play that counts as taste: 30 s or more.

    >>> qualifies("play", 30_000), qualifies("skip", 200_000), qualifies("play", 29_999)
    (True, False, False)
    """
    return kind == "play" and ms_played >= QUALIFYING_MS
