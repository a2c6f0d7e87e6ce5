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

from workers.core.errors import Reason, Rejected

__all__ = ["MAX_AHEAD_MS", "MIN_TS_MS", "check_ts", "now_ms"]

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
