"""Every Lua script of the Redis store, with its KEYS and ARGV declared by name.

A script is its source files (``state/lua``, helpers first) and two declarations: frozen
dataclasses whose field order is the order of ``KEYS`` and ``ARGV`` (``seam.py``). The
script's header reads them into locals of the same names; ``LuaScript`` checks that when it
is built, so the two sides cannot drift apart. Callers build the declarations by name and
``command`` lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from workers.state.redis_client import Script, script_source
from workers.state.seam import check_header, flatten, with_header

__all__ = [
    "ALL",
    "CLOCK",
    "EMBEDDING",
    "LISTENING",
    "NOTE",
    "STREAM",
    "ClockArgs",
    "ClockKeys",
    "EmbeddingArgs",
    "EmbeddingKeys",
    "ListeningArgs",
    "ListeningKeys",
    "LuaScript",
    "NoteArgs",
    "NoteKeys",
    "StreamArgs",
    "StreamKeys",
    "check_all",
]


class LuaScript(Script):
    """A script and the declarations of its KEYS and ARGV (``check`` compares them)."""

    def __init__(self, files: tuple[str, ...], keys: type[Any], args: type[Any]) -> None:
        super().__init__(script_source(*files))
        self.files, self.keys, self.args = files, keys, args

    def check(self) -> None:
        """Raise ``SeamMismatch`` unless the script's header reads what is declared."""
        main = script_source(self.files[-1])
        check_header(main, self.keys, "KEYS")
        check_header(main, self.args, "ARGV")

    def rewrite_header(self) -> None:
        """Write the declared header block into the script's source (a developer's aid
        after changing a declaration: ``python -m workers.state.scripts``)."""
        path = Path(str(resources.files("workers.state").joinpath("lua", self.files[-1])))
        path.write_text(with_header(path.read_text(), self.keys, self.args))

    def command(self, keys: Any, args: Any) -> tuple[Any, ...]:
        """``EVALSHA`` with the declarations laid out in their slots."""
        if not isinstance(keys, self.keys) or not isinstance(args, self.args):
            raise TypeError(f"{self.files[-1]} takes {self.keys.__name__}, {self.args.__name__}")
        flat_keys = flatten(keys)
        return ("EVALSHA", self.sha, len(flat_keys), *flat_keys, *flatten(args))


@dataclass(frozen=True, slots=True)
class ListeningKeys:
    """``listening.lua``: all in the tenant's hash slot (layout in ``keys.py``)."""

    user: str
    user_tracks: str  # HyperLogLog
    user_plays: str  # hash track -> listens
    track_windows: str  # hash "{window}:{count}" -> n, maxw; the track's evidence (e_*, b*)
    track_listeners: str  # HyperLogLog of the event's window
    erased: str
    quota: str
    forecaster: str  # hash: the forecaster's statistics
    recent: str  # list "track|ts", newest first
    popular: str  # zset of this epoch
    segments: str  # string: the segment centres
    clock: str  # hash: the tenant's event time per partition, its low watermark (clock.lua)
    listener_members: str  # zset: the reference listeners, by hash (reference.lua)
    listener_moments: str  # hash: their features' sums and sums of squares
    track_members: str  # zset: the reference tracks
    track_moments: str
    seen_today: str  # hash event digest -> "position|incarnation" (written here)
    seen_days: tuple[str, ...] = ()  # the other days of the replay memory (read only)


@dataclass(frozen=True, slots=True)
class ListeningArgs:
    kind: str
    ms_played: int
    track_id: str
    hour: int
    ts: int
    user_id: str
    window: int
    seen_ttl: int
    window_ttl: int
    near30: int  # 0/1
    completed: int  # 0/1
    position: str  # topic:partition:offset
    incarnation: str
    state_ttl: int
    record_time: int  # the Kafka timestamp (ms)
    lateness: int  # ms
    early: int  # 0/1: ts beyond the worker's clock + skew
    quota_limit: int  # new ids a day (0: none)
    quota_ttl: int
    kept_tracks: int  # tracks kept per listener in user_plays
    event_id: str
    forgetting: float
    track_hash: int  # accounts.track_hash: the track's member in the reference, and a group's
    listener_hash: int  # accounts.member_hash: the listener's member in the reference
    listener_names: str  # the features' names, comma-separated: the script checks them
    track_names: str
    listener_prefix: str  # the reference listeners' feature sets: prefix .. feature name
    track_reference_prefix: str
    track_prefix: str  # a track's hash: prefix .. track id (the listener's group's)
    reference_size: int
    # co-listening (core/colisten.py)
    qualifies: int  # 0/1: a play of 30 s or more
    co_prefix: str
    pop_weight: str
    pop_carry: str  # the previous epoch's popular key
    session_gap: int
    co_top: int
    pop_top: int
    recent_kept: int
    event_key: str  # the event id's digest: its field among the tenant's applied events
    listener_ts: int  # ts, or the clock + allowed skew for a play dated ahead of it
    read_time: int  # when the worker read the record (ms): an erasure refuses what came before
    window_ms: int
    max_windows: int  # the most windows a track keeps, however far its partitions drift
    co_origin: int  # the co-listening epoch's origin (ms) and half-life: pair weights
    co_half_life: int
    horizon: int  # the record's partition's newest event time as of it (-1: none): caps low


