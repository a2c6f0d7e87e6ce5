"""Every Prometheus metric of the worker, defined in one place, on a registry you pass."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from workers.core.models.protocol import ModelQuality

__all__ = [
    "LATENCY_BUCKETS",
    "GcCollector",
    "LagCollector",
    "Metrics",
    "ModelCollector",
    "RebalanceCollector",
]

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
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        models: ModelQualities | None = None,
        lags: PartitionLags | None = None,
        stalls: PartitionStalls | None = None,
        blocked: BlockedPartitions | None = None,
        rebalances: Rebalances | None = None,
        build: Mapping[str, str] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # what this process is, to join on: the tagger and the core worker apart
        self.build_info = Gauge(
            "workers_build_info",
            "1, labelled with this process's version, role, engine and consumer group.",
            ["version", "role", "engine", "group"],
            registry=r,
        )
        if build is not None:
            self.build_info.labels(**build).set(1)
        ProcessCollector(namespace="workers", registry=r)  # CPU, memory, open files
        r.register(GcCollector())
        self.records_in = Counter(
            "workers_records_in", "Records received, per input topic.", ["topic"], registry=r
        )
        self.records_processed = Counter(
            "workers_records_processed",
            "Input records finished, per topic and outcome (ok, deadletter, or ignored: the "
            "tagger leaves a record the core worker dead-letters).",
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
        self.tenant_records = Counter(
            "workers_tenant_records",
            "Input records finished, per tenant (those served; 'other' for any else), topic "
            "and outcome (ok, deadletter, ignored).",
            ["tenant", "topic", "outcome"],
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
        self.batch_records = Histogram(
            "workers_batch_records",
            "Records per batch a lane processed: one when idle, up to WORKERS_BATCH_MAX under "
            "load (batches are what arrived while the lane was busy; no timer fills them).",
            ["topic"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
            registry=r,
        )
        self.record_age = Histogram(
            "workers_record_age_seconds",
            "From a record's Kafka timestamp (its producer's clock) to the worker receiving it: "
            "time in the broker and the consumer's fetch path.",
            ["topic"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tenant_latency_seconds = Histogram(
            "workers_tenant_latency_seconds",
            "In-worker latency per tenant (labels bounded by the tenant allow-list).",
            ["tenant", "topic"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0),
            registry=r,
        )
        self.degraded = Gauge(
            "workers_degraded",
            "1 while the overload policy is active (lag past its threshold).",
            registry=r,
        )
        self.catalogue_refused = Counter(
            "workers_catalogue_refused",
            "Streams tagged whose embedding the tenant's catalogue did not keep: a new item "
            "past the tenant's quota of new ids (its tags were published).",
            ["tenant"],
            registry=r,
        )
        self.behind = Gauge(
            "workers_input_behind_seconds",
            "How far behind its input the worker is: over its partitions with records "
            "waiting, the age of the record it last processed (0 when it keeps up).",
            registry=r,
        )
        self.degraded_records = Counter(
            "workers_degraded_records",
            "Records processed in degraded mode (the sample-rate check skipped; a tagger "
            "tags fewer windows). Models learn every input regardless.",
            ["topic"],
            registry=r,
        )
        self.over_budget = Counter(
            "workers_over_budget",
            "Records whose in-worker latency exceeded the budget.",
            ["topic"],
            registry=r,
        )
        self.late_events = Counter(
            "workers_late_events",
            "Events later than the lateness bound (WORKERS_ALLOWED_LATENESS_S): counted for "
            "the listener, kept out of track windows and first-seen times.",
            ["topic"],
            registry=r,
        )
        self.early_events = Counter(
            "workers_early_events",
            "Events further ahead of the worker's clock than WORKERS_CLOCK_SKEW_S: counted in "
            "their own window, which they cannot open.",
            ["topic"],
            registry=r,
        )
        self.ready = Gauge("workers_ready", "1 while the worker is consuming.", registry=r)
        self.assigned_partitions = Gauge(
            "workers_assigned_partitions", "Input partitions assigned to this worker.", registry=r
        )
        self.state_errors = Counter(
            "workers_state_errors",
            "State store failures (each retried with backoff, never dropped).",
            ["operation"],
            registry=r,
        )
        if models is not None:
            r.register(ModelCollector(models))
        self.outputs_refused = Counter(
            "workers_outputs_refused",
            "Outputs the broker refused for good (too large for the topic, not authorised), "
            "each replaced by a dead letter that fits.",
            ["topic"],
            registry=r,
        )
        if lags is not None:
            r.register(LagCollector(lags, stalls or (lambda: ()), blocked or (lambda: {})))
        if rebalances is not None:
            r.register(RebalanceCollector(rebalances))
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """``metric.labels(*labels)``, bound once: ``labels`` costs ~1 µs a call (measured)
        and the hot path asks for the same dozen children on every record. Only for labels
        of bounded cardinality (topics, stages, reasons, allow-listed tenants)."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found


