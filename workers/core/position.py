"""Where a record came from: the one type every layer names a record's place by."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Position"]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a record came from. The same position read again is a replay, not a duplicate.

    >>> str(Position("listening.events", 2, 1042))
    'listening.events:2:1042'
    """

    topic: str
    partition: int
    offset: int
    #: the partition's committed offset when the record was read (-1: not known): no record
    #: below it can be read again, so what was kept to recognise re-reads may go
    committed: int = -1

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"
