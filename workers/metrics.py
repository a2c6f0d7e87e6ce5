"""Every Prometheus metric of the worker, defined in one place, on a registry you pass."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Seconds; fine below the 10 ms budget, coarse above it.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.records_in = Counter(
            "workers_records_in", "Records received, per input topic.", ["topic"], registry=r
        )
        self.records_processed = Counter(
            "workers_records_processed",
            "Input records finished, per topic and outcome (ok or deadletter).",
            ["topic", "outcome"],
            registry=r,
        )
        self.records_out = Counter(
            "workers_records_out",
            "Records handed to the producer, per output topic.",
            ["topic"],
            registry=r,
        )
        self.deadletters = Counter(
            "workers_deadletters",
            "Dead letters, per source topic and reason code.",
            ["source_topic", "reason"],
            registry=r,
        )
        self.anomalies = Counter(
            "workers_anomalies", "Inputs flagged anomalous, per kind.", ["kind"], registry=r
        )
        self.stage_seconds = Histogram(
            "workers_stage_seconds",
            "In-worker time per processing stage.",
            ["topic", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.latency_seconds = Histogram(
            "workers_latency_seconds",
            "In-worker time from receiving a record to handing its outputs to the producer.",
            ["topic"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.over_budget = Counter(
            "workers_over_budget",
            "Records whose in-worker latency exceeded the budget.",
            ["topic"],
            registry=r,
        )
        self.ready = Gauge("workers_ready", "1 while the worker is consuming.", registry=r)
        self.assigned_partitions = Gauge(
            "workers_assigned_partitions", "Input partitions assigned to this worker.", registry=r
        )
        self.models_live = Gauge(
            "workers_models_live", "Per-tenant models held in memory.", registry=r
        )
        self.model_checkpoints = Counter(
            "workers_model_checkpoints", "Model snapshots written to the state store.", registry=r
        )
        self.model_restores = Gauge(
            "workers_model_restores",
            "Models restored from snapshots since start (not created fresh).",
            registry=r,
        )
        self.state_errors = Counter(
            "workers_state_errors",
            "State store failures (each retried with backoff, never dropped).",
            ["operation"],
            registry=r,
        )
