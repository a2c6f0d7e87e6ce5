"""Writes deploy/grafana/dashboards/workers.json (run it after changing the panels below)."""

from __future__ import annotations

import json
from pathlib import Path

PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    # (title, unit, [(legend, PromQL)])
    (
        "Records in per second",
        "ops",
        [("{{topic}}", "sum by (topic) (rate(workers_records_in_total[1m]))")],
    ),
    (
        "Outputs per second",
        "ops",
        [("{{topic}}", "sum by (topic) (rate(workers_records_out_total[1m]))")],
    ),
    (
        "In-worker latency p50 / p99 (budget 10 ms)",
        "s",
        [
            (
                "p50 {{topic}}",
                "histogram_quantile(0.5, sum by (le, topic) (rate(workers_latency_seconds_bucket[1m])))",
            ),
            (
                "p99 {{topic}}",
                "histogram_quantile(0.99, sum by (le, topic) (rate(workers_latency_seconds_bucket[1m])))",
            ),
        ],
    ),
    (
        "Latency p99 per stage",
        "s",
        [
            (
                "{{stage}}",
                'histogram_quantile(0.99, sum by (le, stage) (rate(workers_stage_seconds_bucket{topic=~"$topic"}[1m])))',
            )
        ],
    ),
    (
        "Share of records over budget",
        "percentunit",
        [
            (
                "{{topic}}",
                "sum by (topic) (rate(workers_over_budget_total[5m])) / sum by (topic) (rate(workers_records_processed_total[5m]))",
            )
        ],
    ),
    ("Consumer lag (records)", "short", [("{{topic}}", "sum by (topic) (workers_consumer_lag)")]),
    (
        "Anomalies per second",
        "ops",
        [("{{kind}}", "sum by (kind) (rate(workers_anomalies_total[5m]))")],
    ),
    (
        "Dead letters per second, by reason",
        "ops",
        [("{{reason}}", "sum by (reason) (rate(workers_deadletters_total[5m]))")],
    ),
    (
        "Redis retries per second",
        "ops",
        [("{{operation}}", "sum by (operation) (rate(workers_state_errors_total[5m]))")],
    ),
    (
        "Tenant $tenant: alarms per second by model",
        "ops",
        [("{{model}}", 'max by (model) (deriv(workers_model_alarms{tenant=~"$tenant"}[5m]))')],
    ),
    (
        "Tenant $tenant: adaptive thresholds",
        "short",
        [("{{model}}", 'max by (model) (workers_model_threshold{tenant=~"$tenant"})')],
    ),
    (
        "Tenant $tenant: popularity MAE, model vs naive",
        "short",
        [("{{forecast}}", 'avg by (forecast) (workers_model_mae{tenant=~"$tenant"})')],
    ),
    (
        "Partitions stalled (records waiting, not moving) / blocked",
        "s",
        [
            (
                "{{topic}}[{{partition}}]",
                "max by (topic, partition) (workers_partition_stalled_seconds)",
            ),
            ("blocked", "sum(workers_partitions_blocked)"),
        ],
    ),
    (
        "Late and early events",
        "short",
        [
            ("late", "sum(rate(workers_late_events_total[5m]))"),
            ("early", "sum(rate(workers_early_events_total[5m]))"),
        ],
    ),
    (
        "Workers ready / partitions assigned",
        "short",
        [("ready", "sum(workers_ready)"), ("partitions", "sum(workers_assigned_partitions)")],
    ),
    (
        "Time in rebalances (without partitions), per worker",
        "s",
        [("{{instance}}", "increase(workers_rebalance_seconds_total[15m])")],
    ),
    (
        "Records per batch (adaptive: 1 when idle, up to WORKERS_BATCH_MAX loaded), p50 / p99",
        "short",
        [
            (
                "p50 {{topic}}",
                "histogram_quantile(0.5, sum by (le, topic) (rate(workers_batch_records_bucket[5m])))",
            ),
            (
                "p99 {{topic}}",
                "histogram_quantile(0.99, sum by (le, topic) (rate(workers_batch_records_bucket[5m])))",
            ),
        ],
    ),
]


def expressions() -> list[str]:
    return [expr for _, _, targets in PANELS for _, expr in targets]


def dashboard() -> dict[str, object]:
    panels = []
    for i, (title, unit, targets) in enumerate(PANELS):
        panels.append(
            {
                "id": i + 1,
                "type": "timeseries",
                "title": title,
                "datasource": {"type": "prometheus", "uid": "prometheus"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {
                        "refId": chr(65 + j),
                        "expr": expr,
                        "legendFormat": legend,
                        "datasource": {"type": "prometheus", "uid": "prometheus"},
                    }
                    for j, (legend, expr) in enumerate(targets)
                ],
            }
        )

    def variable(name: str, query: str) -> dict[str, object]:
        return {
            "name": name,
            "type": "query",
            "includeAll": True,
            "multi": True,
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "query": {"query": query, "refId": name},
            "refresh": 2,
            "current": {"text": "All", "value": "$__all"},
        }

    return {
        "uid": "workers-overview",
        "title": "Workers: streaming worker overview",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "tags": ["workers", "kafka", "audio"],
        "templating": {
            "list": [
                variable("tenant", "label_values(workers_model_inputs, tenant)"),
                variable("topic", "label_values(workers_records_in_total, topic)"),
            ]
        },
        "panels": panels,
    }


if __name__ == "__main__":
    path = Path(__file__).resolve().parent.parent / "deploy/grafana/dashboards/workers.json"
    path.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"wrote {path}")
