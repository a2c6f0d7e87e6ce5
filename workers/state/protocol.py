"""The state store protocol: what the pipeline asks of per-tenant state.

Two implementations obey it, checked by one test suite that runs over both: ``RedisStore``
(``redis_store.py``, production) and ``MemoryStore`` (``memory.py``, tests and benchmarks).
Implementations raise ``StateUnavailable`` for failures a retry can fix (connection lost,
timeouts, a server loading or failing over); anything else is a fault of the call itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from workers.core.listening_state import ListeningState, ListeningUpdate

__all__ = [
    "RECENT_CHUNKS",
    "SEEN_TTL_S",
    "STREAM_TTL_S",
    "StateStore",
    "StateUnavailable",
]

SEEN_TTL_S = 7 * 24 * 3600
STREAM_TTL_S = 24 * 3600
#: Chunks per stream whose outputs are kept, to re-emit a chunk re-read after a crash. Only
#: chunks processed but maybe not yet published when a worker died need it: a few per stream.
RECENT_CHUNKS = 32


class StateUnavailable(Exception):
    """The store cannot answer now (connection, timeout, loading, failover): retry later."""


class StateStore(Protocol):
    async def apply_listening(
        self, updates: Sequence[ListeningUpdate]
    ) -> list[ListeningState | None]:
        """Apply events atomically, each once; None marks an event_id already applied."""

    async def load_stream(self, tenant: str, stream: str) -> bytes | None:
        """The state saved after the stream's latest chunk, if any."""

    async def save_stream(
        self, tenant: str, stream: str, seq: int, state: bytes, *, position: str, outputs: bytes
    ) -> tuple[bool, int]:
        """Save state after chunk ``seq`` with the chunk's record position and outputs, in one
        atomic step: (accepted, previous seq or -1). A seq not above the stored one is refused
        (a repeat, a replay, or another worker got there first)."""

    async def recent_chunk(self, tenant: str, stream: str, seq: int) -> tuple[str, bytes] | None:
        """(position, outputs) saved with chunk ``seq``, if it is among the last kept."""

    async def load_snapshot(self, tenant: str, kind: str) -> bytes | None: ...

    async def save_snapshots(self, snapshots: Mapping[tuple[str, str], bytes]) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
