"""Event time (`ts`, epoch ms) a worker accepts.

Windows and rates use event time, so back-filled history is welcome: the only lower bound
is 2000-01-01, below which a `ts` is almost surely in seconds rather than milliseconds. The
upper bound is relative to the worker's clock: an event from more than a day ahead would
roll a track's popularity window past every real event (Kafka's own
``message.timestamp.difference.max.ms`` guards brokers the same way).

>>> check_ts(1_764_000_000_000, now_ms=1_764_000_000_000)
>>> check_ts(1_764_000_000, now_ms=1_764_000_000_000)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
workers.core.errors.Rejected: timestamp-out-of-range: ts 1764000000 is before 2000-01-01: ...
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from workers.core.errors import Reason, Rejected

__all__ = ["MAX_AHEAD_MS", "MIN_TS_MS", "PartitionClocks", "check_ts", "now_ms"]

MIN_TS_MS = 946_684_800_000
MAX_AHEAD_MS = 24 * 3600 * 1000


def now_ms() -> int:
    return int(time.time() * 1000)


def check_ts(ts: int, *, now_ms: int) -> None:
    if ts < MIN_TS_MS:
        raise Rejected(
            Reason.TIMESTAMP_OUT_OF_RANGE,
            f"ts {ts} is before 2000-01-01: epoch seconds instead of milliseconds?",
        )
    if ts > now_ms + MAX_AHEAD_MS:
        raise Rejected(
            Reason.TIMESTAMP_OUT_OF_RANGE,
            f"ts {ts} is more than 24 h ahead of the worker's clock ({now_ms})",
        )


@dataclass
class PartitionClocks:
    """When a worker tells the store how far each partition's event time has come (the
    store keeps the tenant's low watermark over its partitions: ``state/lua/clock.lua``).

    Often enough that the watermark follows, seldom enough to cost nothing per event: a
    partition is reported when its newest event time moved by ``step_ms`` or ``every_ms``
    of the clock passed since it last was (and so it never looks idle while it flows).

    >>> clocks = PartitionClocks(step_ms=60_000, every_ms=1_000)
    >>> clocks.due([("acme", 0, 1_000_000)], now_ms=5_000)
    {'acme': [(0, 1000000)]}
    >>> clocks.due([("acme", 0, 1_000_500)], now_ms=5_500)  # nothing new to say yet
    {}
    >>> clocks.due([("acme", 0, 1_000_600)], now_ms=6_100)
    {'acme': [(0, 1000600)]}
    """

    step_ms: int = 60_000
    every_ms: int = 1_000
    _told: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    _newest: dict[tuple[str, int], int] = field(default_factory=dict)

    def horizons(self, times: Iterable[tuple[str, int, int, bool]]) -> list[int]:
        """From ``(tenant, partition, event time, early)`` of a batch, in offset order: per
        record, its partition's newest event time as of that record (-1: none yet).

        A batch is reported before it is applied, so the watermark a record reads may count
        records after it in its own partition; the store caps it with this horizon, and a
        batch spanning hours of a sparse tenant's backlog is judged as records read one at a
        time are. An early record (dated beyond the clock's skew) moves no horizon.

        >>> clocks = PartitionClocks()
        >>> clocks.horizons([("acme", 0, 500, False), ("acme", 0, 400, False),
        ...                  ("acme", 1, 100, False), ("acme", 0, 900, True)])
        [500, 500, 100, 500]
        """
        out = []
        for tenant, partition, ts, early in times:
            key = (tenant, partition)
            newest = self._newest.get(key, -1)
            if not early and ts > newest:
                newest = self._newest[key] = ts
            out.append(newest)
        if len(self._newest) > 65_536:  # partitions of tenants gone long ago
            self._newest.clear()
        return out

    def read(
        self, times: Sequence[tuple[str, int, int, bool]], *, now_ms: int
    ) -> tuple[dict[str, list[tuple[int, int]]], list[int]]:
        """From ``(tenant, partition, event time, early)`` of a batch, in offset order: the
        partitions to report now (``due``, early records left out) and each record's
        horizon (``horizons``); both stores read a batch through this one call."""
        due = self.due([t[:3] for t in times if not t[3]], now_ms=now_ms)
        return due, self.horizons(times)

    def due(
        self, times: Iterable[tuple[str, int, int]], *, now_ms: int
    ) -> dict[str, list[tuple[int, int]]]:
        """From ``(tenant, partition, event time)`` of a batch: per tenant, the partitions
        to report now with their newest event time."""
        newest: dict[tuple[str, int], int] = {}
        for tenant, partition, ts in times:
            key = (tenant, partition)
            newest[key] = max(ts, newest.get(key, ts))
        out: dict[str, list[tuple[int, int]]] = {}
        for (tenant, partition), ts in newest.items():
            told = self._told.get((tenant, partition))
            if (
                told is not None
                and ts < told[0] + self.step_ms
                and now_ms < told[1] + self.every_ms
            ):
                continue
            reported = ts if told is None else max(ts, told[0])
            self._told[(tenant, partition)] = (reported, now_ms)
            out.setdefault(tenant, []).append((partition, reported))
        if len(self._told) > 65_536:  # partitions of tenants gone long ago
            self._told.clear()
        return out
