"""The benchmarks' listening load: their tenants and the records a population of each
sends, shared by the open-loop sweep (``latency.py``) and the backlogs (``floor.py``)."""

from __future__ import annotations

import orjson

from workers.dev.loadgen import ListeningPopulation

__all__ = ["TENANTS", "listening_payloads"]

TENANTS = ("bench-a", "bench-b", "bench-c")


def listening_payloads(n: int, run: str) -> list[tuple[bytes, bytes]]:
    """``n`` (key, value) listening records, round robin over the tenants; event ids start
    with ``run``."""
    populations = [
        ListeningPopulation(t, users=2000, seed=i).events() for i, t in enumerate(TENANTS)
    ]
    out = []
    for i in range(n):
        event = next(populations[i % len(populations)]).fields
        event["event_id"] = f"{run}-{i}"
        out.append((f"{event['tenant']}/{event['user_id']}".encode(), orjson.dumps(event)))
    return out
