"""A careless operator's settings: ``run`` refuses to start (a clear message, exit code 2)
rather than serve wrong answers, and starts once the setting is fixed or the risk accepted."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.helpers import event_body
from tests.integration.conftest import TENANTS, start_worker
from workers.core.records import ANOMALY, LISTENING_EVENTS
from workers.dev.client import Collector, start_producer
from workers.dev.stack import RedisServer, Stack, stop_process
from workers.dev.testing import WorkerProcess
from workers.runtime.settings import Settings


def refused(stack: Stack, log: Path, **env: str) -> str:
    """Start a worker that must refuse: its exit code and what it said."""
    worker = WorkerProcess({**stack.env(), "WORKERS_TENANTS": TENANTS, **env}, log=log).start()
    assert worker.process is not None
    try:
        code = worker.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        raise AssertionError(f"the worker started: {log.read_text()[-2000:]}") from None
    assert code == 2, log.read_text()[-2000:]
    return log.read_text()


@pytest.fixture(scope="module")
def evicting_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    workdir = tmp_path_factory.mktemp("lru")
    server = RedisServer(extra_args=["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"])
    server.start(workdir / "redis.log", workdir)
    yield server
    stop_process(server.process)


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"WORKERS_TENANTS": ""}, "WORKERS_TENANTS is empty"),
        (
            {"WORKERS_ROLE": "tagger", "WORKERS_TAGGER_GROUP_ID": "workers"},
            "the tagger's consumer group is the core worker's",
        ),
        (
            {"WORKERS_KAFKA_SSL_CAFILE": "/etc/ssl/certs/ca-certificates.crt"},
            "WORKERS_KAFKA_SSL_CAFILE set with WORKERS_KAFKA_SECURITY_PROTOCOL=PLAINTEXT",
        ),
        (
            {"WORKERS_KAFKA_SASL_USERNAME": "fleet", "WORKERS_KAFKA_SASL_PASSWORD": "secret"},
            "which does not authenticate",
        ),
        (
            {"WORKERS_KAFKA_PRODUCER__COMPRESSION_TYPE": "bogus"},
            "WORKERS_KAFKA_PRODUCER__COMPRESSION_TYPE: librdkafka refuses them",
        ),
        (
            {"WORKERS_KAFKA_CONSUMER__ENABLE_AUTO_COMMIT": "true"},
            "enable.auto.commit: the worker sets these itself",
        ),
    ],
    ids=[
        "no-tenants",
        "tagger-group",
        "tls-with-plaintext",
        "sasl-with-plaintext",
        "unknown-librdkafka-value",
        "owned-librdkafka-property",
    ],
)
def test_settings_that_cannot_serve_are_refused(
    stack: Stack, tmp_path: Path, env: dict[str, str], said: str
) -> None:
    text = refused(stack, tmp_path / "worker.log", **env)
    assert said in text
    assert "secret" not in text, "a refusal never shows a secret"


def test_a_redis_that_evicts_keys_is_refused_unless_the_risk_is_accepted(
    stack: Stack, evicting_redis: RedisServer, tmp_path: Path
) -> None:
    text = refused(stack, tmp_path / "refused.log", WORKERS_REDIS_URL=evicting_redis.url)
    assert "maxmemory-policy allkeys-lru" in text and "WORKERS_REDIS_ALLOW_EVICTION" in text
    worker = start_worker(
        stack,
        tmp_path / "accepted.log",
        WORKERS_REDIS_URL=evicting_redis.url,
        WORKERS_REDIS_ALLOW_EVICTION="true",
        WORKERS_GROUP_ID="evicting",
    )
    try:
        assert "may evict keys" in (tmp_path / "accepted.log").read_text()
    finally:
        worker.terminate()


async def test_librdkafka_properties_pass_through_to_the_worker(
    stack: Stack, tmp_path: Path
) -> None:
    """An operator's consumer and producer properties (a rack, a compression codec) reach
    the clients: the worker starts and answers, its outputs compressed with gzip (an lz4
    codec, which this test's aiokafka reader lacks, makes them unreadable here: they
    are compressed)."""
    worker = start_worker(
        stack,
        tmp_path / "worker.log",
        WORKERS_GROUP_ID="passthrough",
        WORKERS_KAFKA_CONSUMER__CLIENT_RACK="eu-1a",
        WORKERS_KAFKA_PRODUCER__COMPRESSION_TYPE="gzip",
        WORKERS_LOG_FORMAT="json",
    )
    collector = await Collector(stack.broker.bootstrap, [ANOMALY]).start()
    producer = await start_producer(stack.broker.bootstrap)
    try:
        body = orjson.dumps(event_body("acme", "pt-u", "pt-e"))
        await producer.send(LISTENING_EVENTS, body, key=b"acme/pt-u")
        await producer.flush()
        scored = await collector.wait_for(lambda r: r.key == b"acme/pt-u", 1)
        assert [m.json()["ref"] for m in scored] == ["pt-e"]
        # its own log lines are JSON objects (librdkafka's, "%3|...", are not Python's)
        lines = (tmp_path / "worker.log").read_text().splitlines()
        ours = [orjson.loads(line) for line in lines if line.startswith("{")]
        assert ours and all({"time", "level", "logger", "message"} <= set(o) for o in ours)
        assert not [line for line in lines if " INFO workers." in line or "[INFO]" in line]
    finally:
        worker.terminate()
        await collector.stop()
        await producer.stop()


async def test_topics_are_created_only_when_asked_and_changelogs_compact_and_expire(
    stack: Stack, tmp_path: Path
) -> None:
    """``run`` creates no topic by default; the dev stack asks it to, and a strict
    tenant's topics then appear, its verdict changelogs ``compact,delete``."""
    assert Settings(tenants=["acme"]).create_topics is False
    assert stack.env()["WORKERS_CREATE_TOPICS"] == "true"
    worker = start_worker(
        stack,
        tmp_path / "worker.log",
        WORKERS_GROUP_ID="creator",
        WORKERS_ISOLATION="strict",
        WORKERS_TENANTS="newco",
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.broker.bootstrap)
    await admin.start()
    try:
        assert {"newco.listening.events", "newco.predictions.tracks"} <= set(
            await admin.list_topics()
        )
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, "newco.predictions.accounts")]
        )
        entries = {e[0]: e[1] for e in described[0].resources[0][4]}
        assert entries["cleanup.policy"] == "compact,delete"
    finally:
        await admin.close()
        worker.terminate()


def test_check_says_what_run_will_need_and_what_is_missing(stack: Stack) -> None:
    """``check`` against the dev stack passes; a strict tenant whose topics nobody created
    (and which the worker may not create) fails on them, exit code 1."""

    def check(**env: str) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "-m", "workers", "check"],
            env={**os.environ, **stack.env(), "WORKERS_TENANTS": TENANTS, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr

    code, out = check()
    assert code == 0, out
    for what in ("settings", "redis", "broker", "topics", "output sizes"):
        assert f"ok    {what}: " in out, out
    code, out = check(
        WORKERS_ISOLATION="strict", WORKERS_TENANTS="later", WORKERS_CREATE_TOPICS="false"
    )
    assert code == 1, out
    assert "FAIL  topics: missing: later.audio.chunks" in out
    code, out = check(WORKERS_TENANTS="")
    assert code == 1 and "FAIL  settings: WORKERS_TENANTS is empty" in out, out
