"""One settings object, built once at start-up from the environment (and `.env`)."""

from __future__ import annotations

import importlib.metadata
import os
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from workers.core.records import AUDIO_CHUNKS, INPUT_TOPICS, topic_kind, topic_name, topic_owner
from workers.core.tenants import validate_tenant
from workers.state.protocol import StateLimits

__all__ = ["OWNED_KAFKA_PROPERTIES", "VERSION", "Settings"]


def _version() -> str:
    try:
        return importlib.metadata.version("music-stream-workers")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "0+unknown"


#: this installation's version (the package's metadata)
VERSION = _version()

#: librdkafka properties the worker owns: its commits follow the broker's acknowledgements
#: (at least once, exactly-once effect on state), and its group and brokers have settings
OWNED_KAFKA_PROPERTIES = {
    "consumer": frozenset(
        {
            "bootstrap.servers",
            "group.id",
            "group.instance.id",
            "enable.auto.commit",
            "enable.auto.offset.store",
            "auto.offset.reset",
        }
    ),
    "producer": frozenset({"bootstrap.servers", "acks", "enable.idempotence"}),
}


class Settings(BaseSettings):
    """Worker settings. Contract variables first; the rest are tuning knobs.

    >>> Settings(tenants="acme,beats").tenants
    ('acme', 'beats')
    """

    model_config = SettingsConfigDict(
        env_prefix="WORKERS_",
        env_file=".env",
        frozen=True,
        extra="ignore",
        env_nested_delimiter="__",
    )

    # --- the contract ---
    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    tenants: Annotated[tuple[str, ...], NoDecode] = ()
    metrics_port: int = Field(default=9108, ge=0, le=65535)

    # --- extensions (documented in README "Settings") ---
    group_id: str = "workers"
    #: Static group membership (Kafka's group.instance.id, e.g. the pod's name): a worker
    #: restarted under the same id within the session timeout gets its partitions back at
    #: once, without a rebalance of the others. Unset: dynamic membership.
    group_instance_id: str | None = None
    #: "rdkafka": librdkafka (confluent-kafka), its consumer in a thread feeding the lanes
    #: (runtime/rdkafka_engine.py); "direct": an aiokafka consumer loop in the event loop
    #: (runtime/direct.py); "faust": Faust agents. Same guarantees; rdkafka costs the least
    #: CPU per record (BENCHMARKS.md compares the three).
    engine: Literal["rdkafka", "direct", "faust"] = "rdkafka"
    #: Consumer fetch wait: Faust hard-codes 1500 ms, which costs a whole hop of latency.
    fetch_max_wait_ms: int = Field(default=10, ge=0, le=5000)
    producer_linger_ms: int = Field(default=1, ge=0, le=1000)
    #: An idempotent producer (enable.idempotence): a retry cannot reorder a key's records,
    #: nor leave a changelog topic (predictions.accounts) ending on a stale verdict. Needs
    #: the broker's InitProducerId (every Apache Kafka since 0.11).
    producer_idempotence: bool = True
    rebalance_timeout_s: float = Field(default=10.0, gt=0)
    session_timeout_s: float = Field(default=10.0, gt=0)
    commit_interval_s: float = Field(default=1.0, gt=0)
    #: Partitions for topics the worker or `stack` creates when they are missing.
    topic_partitions: int = Field(default=4, ge=1)
    #: Create missing topics at start (the dev `stack` and `demo` do; a production fleet's
    #: topics are the platform team's, created with their replication and retention).
    create_topics: bool = False
    #: Model sample rate every audio stream is resampled to.
    model_sample_rate: int = Field(default=22050, ge=16000, le=48000)
    #: Popularity window, in event time.
    popularity_window_s: int = Field(default=3600, ge=60)
    #: Listening events are processed in micro-batches: up to batch_max at once, an event
    #: waiting at most batch_wait_ms for others (one Redis round trip per batch).
    batch_max: int = Field(default=256, ge=1, le=10_000)
    batch_wait_ms: float = Field(default=1.0, ge=0.0, le=100.0)
    #: Overload policy (runtime/overload.py): degrade when this far behind the input
    #: (seconds, by the records' timestamps), recover below the second figure. Degraded,
    #: the worker skips the sample-rate check; the models learn every input regardless.
    overload_lag_enter_s: float = Field(default=30.0, gt=0)
    overload_lag_leave_s: float = Field(default=5.0, ge=0)
    #: Share of chunks each audio stream's model may alarm on (its adaptive threshold is the
    #: 1 - rate quantile of its recent scores). Listeners are judged by tail p-values
    #: instead (docs/models.md): their alarms need no rate.
    alarm_rate_audio: float = Field(default=0.02, gt=0, lt=0.5)
    #: /ready turns 503 when no fetch for any assigned partition was answered for this long
    #: (the broker is unreachable: partitions may still look assigned, but nothing flows).
    ready_fetch_stale_s: float = Field(default=10.0, gt=0)
    #: On SIGTERM, how long the worker may take to finish the records in hand.
    drain_timeout_s: float = Field(default=10.0, gt=0)
    #: Per-event latency budget, used by the over-budget counter.
    budget_ms: float = Field(default=10.0, gt=0)

    # --- music understanding (docs/contract.md "Music understanding") ---
    #: "core": features, anomaly scores, the listening models and recommendations. "tagger":
    #: genre and mood tags and audio embeddings (`run --role tagger`), in its own consumer
    #: group on audio.chunks, so its CPU never delays the core's 10 ms path.
    role: Literal["core", "tagger"] = "core"
    #: the tagger's consumer group (default: `{group_id}-tagger`)
    tagger_group_id: str | None = None
    #: musicnn's weights trained on the Million Song Dataset (genres, moods, eras) or on
    #: MagnaTagATune (instruments, voice, tempo)
    tagger_model: Literal["MSD_musicnn", "MTT_musicnn"] = "MSD_musicnn"
    #: tag one 3 s patch of every N per stream (1: all; the others are framed and skipped)
    tagger_every: int = Field(default=1, ge=1, le=10_000)
    #: a TensorFlow checkpoint folder to read instead of the weights shipped in the package
    tagger_weights_dir: Path | None = None
    #: BLAS threads of a tagger process (scale by processes; 1 keeps one core each)
    tagger_threads: int = Field(default=1, ge=1, le=64)
    #: the tagger's CPU priority below the core worker's on a shared host (os.nice)
    tagger_nice: int = Field(default=10, ge=0, le=19)
    #: the tagger's fetches: tags are not in the 10 ms budget, so it asks the broker for
    #: fewer, larger fetches (each fetch answered costs the broker CPU the core worker
    #: needs: measured, BENCHMARKS.md "What music understanding costs the rest")
    tagger_fetch_max_wait_ms: int = Field(default=500, ge=0, le=5000)
    tagger_fetch_min_bytes: int = Field(default=1_048_576, ge=1)
    #: a tagger this far behind its input (seconds) tags one window in
    #: tagger_degraded_every (the others are framed and skipped) until it is back under
    #: the leave mark: on a shared host it must not take the core worker's CPU
    tagger_overload_lag_enter_s: float = Field(default=30.0, gt=0)
    tagger_overload_lag_leave_s: float = Field(default=5.0, ge=0)
    tagger_degraded_every: int = Field(default=8, ge=1, le=10_000)
    #: a tenant's catalogue is searched exactly up to this many tracks, by HNSW above
    similarity_exact_limit: int = Field(default=20_000, ge=1)
    #: what a core process holds of the tenants' catalogues: at most this many items per
    #: tenant (past it, the items written longest ago), and this many MB over all tenants
    #: (past it, the index of the tenant asked for least recently is let go)
    similarity_max_items: int = Field(default=500_000, ge=1)
    similarity_memory_mb: int = Field(default=1024, ge=16)
    #: each tenant's share of recommendations, in requests a second per worker process
    #: (a token bucket; 0: no limit): past it a request is answered at once from what is
    #: popular now, marked rate_limited, so one tenant's flood cannot delay the others
    recommend_rate_per_tenant: float = Field(default=200.0, ge=0)

    # --- state retention, event time and quotas (docs/contract.md "State") ---
    #: How long a re-read record is recognised as a replay (and a repeated event_id as a
    #: duplicate): keep it above the input topics' retention.ms and the broker's
    #: offsets.retention.minutes (both 7 days by default in Kafka).
    replay_memory_s: int = Field(default=8 * 86400, ge=86400)
    #: A listener's or a track's state is dropped after this long without an event.
    state_ttl_s: int = Field(default=30 * 86400, ge=3600)
    #: Events up to this late (behind the listener's latest event, or the track's newest
    #: window) are processed in full; later ones are counted in workers_late_events_total,
    #: count for the listener but cannot move their first event time back, and miss the
    #: track windows (gone by then). At most 4 popularity windows.
    allowed_lateness_s: int = Field(default=3 * 3600, ge=0)
    #: A tenant's late plays are judged against its low watermark: the oldest event time
    #: among the input's partitions (they live on different workers and drain at their own
    #: speed in a backlog). A partition that has sent nothing for this long stops holding
    #: it back (Flink's idleness), and for this long after a tenant's first event the
    #: watermark is not known (no play is late for its track then).
    watermark_idle_s: float = Field(default=60.0, gt=0)
    #: How far ahead of the worker's clock a producer's clock may run: an event further ahead
    #: (up to the 24 h that are accepted) is counted in its own window but cannot open it.
    clock_skew_s: int = Field(default=300, ge=0, le=86400)
    #: New ids (listeners, tracks, streams) one tenant may create a day; beyond, records
    #: that would create more are quota-exceeded dead letters. 0: no limit.
    tenant_new_ids_per_day: int = Field(default=1_000_000, ge=0)
    #: The key of the erasure audit trail's subject digests (HMAC-SHA256); `erase` needs it.
    audit_key: SecretStr | None = None
    log_level: str = "info"
    #: "text" for a terminal, "json" for one JSON object per line (runtime/logs.py)
    log_format: Literal["text", "json"] = "text"

    #: "shared": one set of topics, the tenant named in each record. "strict": each tenant has
    #: its own topics (`{tenant}.audio.chunks`, …, `{tenant}.events.deadletter`), so Kafka
    #: prefixed ACLs decide who writes and reads for whom; a record naming another tenant than
    #: its topic's owner is a `tenant-mismatch` dead letter (RELIABILITY.md "Strict isolation").
    isolation: Literal["shared", "strict"] = "shared"
    #: Put before every topic name the worker reads and writes (`prod.listening.events`,
    #: `prod.acme.audio.chunks`): several deployments on one cluster, or a platform's naming
    #: rule. Kafka's topic characters only.
    topic_prefix: str = Field(default="", max_length=100, pattern=r"^[A-Za-z0-9._-]*$")

    # --- security (workers/security.py; RELIABILITY.md "Security") ---
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    #: CA bundle to verify the brokers (default: the system's); cert and key for mutual TLS.
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    #: librdkafka properties passed through to the consumer and the producer (the default
    #: engine, `erase` and `redrive`): WORKERS_KAFKA_CONSUMER__CLIENT_RACK=eu-1a gives
    #: `client.rack=eu-1a` (underscores become dots). The properties the worker's guarantees
    #: rest on are refused (OWNED_KAFKA_PROPERTIES).
    kafka_consumer: dict[str, str] = Field(default_factory=dict)
    kafka_producer: dict[str, str] = Field(default_factory=dict)
    #: The Redis URL names one node of a Redis Cluster (the client discovers the others).
    redis_cluster: bool = False
    #: Start even though Redis may evict keys (a maxmemory-policy other than noeviction):
    #: replay markers, erasure tombstones and quotas may then vanish under memory pressure.
    redis_allow_eviction: bool = False
    #: Replicas that must have each state change before the worker goes on (Redis WAIT on
    #: the node that took it): 1 makes a failover lose nothing; 0 trusts the master alone.
    redis_wait_replicas: int = Field(default=0, ge=0, le=5)
    #: Redis ACL user (Redis 6+); a `rediss://` URL turns TLS on, verified against this CA.
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    redis_ssl_ca_certs: Path | None = None
    redis_ssl_certfile: Path | None = None
    redis_ssl_keyfile: Path | None = None

    @field_validator("tenants", mode="before")
    @classmethod
    def _split_tenants(cls, value: object) -> tuple[str, ...]:
        if value is None or value == "":
            return ()
        items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        return tuple(validate_tenant(str(item).strip()) for item in items if str(item).strip())

    @field_validator("kafka_consumer", "kafka_producer", mode="after")
    @classmethod
    def _librdkafka_names(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        side = "consumer" if info.field_name == "kafka_consumer" else "producer"
        properties = {name.lower().replace("_", "."): v for name, v in value.items()}
        owned = sorted(set(properties) & OWNED_KAFKA_PROPERTIES[side])
        if owned:
            raise ValueError(
                f"{', '.join(owned)}: the worker sets these itself (at-least-once delivery, "
                "its group and bootstrap come from their own WORKERS_ settings)"
            )
        return properties

    @model_validator(mode="after")
    def _strict_needs_tenants(self) -> Settings:
        if self.isolation == "strict" and not self.tenants:
            raise ValueError(
                "isolation=strict subscribes to each served tenant's topics: set WORKERS_TENANTS"
            )
        return self

    def topics(self, *logical: str) -> list[str]:
        """The Kafka topics behind logical topics: shared, or one per served tenant (strict)."""
        prefix = self.topic_prefix
        if self.isolation == "strict":
            return [topic_name(x, owner=t, prefix=prefix) for x in logical for t in self.tenants]
        return [topic_name(x, prefix=prefix) for x in logical]

    def topic(self, logical: str, owner: str | None = None) -> str:
        """The Kafka topic of a logical topic, the ``owner`` tenant's own (strict isolation)."""
        return topic_name(logical, owner=owner, prefix=self.topic_prefix)

    def topic_kind(self, name: str) -> str:
        """The logical topic of one of this deployment's topics."""
        return topic_kind(name, self.topic_prefix)

    def topic_owner(self, name: str) -> str | None:
        """The tenant whose own topic this is (strict isolation), else None."""
        return topic_owner(name, self.topic_prefix)

    @model_validator(mode="after")
    def _sasl_needs_a_user(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"kafka_security_protocol={self.kafka_security_protocol} needs "
                "WORKERS_KAFKA_SASL_USERNAME and WORKERS_KAFKA_SASL_PASSWORD"
            )
        return self

    @model_validator(mode="after")
    def _lateness_within_kept_windows(self) -> Settings:
        if self.allowed_lateness_s > 4 * self.popularity_window_s:
            raise ValueError(
                "allowed_lateness_s may be at most 4 popularity windows: a track keeps 5"
            )
        return self

    def input_topics(self) -> tuple[str, ...]:
        """The logical topics this role consumes."""
        return (AUDIO_CHUNKS,) if self.role == "tagger" else INPUT_TOPICS

    @property
    def consumer_fetch(self) -> tuple[int, int]:
        """(fetch wait in ms, fetch minimum in bytes) of this role's consumer."""
        if self.role == "tagger":
            return self.tagger_fetch_max_wait_ms, self.tagger_fetch_min_bytes
        return self.fetch_max_wait_ms, 1

    @property
    def client_id(self) -> str:
        """The Kafka ``client.id`` of this process: group, role, instance (the static
        member id, else the host name: a pod's name in Kubernetes) and process id (several
        processes of one host, ``run --processes``), so each client is told apart in the
        broker's logs, quotas and metrics even where every container's PID is 1."""
        instance = self.group_instance_id or socket.gethostname()
        return f"{self.group_id}-{self.role}-{instance}-{os.getpid()}"

    @property
    def consumer_group(self) -> str:
        if self.role == "tagger":
            return self.tagger_group_id or f"{self.group_id}-tagger"
        return self.group_id

    def state_limits(self) -> StateLimits:
        """Retention and quotas, as the state store takes them."""
        return StateLimits(
            window_s=self.popularity_window_s,
            replay_memory_s=self.replay_memory_s,
            state_ttl_s=self.state_ttl_s,
            lateness_ms=self.allowed_lateness_s * 1000,
            watermark_idle_ms=int(self.watermark_idle_s * 1000),
            new_ids_per_day=self.tenant_new_ids_per_day,
        )

    @property
    def bootstrap_servers(self) -> list[str]:
        return [part.strip() for part in self.kafka_bootstrap.split(",") if part.strip()]
