"""Outputs that fit: Kafka's per-topic size limit, and the dead letters that replace an
output the broker refused.

An output larger than its topic's ``max.message.bytes`` would be refused by the broker; the
worker knows the limits (read at start) and does not send it. Either way, a refused output
is replaced (``delivery.Settlement``): a prediction by an ``output-rejected`` dead letter
for its input, a dead letter by a copy whose value is cut to fit, with headers saying so
(``value-truncated``: the original length, ``value-sha256``: its digest).
"""

from __future__ import annotations

import hashlib

from workers.core.errors import Reason, Rejected
from workers.core.records import DEADLETTER, Record, dead_letter
from workers.runtime.delivery import Sent, message_size

__all__ = ["Message", "fitted", "replacements"]

Headers = list[tuple[str, bytes]]
Message = tuple[str, bytes, bytes, Headers | None]


def fitted(topic: str, key: bytes, value: bytes, headers: Headers, *, limit: int) -> Message:
    """A dead letter cut to fit its topic: the first bytes of its value and how to find the
    original (length and SHA-256)."""
    marks = [
        ("value-truncated", str(len(value)).encode()),
        ("value-sha256", hashlib.sha256(value).hexdigest().encode()),
    ]
    room = limit - message_size(key, b"", [*headers, *marks])
    return topic, key, value[: max(0, room)], [*headers, *marks]


def _is_dead_letter(topic: str) -> bool:
    return topic == DEADLETTER or topic.endswith(f".{DEADLETTER}")


def replacements(
    record: Record, refused: list[Sent], *, limit: int, deadletter_topic: str
) -> list[Message] | None:
    """What to send instead of outputs the broker refused for good; None if nothing can be:
    a dead letter already cut to fit was refused too."""
    instead: list[Message] = []
    predictions = [sent for sent in refused if not _is_dead_letter(sent.topic)]
    for sent in refused:
        if not _is_dead_letter(sent.topic):
            continue
        headers = list(sent.headers or [])
        if any(name == "value-truncated" for name, _ in headers):
            return None
        instead.append(fitted(sent.topic, sent.key, sent.value, headers, limit=limit))
    if predictions:
        why = "; ".join(f"{s.topic}: {s.delivery.exception()!r}" for s in predictions)
        letter = dead_letter(record, Rejected(Reason.OUTPUT_REJECTED, why))
        headers = [
            *letter.headers,
            *(("rejected-topic", s.topic.encode()) for s in predictions),
        ]
        key = letter.key.encode()
        value = letter.value if isinstance(letter.value, bytes) else b""
        if message_size(key, value, headers) <= limit:
            instead.append((deadletter_topic, key, value, headers))
        else:
            instead.append(fitted(deadletter_topic, key, value, headers, limit=limit))
    return instead
