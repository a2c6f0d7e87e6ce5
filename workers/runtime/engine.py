"""The Engine protocol: what the worker needs from the Kafka side, whichever client runs it.

Three implementations: ``RdkafkaEngine`` (``rdkafka_engine.py``: librdkafka through
confluent-kafka, the default), ``DirectEngine`` (``direct.py``: one aiokafka consumer loop;
both share their lanes and guarantees, ``consuming.py``) and ``FaustEngine``
(``faust_engine.py``: Faust agents). The worker is handed an
engine, never builds one (``main.py`` builds the one ``WORKERS_ENGINE`` names); an engine
is handed a ``RecordHandler`` (the worker) when it runs.
Both keep the same guarantees (RELIABILITY.md): offsets are committed only for records
whose every output the broker acknowledged (``delivery.py``), and a stop finishes the
records in hand first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from workers.core.records import Record
from workers.runtime.delivery import Sent, UndeliveredHandler

if TYPE_CHECKING:
    import mode

__all__ = [
    "Engine",
    "Headers",
    "RebalanceClock",
    "RecordHandler",
    "TopicPartitionLike",
]

Headers = list[tuple[str, bytes]]


class TopicPartitionLike(Protocol):
    """aiokafka's and Faust's ``TopicPartition`` (both named tuples)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


@dataclass
class RebalanceClock:
    """Rebalances a worker went through and the seconds it spent in them, from the moment
    its partitions were revoked to the moment it was given its new ones: the pause a
    rebalance costs this worker (``workers_rebalance_seconds_total``)."""

    count: int = 0
    seconds: float = 0.0
    _since: float | None = None

    def revoked(self) -> None:
        if self._since is None:
            self._since = time.monotonic()

    def assigned(self) -> None:
        if self._since is not None:
            self.count += 1
            self.seconds += time.monotonic() - self._since
            self._since = None


class RecordHandler(UndeliveredHandler, Protocol):
    async def handle(
        self, records: Sequence[Record], done: Callable[[Record, list[Sent]], None]
    ) -> None:
        """Process records; call ``done(record, sent)`` once its outputs are handed to the
        producer (``Engine.send``), in input order within each partition."""


class Engine(Protocol):
    @property
    def stopping(self) -> bool:
        """True from the moment a stop begins: records in hand are finished, no more taken."""

    def assignment(self) -> set[TopicPartitionLike]:
        """Input partitions assigned now (empty before the consumer runs)."""

    def highwater(self, tp: TopicPartitionLike) -> int | None:
        """The partition's high watermark as last fetched, if known."""

    def last_fetch_age_s(self) -> float | None:
        """Seconds since the broker last answered a fetch (None before the first)."""

    def waiting(self, tp: TopicPartitionLike) -> int | None:
        """Records of an assigned partition not read yet, as the client knows it (from
        its committed offset before the first record), or None when it cannot say."""

    async def send(self, topic: str, key: bytes, value: bytes, headers: Headers | None) -> Sent:
        """Hand one output to the producer; the result carries its delivery future (failed
        at once when the producer refuses it outright)."""

    def max_message_bytes(self, topic: str) -> int:
        """The largest record ``topic`` takes (its ``max.message.bytes``, read at start)."""

    def blocked(self) -> dict[tuple[str, int], str]:
        """Partitions stopped because an output could not be delivered in any form, and why."""

    @property
    def rebalances(self) -> RebalanceClock:
        """The rebalances this worker went through and the time they took it."""

    def run(
        self,
        handler: RecordHandler,
        shell: mode.Service,
        *,
        log_level: str,
        logging_config: dict[str, Any] | None = None,
    ) -> None:
        """Consume until SIGTERM/SIGINT. ``shell`` (HTTP, timers) starts before consuming
        and stops after the engine has drained and committed."""
