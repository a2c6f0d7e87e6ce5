"""Outputs until the broker has them: what makes an input's offset committable.

The worker hands each record's outputs to the producer and reports them (``Sent``, with
their delivery futures) to its engine. An offset is committed only once every output of
every record up to it was acknowledged by the broker (``Settlement.committable``, after a
producer flush), never on the strength of a flush alone, which swallows errors:

- an output the producer could not deliver for a reason that passes (a leader moving, a
  timeout) is sent again;
- an output the broker refuses for good (too large for its topic, not authorised) is
  replaced by what the handler says (a dead letter that fits);
- if even that is refused, the partition is *blocked*: nothing past the record is ever
  committed, the engine stops fetching the partition, and the log and
  ``workers_partitions_blocked`` say why. Commits never go past a lost output.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import errors

from workers.core.records import Record

__all__ = [
    "RECORD_OVERHEAD",
    "OutputTooLarge",
    "Sent",
    "Settlement",
    "UndeliveredHandler",
    "is_retriable",
    "message_size",
    "refused_now",
    "too_large",
]

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
TP = tuple[str, int]


class OutputTooLarge(Exception):
    """An output larger than its topic's ``max.message.bytes``: the broker would refuse it."""


#: A record's framing in a batch (offsets, lengths, timestamps) and the batch's, rounded up.
RECORD_OVERHEAD = 128


def message_size(key: bytes, value: bytes, headers: Headers | None) -> int:
    """What a record counts against ``max.message.bytes`` (an upper bound)."""
    return (
        RECORD_OVERHEAD
        + len(key)
        + len(value)
        + sum(len(name) + len(v) + 8 for name, v in headers or ())
    )


def too_large(key: bytes, value: bytes, headers: Headers | None, *, limit: int) -> Exception | None:
    """The refusal a broker would answer, found before sending (``max.message.bytes``)."""
    size = message_size(key, value, headers)
    if size <= limit:
        return None
    return OutputTooLarge(f"{size} bytes, the topic takes at most {limit}")


def refused_now(exc: BaseException) -> asyncio.Future[Any]:
    """A delivery that failed before it started."""
    delivery = asyncio.get_running_loop().create_future()
    delivery.set_exception(exc)
    return delivery


@dataclass(slots=True)
class Sent:
    """One output handed to the producer, and the future of its delivery."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers | None
    delivery: asyncio.Future[Any]


#: Errors after which the broker will never take the record as it is. Anything else (a
#: leader moving, a timeout, a connection lost, an error not known here) is sent again: an
#: output is never given up on a guess.
_REFUSED_FOR_GOOD = (
    OutputTooLarge,
    errors.MessageSizeTooLargeError,
    errors.RecordTooLargeError,
    errors.TopicAuthorizationFailedError,
    errors.ClusterAuthorizationFailedError,
    errors.InvalidTopicError,
    errors.CorruptRecordException,
    errors.UnsupportedForMessageFormatError,
)


def is_retriable(exc: BaseException) -> bool:
    """False for what a resend cannot fix (too large, not authorised, an invalid topic)."""
    return not isinstance(exc, _REFUSED_FOR_GOOD)


class UndeliveredHandler(Protocol):
    def undelivered(
        self, record: Record, refused: list[Sent]
    ) -> list[tuple[str, bytes, bytes, Headers | None]] | None:
        """What to send instead of outputs the broker refused for good; None: nothing can."""


@dataclass(slots=True)
class _Entry:
    record: Record
    sent: list[Sent]


@dataclass
class Settlement:
    """Per partition, the records whose outputs are on their way, in offset order."""

    send: Callable[[str, bytes, bytes, Headers | None], Awaitable[Sent]]
    handler: UndeliveredHandler
    pause: Callable[[TP], None] = lambda _: None
    _pending: dict[TP, deque[_Entry]] = field(default_factory=dict)
    #: partitions that stopped, and why
    blocked: dict[TP, str] = field(default_factory=dict)

    def add(self, record: Record, sent: list[Sent]) -> None:
        """``record``'s outputs were all handed to the producer (records arrive in order)."""
        tp = (record.topic, record.partition)
        self._pending.setdefault(tp, deque()).append(_Entry(record, sent))

    def forget(self, tps: Iterable[TP]) -> None:
        """Partitions revoked: their records are the next owner's."""
        for tp in tps:
            self._pending.pop(tp, None)
            self.blocked.pop(tp, None)

    def waiting(self) -> int:
        return sum(len(queue) for queue in self._pending.values())

    async def committable(self, only: set[TP] | None = None) -> dict[TP, int]:
        """The next offset to commit per partition: every output of every record below it was
        acknowledged. Call after a producer flush; resends and replacements made here are
        acknowledged by the next flush and counted by the next call."""
        offsets: dict[TP, int] = {}
        for tp, queue in self._pending.items():
            if (only is not None and tp not in only) or tp in self.blocked:
                continue
            while queue:
                entry = queue[0]
                if not all(sent.delivery.done() for sent in entry.sent):
                    break
                failed = [s for s in entry.sent if s.delivery.exception() is not None]
                if failed and not await self._recover(tp, entry, failed):
                    break
                if failed:
                    break  # the resends and replacements are counted once acknowledged
                queue.popleft()
                offsets[tp] = entry.record.offset + 1
        return offsets

    async def _recover(self, tp: TP, entry: _Entry, failed: list[Sent]) -> bool:
        """Send again what may pass, replace what cannot; False when the partition blocks."""
        retry = [s for s in failed if is_retriable(_error(s))]
        refused = [s for s in failed if not is_retriable(_error(s))]
        again = [await self.send(s.topic, s.key, s.value, s.headers) for s in retry]
        for sent in retry:
            log.warning(
                "output to %s not delivered (%s); sending it again", sent.topic, _error(sent)
            )
        if refused:
            instead = self.handler.undelivered(entry.record, refused)
            if instead is None:
                why = "; ".join(f"{s.topic}: {_error(s)!r}" for s in refused)
                self.blocked[tp] = why
                self.pause(tp)
                log.error(
                    "partition %s[%d] stopped at offset %d: an output could not be delivered "
                    "in any form (%s); nothing past it will be committed",
                    *tp,
                    entry.record.offset,
                    why,
                    extra=entry.record.place(),
                )
                return False
            for topic, key, value, headers in instead:
                again.append(await self.send(topic, key, value, headers))
        entry.sent = [s for s in entry.sent if s not in failed] + again
        return True


def _error(sent: Sent) -> BaseException:
    exc = sent.delivery.exception()
    assert exc is not None
    return exc
