"""The librdkafka engine's pure parts: its client settings, how librdkafka's errors map to
what the settlement retries or replaces, and its fetch freshness from statistics."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import KafkaError, Producer

from tests.helpers import self_signed
from workers.runtime.delivery import is_retriable
from workers.runtime.rdkafka_engine import _as_exception, _FetchClock
from workers.runtime.security import rdkafka_config
from workers.runtime.settings import Settings

PASSWORD = "pa55-w0rd-never-logged"


def test_plaintext_settings_are_what_librdkafka_takes() -> None:
    config = rdkafka_config(Settings(_env_file=None, kafka_bootstrap="a:9092, b:9092"))  # type: ignore[call-arg]
    assert config["bootstrap.servers"] == "a:9092,b:9092"
    assert config["security.protocol"] == "plaintext"
    Producer(config).flush(0)  # librdkafka validates every property at construction


def test_sasl_ssl_settings_are_what_librdkafka_takes(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    config = rdkafka_config(
        Settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_username="fleet",
            kafka_sasl_password=PASSWORD,
            kafka_ssl_cafile=cert,
        )
    )
    assert config["security.protocol"] == "sasl_ssl"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("fleet", PASSWORD)
    assert config["ssl.ca.location"] == str(cert)
    Producer(config).flush(0)


@pytest.mark.parametrize(
    ("code", "retriable"),
    [
        (KafkaError.MSG_SIZE_TOO_LARGE, False),
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, False),
        (KafkaError.TOPIC_EXCEPTION, False),
        (KafkaError._MSG_TIMED_OUT, True),
        (KafkaError.NOT_LEADER_FOR_PARTITION, True),
        (KafkaError._TRANSPORT, True),
    ],
)
def test_refusals_for_good_are_replaced_and_the_rest_sent_again(
    code: int, *, retriable: bool
) -> None:
    assert is_retriable(_as_exception(KafkaError(code))) is retriable


def test_fetch_age_follows_answered_fetches() -> None:
    clock = _FetchClock()
    assert clock.age_s() is None  # before any statistics

    def stats(fetches: int) -> str:
        return orjson.dumps({"brokers": {"b1": {"req": {"Fetch": fetches}}}}).decode()

    clock.on_stats(stats(3))
    first = clock.age_s()
    assert first is not None and first < 1.0
    time.sleep(0.05)
    clock.on_stats(stats(3))  # no fetch answered since: the age keeps growing
    stalled = clock.age_s()
    assert stalled is not None and stalled >= 0.05
    clock.on_stats(stats(4))
    fresh = clock.age_s()
    assert fresh is not None and fresh < stalled
