"""The Redis keys of a tenant's state: one function per kind of key, in one place.

Every key of a tenant starts with ``{tenant}:``, a Redis Cluster hash tag, so one
tenant's keys share a slot (Lua scripts may touch them together) and can be found,
measured, exported and erased on their own.

A key is ``{tenant}:<kind>:<fixed parts>:<id>``: the kind first, then parts that cannot
contain ``:`` (numbers), the id last. Ids may contain ``:`` (``^[A-Za-z0-9._:@-]{1,128}$``),
so the id must come last for keys to be unambiguous: user ``a`` and user ``a:tracks`` get
``{t}:user:a`` and ``{t}:user:a:tracks``, and no other kind of key of either can be spelt
the same. ``tests/unit/test_keys.py`` checks this for every kind and every id.

Erasure names keys, never patterns: ``SCAN MATCH {t}:user:a*`` would also find ``a:b``.

>>> user("acme", "u1"), user_tracks("acme", "u1:x")
('{acme}:user:u1', '{acme}:user-tracks:u1:x')
"""

from __future__ import annotations

import functools
import hashlib

from workers.core.tenants import validate_tenant

__all__ = [
    "DEADLETTERS_TAG",
    "REFERENCES",
    "SEEN_BUCKETS",
    "USER_KINDS",
    "catalogue",
    "co_listen",
    "deadletter_ledger",
    "embedding_gone",
    "embedding_stamps",
    "embedding_written",
    "embeddings",
    "erased",
    "event_digest",
    "event_time",
    "model",
    "popular",
    "prefix",
    "quota",
    "recent",
    "redriven",
    "reference_members",
    "reference_moments",
    "reference_values",
    "seen",
    "stream",
    "stream_admitted",
    "stream_outputs",
    "track",
    "track_listeners",
    "user",
    "user_keys",
    "user_plays",
    "user_tracks",
]

#: The hash tag of the worker's own bookkeeping for records that name no served tenant
#: (shared isolation). Tenant ids cannot start with ``_``, so no tenant can own it.
DEADLETTERS_TAG = "_workers"


@functools.lru_cache(maxsize=4096)  # a worker serves few tenants; checked once each
def prefix(tenant: str) -> str:
    """The key prefix of one tenant, e.g. ``{acme}:``."""
    return "{" + validate_tenant(tenant) + "}:"


def _key(tenant: str, kind: str, *parts: str | int) -> str:
    return prefix(tenant) + ":".join((kind, *(str(part) for part in parts)))


def user(tenant: str, user_id: str) -> str:
    """Hash: a listener's behaviour counters, hour histogram, first and last event time."""
    return _key(tenant, "user", user_id)


def user_tracks(tenant: str, user_id: str) -> str:
    """HyperLogLog: the distinct tracks a listener played."""
    return _key(tenant, "user-tracks", user_id)


def user_plays(tenant: str, user_id: str) -> str:
    """Hash: listens per track of one listener (capped), for catalogue concentration."""
    return _key(tenant, "user-plays", user_id)


#: how many hashes a tenant's applied events of one day are spread over
SEEN_BUCKETS = 1024


def event_digest(event_id: str) -> str:
    """An event id as the tenant's applied-events hashes keep it: a 96-bit digest (the id
    itself may carry anything a producer put in it)."""
    return hashlib.blake2b(event_id.encode(), digest_size=12).hexdigest()


def seen(tenant: str, day: int, digest: str) -> str:
    """Hash: event digest -> the record that applied it, for the tenant's events that
    arrived on ``day`` (days since the epoch), in one of ``SEEN_BUCKETS`` by the digest: how
    a replay is told from a duplicate, whichever listener the id came with (``event_id`` is
    unique per tenant)."""
    return _key(tenant, "seen", day, int(digest[:6], 16) % SEEN_BUCKETS)


def event_time(tenant: str, topic: str) -> str:
    """Hash: the tenant's newest event time per partition of an input topic, and the low
    watermark over them (``lua/clock.lua``)."""
    return _key(tenant, "event-time", topic)


def erased(tenant: str, user_id: str) -> str:
    """String: when a listener was erased (events published before it are refused). Named
    by a digest of the id, so the erased id itself is not kept."""
    return _key(tenant, "erased", hashlib.sha256(user_id.encode()).hexdigest()[:32])


def track(tenant: str, track_id: str) -> str:
    """Hash: a track's counts per event-time window (``{window}:{count}`` fields)."""
    return _key(tenant, "track", track_id)


def track_listeners(tenant: str, window: int, track_id: str) -> str:
    """HyperLogLog: a track's distinct listeners in one window (mixes many listeners)."""
    return _key(tenant, "track-listeners", window, track_id)


#: the kinds of a stream's keys for each consumer of ``audio.chunks``: the core worker's
#: features and anomaly lane, and the tagger's (its own state, its own kept outputs)
_STREAM_KINDS = {"audio": "stream", "tags": "tag-stream"}


