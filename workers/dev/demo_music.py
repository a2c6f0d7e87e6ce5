"""The demo's music understanding: a tagger process beside the worker, the streams' tags,
and recommendation requests answered over Kafka (``python -m workers demo``)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson
from rich.console import Group
from rich.table import Table

from workers.core.records import RECOMMEND_REQUESTS, RECOMMENDATIONS
from workers.dev.client import Collector, Received, start_producer
from workers.dev.stack import Stack

__all__ = ["ask_for_recommendations", "demo_requests", "tags_table"]


def _ranked(items: object) -> str:
    return ", ".join(f"{i['tag']} {i['score']:.2f}" for i in items) or "-"  # type: ignore[attr-defined, index]


def tags_table(latest: dict[str, dict[str, object]]) -> Table:
    """Each stream's running aggregate, from its latest ``predictions.tags`` message."""
    table = Table(title="Tags (musicnn, per stream so far)", title_justify="left")
    for column in ("stream", "windows", "top genres", "top moods"):
        table.add_column(column)
    for key in sorted(latest):
        aggregate = latest[key]["aggregate"]
        table.add_row(
            key,
            str(aggregate["windows"]),  # type: ignore[index]
            _ranked(aggregate["top_genres"]),  # type: ignore[index]
            _ranked(aggregate["top_moods"]),  # type: ignore[index]
        )
    return table


async def ask_for_recommendations(
    stack: Stack, requests: Sequence[dict[str, object]], *, timeout: float = 20.0
) -> Group:
    """Publish requests to ``recommend.requests``; the answers as a table, with their
    end-to-end latency (published → answer read)."""
    collector = await Collector(stack.broker.bootstrap, (RECOMMENDATIONS,)).start()
    producer = await start_producer(stack.broker.bootstrap)
    sent: dict[bytes, float] = {}
    for body in requests:
        key = f"{body['tenant']}/{body['request_id']}".encode()
        sent[key] = time.time()
        await producer.send(RECOMMEND_REQUESTS, orjson.dumps(body), key=key)
    await producer.flush()
    answers: list[Received] = await collector.wait_for(
        lambda r: r.key in sent, len(sent), timeout=timeout
    )
    await producer.stop()
    await collector.stop()
    table = Table(title="Recommendations (recommend.requests → answers)", title_justify="left")
    for column in ("request", "strategy", "items (why)", "ms"):
        table.add_column(column)
    for reply in sorted(answers, key=lambda r: r.key or b""):
        body = reply.json()
        subject = body["subject"]
        items = "; ".join(
            f"{item['id']} ({'+'.join(item['why'])})"
            for item in body["items"]  # type: ignore[attr-defined]
        )
        table.add_row(
            f"{body['tenant']}: {subject['kind']} {subject['id']}",  # type: ignore[index]
            str(body["strategy"]),
            items or "-",
            f"{(reply.arrived - sent[reply.key or b'']) * 1000:.1f}",
        )
    missing = len(sent) - len(answers)
    note = f"{missing} request(s) unanswered after {timeout:.0f} s" if missing else ""
    return Group(table, note)


def demo_requests(tenants: Sequence[str], streams: dict[str, list[str]]) -> list[dict[str, object]]:
    """For each tenant: tracks that sound like one of its streams, a listener's next
    tracks, and what a listener never seen before gets (what is popular now)."""
    out: list[dict[str, object]] = []
    for tenant in tenants:
        base = {"tenant": tenant, "k": 3}
        if streams.get(tenant):
            out.append({**base, "request_id": f"{tenant}-similar", "stream": streams[tenant][0]})
        out.append({**base, "request_id": f"{tenant}-next", "user_id": "u3"})
        out.append({**base, "request_id": f"{tenant}-new", "user_id": "first-visit"})
    return out
