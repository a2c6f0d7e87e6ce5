"""A careless operator's settings: ``run`` refuses to start (a clear message, exit code 2)
rather than serve wrong answers, and starts once the setting is fixed or the risk accepted."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import TENANTS, start_worker
from workers.dev.stack import RedisServer, Stack, stop_process
from workers.dev.testing import WorkerProcess


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
    ],
    ids=["no-tenants", "tagger-group", "tls-with-plaintext", "sasl-with-plaintext"],
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
