"""The demo's music understanding: a tagger process beside the worker, the streams' tags,
and recommendation requests answered over Kafka (``python -m workers demo``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from rich.console import Group
from rich.table import Table

from workers.core.records import RECOMMEND_REQUESTS, RECOMMENDATIONS
from workers.dev.client import Collector, Received, start_producer
from workers.dev.stack import Stack

__all__ = ["ask_for_recommendations", "demo_requests", "tags_table"]


def _ranked(items: list[dict[str, Any]]) -> str:
    return ", ".join(f"{i['tag']} {i['score']:.2f}" for i in items) or "-"


def _stems(aggregate: dict[str, Any]) -> str:
    stems = aggregate.get("stems")
    if not stems:
        return "-"
    return " / ".join(f"{stems[k]:.2f}" for k in ("vocals", "harmonic", "percussive"))


def _ai(verdict: dict[str, Any] | None) -> str:
    if not verdict:
        return "-"
    flag = {True: "FLAGGED", False: "no", None: "wait"}[verdict["flag"]]
    comb = verdict.get("evidence")
    found = f", comb {comb['spacing_hz']:.1f} Hz" if comb and verdict["flag"] else ""
    return f"{flag} ({verdict['score']:.2f} after {verdict['seconds']:.0f} s{found})"


def tags_table(latest: dict[str, dict[str, Any]], what: dict[str, str] | None = None) -> Table:
    """Each stream's running aggregate, from its latest ``predictions.tags`` message:
    tags, stems (voice / harmonic / percussive shares) and the AI-music verdict (the
    flag waits for 20 s of a stream)."""
    what = what or {}
    table = Table(title="Tags (musicnn, per stream so far)", title_justify="left")
    for column in (
        "stream",
        "what",
        "windows",
        "top genres",
        "top moods",
        "stems v / h / p",
        "AI-generated?",
    ):
        table.add_column(column)
    for key in sorted(latest):
        aggregate = latest[key]["aggregate"]
        table.add_row(
            key,
            what.get(key, "live stream"),
            str(aggregate["windows"]),
            _ranked(aggregate["top_genres"]),
            _ranked(aggregate["top_moods"]),
            _stems(aggregate),
            _ai(latest[key].get("ai_music")),
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
    note = f"{len(sent)} requests sent after the load, {len(answers)} answers read"
    if missing:
        note += f"; {missing} unanswered after {timeout:.0f} s"
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