@dataclass(frozen=True, slots=True)
class ClockKeys:
    """``clock.lua``: a tenant's event time per input partition, and its low watermark."""

    clock: str


@dataclass(frozen=True, slots=True)
class ClockArgs:
    now: int  # the worker's clock (ms)
    idle: int  # a partition silent this long (ms) does not hold the watermark back
    ttl: int
    waiting_for: int  # a report of records waiting holds for this long (ms)
    waiting: str  # partitions with records waiting, comma-separated ("": none said)
    times: tuple[int, ...] = ()  # partition, its newest event time, partition, ...


@dataclass(frozen=True, slots=True)
class StreamKeys:
    """``stream.lua``: an audio stream's state after a chunk, with the chunk's outputs."""

    stream: str  # hash seq, state
    outputs_key: str  # zset: score offset, member "position|incarnation|seq|outputs"
    quota: str  # of the day of the chunk's record
    admitted: str  # string: the seq the stream was admitted from (both lanes read it)
    # the tenant's catalogue of the tagger's model (written when ``item`` is given)
    embeddings: str
    catalogue: str  # hash: version, floor
    stamps: str
    written: str
    gone: str


@dataclass(frozen=True, slots=True)
class StreamArgs:
    seq: int
    state: bytes
    ttl: int
    position: str
    outputs: bytes
    offset: int
    committed: int  # the partition's committed offset (-1: unknown)
    outputs_kept: int
    incarnation: str
    quota_limit: int  # new ids a day; 0: no limit
    quota_ttl: int
    item: str  # the track (or stream) whose embedding is saved ("": none)
    vector: bytes
    now: int  # the clock (ms): when the item was written
    catalogue_ttl: int  # seconds an item stays unwritten before it leaves
    gone_for: int  # ms a removed item's tombstone stays for readers


@dataclass(frozen=True, slots=True)
class EmbeddingKeys:
    """``embedding.lua``: one item written to a catalogue outside the tagger."""

    embeddings: str
    catalogue: str
    stamps: str
    written: str
    gone: str
    quota: str


@dataclass(frozen=True, slots=True)
class EmbeddingArgs:
    item: str
    vector: bytes
    now: int
    catalogue_ttl: int
    gone_for: int
    quota_limit: int
    quota_ttl: int


@dataclass(frozen=True, slots=True)
class NoteKeys:
    """``note.lua``: a listener's or a track's hash."""

    subject: str


@dataclass(frozen=True, slots=True)
class NoteArgs:
    field: str  # 'ap' (a listener's verdict) or 'tm' (a track's)
    marker: str


LISTENING = LuaScript(
    (
        "common.lua",
        "evidence.lua",
        "features.lua",
        "reference.lua",
        "forecaster.lua",
        "segments.lua",
        "listening.lua",
    ),
    ListeningKeys,
    ListeningArgs,
)
CLOCK = LuaScript(("common.lua", "clock.lua"), ClockKeys, ClockArgs)
STREAM = LuaScript(("common.lua", "catalogue.lua", "stream.lua"), StreamKeys, StreamArgs)
EMBEDDING = LuaScript(
    ("common.lua", "catalogue.lua", "embedding.lua"), EmbeddingKeys, EmbeddingArgs
)
NOTE = LuaScript(("note.lua",), NoteKeys, NoteArgs)

ALL = (LISTENING, CLOCK, STREAM, EMBEDDING, NOTE)


def check_all() -> None:
    """Every script's header against its declarations (the store does it at start)."""
    for script in ALL:
        script.check()


if __name__ == "__main__":
    for script in ALL:
        script.rewrite_header()
    check_all()
