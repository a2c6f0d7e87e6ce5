"""The time a worker spends in rebalances, as an operator reads it from /metrics."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from workers.runtime.engine import RebalanceClock
from workers.runtime.metrics import Metrics


def test_a_rebalance_counts_from_revocation_to_the_next_assignment() -> None:
    clock = RebalanceClock()
    clock.assigned()  # an assignment without a revocation before it adds nothing
    assert (clock.count, clock.seconds) == (0, 0.0)
    clock.revoked()
    time.sleep(0.02)
    clock.revoked()  # a second revocation in the same rebalance does not restart it
    clock.assigned()
    assert clock.count == 1
    assert clock.seconds >= 0.02
    registry = CollectorRegistry()
    Metrics(registry, rebalances=lambda: (clock.count, clock.seconds))
    assert registry.get_sample_value("workers_rebalances_total") == 1
    assert registry.get_sample_value("workers_rebalance_seconds_total") == clock.seconds
