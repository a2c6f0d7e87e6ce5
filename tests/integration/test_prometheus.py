"""A real Prometheus server scrapes a running worker; its API shows the latency histogram."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.helpers import event_body, needs
from workers.core.records import LISTENING_EVENTS
from workers.dev.client import start_producer
from workers.dev.stack import Stack, free_port, stop_process, wait_for_port
from workers.dev.testing import WorkerProcess

ALERTS = Path(__file__).resolve().parents[2] / "deploy/prometheus/alerts.yml"


@pytest.fixture
def prometheus(worker: WorkerProcess, tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        needs(False, "prometheus", "apt-get install prometheus")
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "alerts.yml")],
        "scrape_configs": [
            {
                "job_name": "workers",
                "static_configs": [{"targets": [f"127.0.0.1:{worker.metrics_port}"]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=(tmp_path / "prometheus.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=30, process=process)
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):  # it listens before its storage is ready (503 until then)
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.2)
        yield base
    finally:
        stop_process(process)


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: dict[str, Any] = json.load(response)
    return body


def query(base: str, promql: str) -> list[dict[str, object]]:
    body = get_json(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    assert body["status"] == "success", body
    return body["data"]["result"]  # type: ignore[no-any-return]


def _finite(result: list[dict[str, object]]) -> bool:
    return bool(result) and all(math.isfinite(float(r["value"][1])) for r in result)  # type: ignore[index]


def eventually(base: str, promql: str, timeout: float = 30.0) -> list[dict[str, object]]:
    """The query's result once every value is a finite number (rates need two scrapes)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = query(base, promql)
        except urllib.error.HTTPError as exc:  # 503 while Prometheus is still starting
            if exc.code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
            continue
        if _finite(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


async def test_prometheus_scrapes_the_worker_latency_histogram(
    prometheus: str, worker: WorkerProcess, stack: Stack
) -> None:
    up = eventually(prometheus, 'up{job="workers"} == 1')
    assert up, "Prometheus never scraped the worker"
    # traffic only once scrapes run, so the counters visibly move between two scrapes
    producer = await start_producer(stack.broker.bootstrap)
    for i in range(200):
        body = event_body("acme", f"prom-u{i % 9}", f"prom-{i}")
        await producer.send(
            LISTENING_EVENTS, orjson.dumps(body), key=f"acme/prom-u{i % 9}".encode()
        )
        await asyncio.sleep(0.01)
    await producer.stop()

    buckets = eventually(prometheus, 'workers_latency_seconds_bucket{topic="listening.events"}')
    assert len(buckets) >= 10  # one series per bucket
    p99 = eventually(
        prometheus,
        "histogram_quantile(0.99, sum by (le) "
        '(rate(workers_latency_seconds_bucket{topic="listening.events"}[30s])))',
    )
    assert p99 and 0 < float(p99[0]["value"][1]) < 1.0  # type: ignore[index]
    stages = eventually(
        prometheus, 'count by (stage) (workers_stage_seconds_bucket{topic="listening.events"})'
    )
    assert {s["metric"]["stage"] for s in stages} >= {"validate", "state", "model", "publish"}  # type: ignore[index]
    models = eventually(prometheus, 'workers_model_inputs{tenant="acme"}')
    assert {m["metric"]["model"] for m in models} >= {"listening-anomaly", "popularity"}  # type: ignore[index]

    rules = (await asyncio.to_thread(get_json, f"{prometheus}/api/v1/rules"))["data"]["groups"]
    alerts = {r["name"] for g in rules for r in g["rules"]}
    assert {"WorkersLatencyOverBudget", "WorkersConsumerLag", "WorkersDeadLetterRate"} <= alerts
