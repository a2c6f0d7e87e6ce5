"""Which dead letters ``redrive`` chooses, and the headers their copies carry."""

from __future__ import annotations

from workers.core.errors import Reason, Rejected
from workers.core.records import Record, dead_letter
from workers.runtime.redrive import Wanted, restored


def letter_headers(tenant: str | None = "acme") -> dict[str, bytes]:
    record = Record("audio.chunks", 2, 40, b"acme/s", b"pcm", (("tenant", b"acme"), ("seq", b"4")))
    letter = dead_letter(record, Rejected(Reason.UNKNOWN_TENANT, "no"), tenant=tenant)
    return dict(letter.headers)


def test_a_reason_a_tenant_and_a_time_span_choose_the_letters() -> None:
    headers = letter_headers()
    assert Wanted("unknown-tenant").matches(headers, b"acme/s", 1_000)
    assert not Wanted("bad-headers").matches(headers, b"acme/s", 1_000)
    assert Wanted("unknown-tenant", tenant="acme").matches(headers, b"acme/s", 1_000)
    assert not Wanted("unknown-tenant", tenant="beats").matches(headers, b"acme/s", 1_000)
    # no tenant header (a tenant the fleet does not serve): the key's tenant
    assert Wanted("unknown-tenant", tenant="acme").matches(letter_headers(None), b"acme/s", 1)
    span = Wanted("unknown-tenant", since_ms=1_000, until_ms=2_000)
    assert [span.matches(headers, None, t) for t in (999, 1_000, 2_000, 2_001)] == [
        False,
        True,
        True,
        False,
    ]


def test_a_copy_carries_the_original_headers_in_order_and_where_it_came_from() -> None:
    headers = list(letter_headers().items())
    assert restored(headers, "events.deadletter:1:7") == [
        ("tenant", b"acme"),
        ("seq", b"4"),
        ("redriven-from", b"events.deadletter:1:7"),
    ]
