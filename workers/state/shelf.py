"""A tenant's catalogue of one tagger model, in memory: ``lua/catalogue.lua`` step by step
(``MemoryStore`` keeps one per tenant and model; ``MemoryCatalogue`` reads it)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Shelf"]

#: items expired, and old tombstones dropped, at most this many per write (as the script)
AT_A_TIME = 50


@dataclass
class Shelf:
    vectors: dict[str, bytes] = field(default_factory=dict)
    #: item -> the version that last wrote or removed it
    stamps: dict[str, int] = field(default_factory=dict)
    #: item -> when it was last written (ms)
    written: dict[str, int] = field(default_factory=dict)
    #: removed item -> when (ms)
    gone: dict[str, int] = field(default_factory=dict)
    version: int = 0
    floor: int = 0

    def fresh(self, item: str) -> bool:
        return item not in self.vectors

    def write(self, item: str, vector: bytes, *, now_ms: int, ttl_s: int, gone_for_ms: int) -> int:
        """The item written, expired items and old tombstones let go; the new version."""
        self.version += 1
        self.vectors[item] = vector
        self.stamps[item] = self.version
        self.written[item] = now_ms
        self.gone.pop(item, None)
        expired = sorted((t, i) for i, t in self.written.items() if t < now_ms - ttl_s * 1000)[
            :AT_A_TIME
        ]
        for _, old in expired:
            self.version += 1
            del self.vectors[old], self.written[old]
            self.stamps[old] = self.version
            self.gone[old] = now_ms
        for _, old in sorted((t, i) for i, t in self.gone.items() if t < now_ms - gone_for_ms)[
            :AT_A_TIME
        ]:
            self.floor = max(self.floor, self.stamps.pop(old, 0))
            del self.gone[old]
        return self.version