ModelQualities = Callable[[], Iterable[tuple[str, str, ModelQuality]]]
PartitionLags = Callable[[], Iterable[tuple[str, int, int]]]
PartitionStalls = Callable[[], Iterable[tuple[str, int, float]]]
BlockedPartitions = Callable[[], Mapping[tuple[str, int], str]]
#: rebalances so far and the seconds they took (revocation to the next assignment)
Rebalances = Callable[[], tuple[int, float]]


class RebalanceCollector(Collector):
    """The rebalances this worker went through (its first join included) and the seconds it
    spent in them without partitions: the pause a rebalance costs, per worker."""

    def __init__(self, rebalances: Rebalances) -> None:
        self._rebalances = rebalances

    def collect(self) -> Iterator[CounterMetricFamily]:
        count, seconds = self._rebalances()
        yield CounterMetricFamily(
            "workers_rebalances", "Rebalances this worker went through.", value=count
        )
        yield CounterMetricFamily(
            "workers_rebalance_seconds",
            "Seconds spent in rebalances, from revocation to the next assignment.",
            value=seconds,
        )


class LagCollector(Collector):
    """Per input partition, computed at scrape time: consumer lag, how long a partition with
    records waiting has not moved, and partitions stopped on an undeliverable output."""

    def __init__(
        self, lags: PartitionLags, stalls: PartitionStalls, blocked: BlockedPartitions
    ) -> None:
        self._lags = lags
        self._stalls = stalls
        self._blocked = blocked

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["topic", "partition"]
        lag = GaugeMetricFamily(
            "workers_consumer_lag",
            "Records in an assigned input partition not processed yet (highwater - position).",
            labels=labels,
        )
        for topic, partition, waiting in self._lags():
            lag.add_metric([topic, str(partition)], waiting)
        stalled = GaugeMetricFamily(
            "workers_partition_stalled_seconds",
            "Seconds since a partition with records waiting last finished one (0: moving).",
            labels=labels,
        )
        for topic, partition, seconds in self._stalls():
            stalled.add_metric([topic, str(partition)], seconds)
        blocked = GaugeMetricFamily(
            "workers_partitions_blocked",
            "Partitions stopped because an output could not be delivered in any form "
            "(nothing past it is committed; the log says why).",
        )
        blocked.add_metric([], len(self._blocked()))
        yield from (lag, stalled, blocked)


class ModelCollector(Collector):
    """The tenants' store-kept models, as the latest event this worker saw left them.

    Labels are ``tenant`` and ``model`` (kind): bounded by the tenant allow-list
    (``WORKERS_TENANTS``) times two kinds. The models are one per tenant, in the state
    store, so every worker reports the same figures: aggregate with ``max``, not ``sum``.
    Audio streams each carry their own model; their alarms are in ``workers_anomalies``.
    """

    def __init__(self, models: ModelQualities) -> None:
        self._models = models

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["tenant", "model"]
        seen = GaugeMetricFamily(
            "workers_model_inputs", "Inputs (or labels) a tenant's model has learnt.", labels=labels
        )
        alarms = GaugeMetricFamily(
            "workers_model_alarms", "Inputs a tenant's detector flagged anomalous.", labels=labels
        )
        threshold = GaugeMetricFamily(
            "workers_model_threshold",
            "A detector's current adaptive alarm threshold (0..1).",
            labels=labels,
        )
        warming = GaugeMetricFamily(
            "workers_model_warming_up",
            "1 while a detector is in its warm-up (no alarms).",
            labels=labels,
        )
        mae = GaugeMetricFamily(
            "workers_model_mae",
            "Mean absolute error of the popularity forecast over its last 1,000 labels "
            "(plays per window), and of the naive and seasonal naive forecasts for comparison.",
            labels=[*labels, "forecast"],
        )
        for tenant, kind, quality in self._models():
            key = [tenant, kind]
            seen.add_metric(key, quality.inputs)
            if quality.alarms is not None:
                alarms.add_metric(key, quality.alarms)
            if quality.threshold is not None:
                threshold.add_metric(key, quality.threshold)
            if quality.warming_up is not None:
                warming.add_metric(key, float(quality.warming_up))
            if quality.mae is not None and quality.naive_mae is not None:
                mae.add_metric([*key, "model"], quality.mae)
                mae.add_metric([*key, "naive"], quality.naive_mae)
            if quality.mae is not None and quality.seasonal_mae is not None:
                mae.add_metric([*key, "seasonal"], quality.seasonal_mae)
        yield from (seen, alarms, threshold, warming, mae)


class GcCollector(Collector):
    """Python's garbage collector per generation, under the ``workers_`` prefix (the
    client library's own collector has none)."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        collections = CounterMetricFamily(
            "workers_python_gc_collections",
            "Garbage collections, per generation.",
            labels=["generation"],
        )
        collected = CounterMetricFamily(
            "workers_python_gc_objects_collected",
            "Objects the garbage collector freed, per generation.",
            labels=["generation"],
        )
        for generation, stats in enumerate(gc.get_stats()):
            collections.add_metric([str(generation)], stats["collections"])
            collected.add_metric([str(generation)], stats["collected"])
        yield collections
        yield collected
