"""Client security from settings: TLS and SASL for Kafka, TLS and an ACL user for Redis.

Pure builders, so what each client receives is unit-tested; secrets stay ``SecretStr``
in settings and are revealed only here, into the client objects (never into logs: the
credentials' ``repr`` names the user only).
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from workers.runtime.settings import Settings
from workers.state import RedisStore

__all__ = [
    "kafka_auth",
    "kafka_ssl_context",
    "rdkafka_config",
    "redis_options",
    "redis_store",
]


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A verifying TLS context for SSL and SASL_SSL (system CAs unless a CA file is set)."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
        certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
        keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
    )
    return context


def kafka_auth(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for plain aiokafka clients (admin, ``produce``, ``tail``)."""
    auth: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = kafka_ssl_context(settings)
    if context is not None:
        auth["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None
        auth |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        }
    return auth


def rdkafka_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's connection settings (the rdkafka engine's consumer and producer)."""
    s = settings
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(s.bootstrap_servers),
        "client.id": s.client_id,
        "security.protocol": s.kafka_security_protocol.lower(),
        "socket.nagle.disable": True,
    }
    for name, path in (
        ("ssl.ca.location", s.kafka_ssl_cafile),
        ("ssl.certificate.location", s.kafka_ssl_certfile),
        ("ssl.key.location", s.kafka_ssl_keyfile),
    ):
        if path is not None:
            config[name] = str(path)
    if s.kafka_security_protocol.startswith("SASL_"):
        assert s.kafka_sasl_password is not None  # checked by Settings
        config |= {
            "sasl.mechanism": s.kafka_sasl_mechanism,
            "sasl.username": s.kafka_sasl_username,
            "sasl.password": s.kafka_sasl_password.get_secret_value(),
        }
    return config


def redis_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``redis.asyncio.Redis.from_url`` beyond the URL: an ACL user
    and TLS files (TLS itself is chosen by a ``rediss://`` URL)."""
    options: dict[str, Any] = {}
    if settings.redis_username is not None:
        options["username"] = settings.redis_username
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        value = getattr(settings, f"redis_{name}")
        if value is not None:
            options[name] = str(value)
    return options


def redis_store(settings: Settings, *, wait_replicas: int = 0) -> RedisStore:
    """The state store on the worker's Redis settings (a cluster, TLS, an ACL user): the
    worker's own, and the operator commands' (``erase``, ``redrive``, ``check``)."""
    return RedisStore.from_url(
        settings.redis_url.get_secret_value(),
        limits=settings.state_limits(),
        cluster=settings.redis_cluster,
        wait_replicas=wait_replicas,
        **redis_options(settings),
    )
