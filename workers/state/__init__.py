"""Per-tenant state: the store protocol beside its Redis and in-memory implementations."""

from workers.state.memory import MemoryStore
from workers.state.protocol import StateStore, StateUnavailable
from workers.state.redis_store import RedisStore

__all__ = ["MemoryStore", "RedisStore", "StateStore", "StateUnavailable"]
