"""A Faust transport whose consumer takes its fetch wait from settings.

Faust 0.15 builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` hard-coded: a
partition with nothing new makes the broker hold every fetch for 1.5 s, and records
that arrive meanwhile wait for it (one hop measured ~620 ms on the embedded broker).
This module is the seam: the same consumer, built with the configured wait. Everything
else is Faust's own ``aiokafka`` driver.
"""

from __future__ import annotations

from typing import Any, ClassVar

import aiokafka
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from faust.auth import SASLCredentials, SSLCredentials
from faust.exceptions import ImproperlyConfigured
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import ConsumerT
from faust.types.auth import CredentialsT

from workers.runtime.kafka import last_fetch_age_s, tolerate_header_names
from workers.runtime.security import kafka_ssl_context
from workers.runtime.settings import Settings

__all__ = [
    "DEFAULT_FETCH_MAX_WAIT_MS",
    "Consumer",
    "ConsumerThread",
    "Transport",
    "faust_credentials",
]

#: Used when the app does not say (see ``FaustApp.fetch_max_wait_ms``).
DEFAULT_FETCH_MAX_WAIT_MS = 10


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        conf = self.app.conf
        isolation_level = "read_committed" if self.consumer.in_transaction else "read_uncommitted"
        self._assignor = RoundRobinPartitionAssignor
        if conf.broker_session_timeout > conf.broker_request_timeout:
            raise ImproperlyConfigured(
                "broker_session_timeout cannot be greater than broker_request_timeout"
            )
        fetch_wait = getattr(self.app, "fetch_max_wait_ms", DEFAULT_FETCH_MAX_WAIT_MS)
        tolerate_header_names()
        return aiokafka.AIOKafkaConsumer(
            client_id=conf.broker_client_id,
            group_id=conf.id,
            group_instance_id=conf.consumer_group_instance_id,
            bootstrap_servers=faust_aiokafka.server_list(transport.url, transport.default_port),
            partition_assignment_strategy=[self._assignor],
            enable_auto_commit=False,
            auto_offset_reset=conf.consumer_auto_offset_reset,
            max_poll_records=conf.broker_max_poll_records,
            max_poll_interval_ms=int((conf.broker_max_poll_interval or 0) * 1000.0),
            max_partition_fetch_bytes=conf.consumer_max_fetch_size,
            fetch_max_wait_ms=fetch_wait,
            request_timeout_ms=int(conf.broker_request_timeout * 1000.0),
            check_crcs=conf.broker_check_crcs,
            session_timeout_ms=int(conf.broker_session_timeout * 1000.0),
            rebalance_timeout_ms=int(conf.broker_rebalance_timeout * 1000.0),
            heartbeat_interval_ms=int(conf.broker_heartbeat_interval * 1000.0),
            isolation_level=isolation_level,
            metadata_max_age_ms=conf.consumer_metadata_max_age_ms,
            connections_max_idle_ms=conf.consumer_connections_max_idle_ms,
            **faust_aiokafka.credentials_to_aiokafka_auth(
                conf.broker_credentials, conf.ssl_context
            ),
        )

    def last_fetch_age_s(self) -> float | None:
        return last_fetch_age_s(self._consumer) if self._consumer is not None else None


class Consumer(faust_aiokafka.Consumer):
    _thread: ConsumerThread

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def last_fetch_age_s(self) -> float | None:
        return self._thread.last_fetch_age_s()


class Transport(faust_aiokafka.Transport):
    Consumer: ClassVar[type[ConsumerT]] = Consumer


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """What Faust's ``broker_credentials`` takes (its consumer and producer both use it)."""
    context = kafka_ssl_context(settings)
    protocol = settings.kafka_security_protocol
    if protocol == "SSL":
        assert context is not None
        return SSLCredentials(context)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        assert settings.kafka_sasl_password is not None  # checked by Settings
        return SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    return None
