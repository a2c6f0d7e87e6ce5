"""Per-tenant state: the store protocol and its Redis and in-memory implementations."""

from workers.state.redis_store import RedisStore
from workers.state.store import (
    ListeningState,
    ListeningUpdate,
    MemoryStore,
    StateStore,
    UserState,
)

__all__ = [
    "ListeningState",
    "ListeningUpdate",
    "MemoryStore",
    "RedisStore",
    "StateStore",
    "UserState",
]
