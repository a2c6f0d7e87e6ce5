"""What each client receives from the security settings, and that secrets stay secret."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from tests.helpers import self_signed
from workers.runtime.faust_engine import create_app
from workers.runtime.faust_transport import faust_credentials
from workers.runtime.security import kafka_auth, redis_options
from workers.runtime.settings import Settings

PASSWORD = "pa55-w0rd-never-logged"


def test_plaintext_by_default() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert faust_credentials(settings) is None
    assert kafka_auth(settings) == {"security_protocol": "PLAINTEXT"}
    assert redis_options(settings) == {}


async def test_sasl_ssl_scram(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="fleet",
        kafka_sasl_password=PASSWORD,
        kafka_ssl_cafile=cert,
    )
    credentials = faust_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    # what Faust's consumer and producer hand to aiokafka equals what our own clients get
    faust_view = dict(credentials_to_aiokafka_auth(credentials))
    ours = kafka_auth(settings)
    assert faust_view.pop("ssl_context").verify_mode == ssl.CERT_REQUIRED
    assert ours.pop("ssl_context").check_hostname
    assert (
        faust_view
        == ours
        == {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "fleet",
            "sasl_plain_password": PASSWORD,
        }
    )
    # aiokafka accepts the combination (its constructor validates it)
    AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", **kafka_auth(settings))
    assert create_app(settings).conf.broker_credentials is not None


def test_tls_only_and_sasl_plaintext() -> None:
    tls = Settings(kafka_security_protocol="SSL")
    assert isinstance(faust_credentials(tls), SSLCredentials)
    assert kafka_auth(tls)["security_protocol"] == "SSL"
    sasl = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="fleet",
        kafka_sasl_password=PASSWORD,
    )
    auth = kafka_auth(sasl)
    assert "ssl_context" not in auth and auth["sasl_mechanism"] == "SCRAM-SHA-256"


def test_sasl_without_a_user_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="SASL_PASSWORD"):
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="fleet")


def test_redis_acl_user_and_tls_files(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    settings = Settings(
        redis_url="rediss://redis:6380/0",
        redis_username="fleet-acme",
        redis_password=PASSWORD,
        redis_ssl_ca_certs=cert,
        redis_ssl_certfile=cert,
        redis_ssl_keyfile=key,
    )
    assert redis_options(settings) == {
        "username": "fleet-acme",
        "password": PASSWORD,
        "ssl_ca_certs": str(cert),
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(key),
    }


def test_secrets_never_show(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(
        redis_url=f"redis://fleet:{PASSWORD}@redis:6379/0",
        redis_password=PASSWORD,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="fleet",
        kafka_sasl_password=PASSWORD,
        audit_key=PASSWORD,
    )
    # each secret was taken, not ignored as an unknown setting
    assert settings.audit_key is not None and settings.audit_key.get_secret_value() == PASSWORD
    assert settings.kafka_sasl_password is not None
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("workers").info("settings %s %r", settings, settings)
        logging.getLogger("workers").info("credentials %r", faust_credentials(settings))
    shown = [repr(settings), str(settings), settings.model_dump_json(), caplog.text]
    assert all(PASSWORD not in text for text in shown)
