"""Every Lua script of the Redis store, with its KEYS and ARGV declared by name.

A script is its source files (``state/lua``, helpers first) and two declarations: frozen
dataclasses whose field order is the order of ``KEYS`` and ``ARGV`` (``seam.py``). The
script's header reads them into locals of the same names; ``LuaScript`` checks that when it
is built, so the two sides cannot drift apart. Callers build the declarations by name and
``command`` lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.state.redis_client import Script, script_source
from workers.state.seam import check_header, flatten

__all__ = [
    "LISTENING",
    "NOTE_ACCOUNT",
    "SAVE_EMBEDDING",
    "STREAM",
    "EmbeddingArgs",
    "EmbeddingKeys",
    "ListeningArgs",
    "ListeningKeys",
    "LuaScript",
    "NoteAccountArgs",
    "NoteAccountKeys",
    "StreamArgs",
    "StreamKeys",
]


class LuaScript(Script):
    """A script whose header was checked against its declarations."""

    def __init__(self, files: tuple[str, ...], keys: type[Any], args: type[Any]) -> None:
        super().__init__(script_source(*files))
        main = script_source(files[-1])
        check_header(main, keys, "KEYS")
        check_header(main, args, "ARGV")
        self.files, self.keys, self.args = files, keys, args

    def command(self, keys: Any, args: Any) -> tuple[Any, ...]:
        """``EVALSHA`` with the declarations laid out in their slots."""
        if not isinstance(keys, self.keys) or not isinstance(args, self.args):
            raise TypeError(f"{self.files[-1]} takes {self.keys.__name__}, {self.args.__name__}")
        flat_keys = flatten(keys)
        return ("EVALSHA", self.sha, len(flat_keys), *flat_keys, *flatten(args))


@dataclass(frozen=True, slots=True)
class ListeningKeys:
    """``listening.lua``: all in the tenant's hash slot (layout in ``keys.py``)."""

    seen_today: str  # hash event_id -> "position|incarnation" (written here)
    user: str
    user_tracks: str  # HyperLogLog
    user_plays: str  # hash track -> listens
    track_windows: str  # hash "{window}:{count}" -> n, maxw
    track_listeners: str  # HyperLogLog of the event's window
    erased: str
    quota: str
    detector_key: str  # hash seq, seen, alarms
    score_window: str  # zset
    forecaster: str  # hash: the forecaster's statistics
    recent: str  # list "track|ts", newest first
    popular: str  # zset of this epoch
    segments: str  # string: the segment centres
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
    learning: int  # 0/1
    alarm_rate: float
    warmup: int
    top_k: int
    detector_window: int
    forgetting: float
    track_hash: int  # accounts.track_hash: picks a farm's canonical target
    window_prefix: str  # the detector's feature windows: prefix .. feature name
    n_features: int
    # co-listening (core/colisten.py)
    qualifies: int  # 0/1: a play of 30 s or more
    co_weight: str
    co_prefix: str
    pop_weight: str
    pop_carry: str  # the previous epoch's popular key
    session_gap: int
    co_top: int
    pop_top: int
    recent_kept: int


@dataclass(frozen=True, slots=True)
class StreamKeys:
    """``stream.lua``: an audio stream's state after a chunk, with the chunk's outputs."""

    stream: str  # hash seq, state
    outputs_key: str  # zset: score offset, member "position|incarnation|seq|outputs"
    quota: str


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
    quota_limit: int  # new ids a day; 0: no limit; -1: not counted (the tagger's copy)
    quota_ttl: int


@dataclass(frozen=True, slots=True)
class NoteAccountKeys:
    user: str


@dataclass(frozen=True, slots=True)
class NoteAccountArgs:
    marker: str


@dataclass(frozen=True, slots=True)
class EmbeddingKeys:
    embeddings: str
    version: str
    stamps: str


@dataclass(frozen=True, slots=True)
class EmbeddingArgs:
    item: str
    vector: bytes
    ttl: int


LISTENING = LuaScript(
    ("common.lua", "detector.lua", "forecaster.lua", "segments.lua", "listening.lua"),
    ListeningKeys,
    ListeningArgs,
)
STREAM = LuaScript(("common.lua", "stream.lua"), StreamKeys, StreamArgs)
NOTE_ACCOUNT = LuaScript(("note_account.lua",), NoteAccountKeys, NoteAccountArgs)
SAVE_EMBEDDING = LuaScript(("save_embedding.lua",), EmbeddingKeys, EmbeddingArgs)
