"""What makes an offset committable: every output acknowledged, refused ones replaced."""

from __future__ import annotations

import asyncio
import hashlib

from aiokafka.errors import (
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
)

from tests.helpers import event_record
from workers.core.records import DEADLETTER, Record
from workers.runtime.delivery import OutputTooLarge, Sent, Settlement, message_size
from workers.runtime.publishing import replacements

Message = tuple[str, bytes, bytes, list[tuple[str, bytes]] | None]


def sent(topic: str, outcome: object = "ok", value: bytes = b"{}") -> Sent:
    delivery = asyncio.get_running_loop().create_future()
    if isinstance(outcome, BaseException):
        delivery.set_exception(outcome)
    elif outcome == "ok":
        delivery.set_result(None)
    return Sent(topic, b"acme/u1", value, None, delivery)


class Handler:
    def __init__(self, answer: list[Message] | None) -> None:
        self.answer = answer
        self.asked: list[tuple[Record, list[Sent]]] = []

    def undelivered(self, record: Record, refused: list[Sent]) -> list[Message] | None:
        self.asked.append((record, refused))
        return self.answer


def settlement(handler: Handler, resent: list[Message]) -> tuple[Settlement, list[str]]:
    paused: list[str] = []

    async def send(topic: str, key: bytes, value: bytes, headers: object) -> Sent:
        resent.append((topic, key, value, headers))  # type: ignore[arg-type]
        return sent(topic)

    return Settlement(send=send, handler=handler, pause=lambda tp: paused.append(tp[0])), paused


async def test_offsets_advance_only_over_acknowledged_outputs() -> None:
    resent: list[Message] = []
    done, _ = settlement(Handler([]), resent)
    records = [event_record("acme", "u1", f"e{i}", offset=i) for i in range(3)]
    pending = sent("predictions.anomaly", outcome="pending")
    done.add(records[0], [sent("predictions.anomaly"), sent("predictions.popularity")])
    done.add(records[1], [pending])
    done.add(records[2], [sent("predictions.anomaly")])
    assert await done.committable() == {("listening.events", 0): 1}
    pending.delivery.set_result(None)
    assert await done.committable() == {("listening.events", 0): 3}
    assert not done.waiting()


async def test_a_retriable_failure_is_sent_again_and_counted_once_acknowledged() -> None:
    resent: list[Message] = []
    done, _ = settlement(Handler([]), resent)
    record = event_record("acme", "u1", "e0", offset=7)
    done.add(record, [sent("predictions.anomaly", KafkaTimeoutError())])
    assert await done.committable() == {}
    assert [m[0] for m in resent] == ["predictions.anomaly"]
    assert await done.committable() == {("listening.events", 0): 8}


async def test_a_refused_output_is_replaced_by_what_the_handler_says() -> None:
    resent: list[Message] = []
    letter = (DEADLETTER, b"acme/u1", b"{}", [("error", b"output-rejected")])
    handler = Handler([letter])
    done, _ = settlement(handler, resent)
    record = event_record("acme", "u1", "e0", offset=3)
    done.add(
        record,
        [sent("predictions.anomaly"), sent("predictions.popularity", MessageSizeTooLargeError())],
    )
    assert await done.committable() == {}
    assert handler.asked[0][0] is record and resent == [letter]
    assert await done.committable() == {("listening.events", 0): 4}


async def test_when_nothing_can_be_delivered_the_partition_stops_there() -> None:
    resent: list[Message] = []
    done, paused = settlement(Handler(None), resent)
    first, second = (event_record("acme", "u1", f"e{i}", offset=i) for i in range(2))
    done.add(first, [sent(DEADLETTER, TopicAuthorizationFailedError())])
    done.add(second, [sent("predictions.anomaly")])
    assert await done.committable() == {}
    assert await done.committable() == {}, "never past the lost output"
    assert paused == ["listening.events"]
    assert ("listening.events", 0) in done.blocked
    assert "TopicAuthorizationFailed" in done.blocked[("listening.events", 0)]


async def test_replacements_for_a_prediction_and_for_a_dead_letter() -> None:
    record = event_record("acme", "u1", "e0", offset=3)
    too_big = sent("predictions.popularity", OutputTooLarge("740 bytes, topic allows 700"))
    (letter,) = replacements(record, [too_big], limit=1_000_000, deadletter_topic=DEADLETTER)  # type: ignore[misc]
    topic, key, value, headers = letter
    named = dict(headers or [])
    assert (topic, key, value) == (DEADLETTER, b"acme/u1", record.value)
    assert named["error"] == b"output-rejected"
    assert named["rejected-topic"] == b"predictions.popularity"

    original = b"x" * 50_000
    big_letter = Sent(DEADLETTER, b"acme/s", original, [("error", b"oversized")], too_big.delivery)
    (cut,) = replacements(  # type: ignore[misc]
        record, [big_letter], limit=10_000, deadletter_topic=DEADLETTER
    )
    named = dict(cut[3] or [])
    assert named["value-truncated"] == b"50000"
    assert named["value-sha256"] == hashlib.sha256(original).hexdigest().encode()
    assert message_size(cut[1], cut[2], cut[3]) <= 10_000 and original.startswith(cut[2])
    # a dead letter already cut that is refused again: nothing more can be done
    again = Sent(DEADLETTER, cut[1], cut[2], cut[3], too_big.delivery)
    assert replacements(record, [again], limit=10_000, deadletter_topic=DEADLETTER) is None
