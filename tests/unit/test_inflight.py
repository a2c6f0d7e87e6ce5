"""The hold on records in flight: acked once produced, pinned when interrupted."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from workers.runtime.faust_engine import InFlight


@dataclass
class FakeMessage:
    refcount: int = 1
    acked: bool = False

    def incref(self) -> None:
        self.refcount += 1


@dataclass
class FakeEvent:
    """Faust's semantics: an ack drops one reference; the last one marks it committable."""

    message: FakeMessage = field(default_factory=FakeMessage)

    def ack(self) -> bool:
        if not self.message.acked:
            self.message.refcount -= 1
            self.message.acked = self.message.refcount == 0
        return self.message.acked


def test_produced_records_are_acked_at_once() -> None:
    flight, events = InFlight(), [FakeEvent(), FakeEvent()]
    with flight.holding(events) as release:  # type: ignore[arg-type]
        assert flight.count == 2 and not flight.idle.is_set()
        release(0)
        assert events[0].message.acked and flight.count == 1
        release(1)
    assert all(e.message.acked for e in events)
    assert flight.count == 0 and flight.idle.is_set()
    events[0].ack()  # Faust's own ack when its iterator moves on: a no-op now
    assert events[0].message.refcount == 0


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_record_can_never_be_committed(interruption: type[BaseException]) -> None:
    flight, events = InFlight(), [FakeEvent(), FakeEvent(), FakeEvent()]

    def interrupted() -> None:
        with flight.holding(events) as release:  # type: ignore[arg-type]
            release(0)
            raise interruption

    with pytest.raises(interruption):
        interrupted()
    assert flight.count == 0 and flight.idle.is_set()
    for event in events:  # Faust acks every event of an iterator it closes...
        event.ack()
    # ...which commits the produced record, and not the two that were interrupted
    assert [e.message.acked for e in events] == [True, False, False]