def stream(tenant: str, stream_id: str, lane: str = "audio") -> str:
    """Hash: an audio stream's latest ``seq`` and its framing state (per ``lane``)."""
    return _key(tenant, _STREAM_KINDS[lane], stream_id)


def stream_admitted(tenant: str, stream_id: str) -> str:
    """String: the chunk ``seq`` a stream was admitted from (counted once against the
    tenant's quota), read by both consumers of ``audio.chunks``."""
    return _key(tenant, "stream-admitted", stream_id)


def stream_outputs(tenant: str, partition: int, stream_id: str, lane: str = "audio") -> str:
    """Sorted set: the outputs of a stream's chunks read from one partition, by offset,
    kept until their offset is committed (a re-read gets them back)."""
    return _key(tenant, _STREAM_KINDS[lane] + "-outputs", partition, stream_id)


def recent(tenant: str, user_id: str) -> str:
    """List: a listener's latest qualifying plays, newest first (``track|ts`` items)."""
    return _key(tenant, "recent", user_id)


def co_listen(tenant: str, epoch: int, track_id: str) -> str:
    """Sorted set: the tracks played next to ``track_id`` in listening sessions, by
    forward-decayed weight (``core/colisten.py``), the top ones kept."""
    return _key(tenant, "co-listen", epoch, track_id)


def popular(tenant: str, epoch: int) -> str:
    """Sorted set: the tenant's tracks by forward-decayed plays: what is popular now."""
    return _key(tenant, "popular", epoch)


def embeddings(tenant: str, model: str) -> str:
    """Hash: track (or stream) id -> its audio embedding by ``model`` (float32 bytes, unit
    length). Each tagger model has its own catalogue: embedding spaces never mix."""
    return _key(tenant, "embeddings", model)


def catalogue(tenant: str, model: str) -> str:
    """Hash: a catalogue's ``version`` (bumped at every write or removal: a reader's cue)
    and ``floor`` (a reader behind it reads everything again)."""
    return _key(tenant, "catalogue", model)


def embedding_stamps(tenant: str, model: str) -> str:
    """Sorted set: each item by the version that last wrote (or removed) it."""
    return _key(tenant, "embedding-stamps", model)


def embedding_written(tenant: str, model: str) -> str:
    """Sorted set: each item by when it was last written (ms): the oldest expire first."""
    return _key(tenant, "embedding-written", model)


def embedding_gone(tenant: str, model: str) -> str:
    """Sorted set: items removed, by when (ms): their tombstones in the stamps, for a while."""
    return _key(tenant, "embedding-gone", model)


def model(tenant: str, kind: str) -> str:
    """Hash: a tenant's store-kept model (the popularity forecaster's statistics)."""
    return _key(tenant, "model", kind)


#: the kinds of a tenant's reference populations (``core/models/reference.py``)
REFERENCES = ("listeners", "tracks")


def reference_members(tenant: str, population: str) -> str:
    """Sorted set: a reference population's members (hashes of listeners or tracks, no
    ids) by their hash: the bottom-k sample."""
    return _key(tenant, "reference", population)


def reference_moments(tenant: str, population: str) -> str:
    """Hash: the sums and sums of squares of a reference population's features."""
    return _key(tenant, "reference-moments", population)


def reference_values(tenant: str, population: str, feature: str) -> str:
    """Sorted set: a reference population's values of one feature, by member."""
    return _key(tenant, "reference-values", population, feature)


def quota(tenant: str, day: int) -> str:
    """Counter: new ids (listeners, tracks, streams) the tenant created on ``day``."""
    return _key(tenant, "quota", day)


def deadletter_ledger(owner: str | None, topic: str, partition: int) -> str:
    """Sorted set: offsets of a partition's records that became dead letters (a re-read
    one is marked a replay). Keyed by the topic's owner under strict isolation."""
    return f"{_owner_tag(owner)}deadletters:{partition}:{topic}"


def redriven(owner: str | None, topic: str) -> str:
    """Set: the ``partition:offset`` of a dead-letter topic's records already re-driven
    (``redrive`` publishes each once). Keyed by the topic's owner under strict isolation."""
    return f"{_owner_tag(owner)}redriven:{topic}"


def _owner_tag(owner: str | None) -> str:
    """The hash tag of a topic's keys: its owner's under strict isolation, else the
    workers' own (which no tenant can have)."""
    return "{" + (validate_tenant(owner) if owner is not None else DEADLETTERS_TAG) + "}:"


#: Every kind of key that holds one listener's data (erasure removes them all).
USER_KINDS = ("user", "user-tracks", "user-plays", "recent", "erased")


def user_keys(tenant: str, user_id: str) -> list[str]:
    """Every key holding ``user_id``'s data (the tombstone aside)."""
    return [
        user(tenant, user_id),
        user_tracks(tenant, user_id),
        user_plays(tenant, user_id),
        recent(tenant, user_id),
    ]
