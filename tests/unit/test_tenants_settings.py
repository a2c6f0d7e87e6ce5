import pytest
from pydantic import ValidationError

from workers.core.tenants import InvalidTenantError, is_valid_id, validate_tenant
from workers.runtime.settings import Settings
from workers.state.keys import prefix, track_listeners, user


@pytest.mark.parametrize("tenant", ["acme", "a", "label-1", "x_y", "0abc", "a" * 63])
def test_valid_tenants(tenant: str) -> None:
    assert validate_tenant(tenant) == tenant


@pytest.mark.parametrize(
    "tenant", ["", "Acme", "-acme", "_a", "a" * 64, "ac me", "a/b", "a*", "{a}", "a:b", "../x", "ä"]
)
def test_invalid_tenants(tenant: str) -> None:
    with pytest.raises(InvalidTenantError):
        validate_tenant(tenant)


def test_keys_carry_the_tenant_hash_tag() -> None:
    assert prefix("acme") == "{acme}:"
    assert user("acme", "u1") == "{acme}:user:u1"
    assert track_listeners("acme", 42, "t1") == "{acme}:track-listeners:42:t1"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("u1", True),
        ("a.b:c@d-e_f", True),
        ("", False),
        ("a b", False),
        ("{x}", False),
        ("a/b", False),
        ("x" * 129, False),
    ],
)
def test_ids(value: str, ok: bool) -> None:
    assert is_valid_id(value) is ok


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKERS_KAFKA_BOOTSTRAP", "k1:9092, k2:9093")
    monkeypatch.setenv("WORKERS_REDIS_URL", "redis://:secret@r:6379/1")
    monkeypatch.setenv("WORKERS_TENANTS", "acme, beats ,")
    monkeypatch.setenv("WORKERS_METRICS_PORT", "9200")
    settings = Settings(_env_file=None)
    assert settings.bootstrap_servers == ["k1:9092", "k2:9093"]
    assert settings.tenants == ("acme", "beats")
    assert settings.metrics_port == 9200
    assert "secret" not in repr(settings)


def test_settings_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP", "REDIS_URL", "TENANTS", "METRICS_PORT"):
        monkeypatch.delenv(f"WORKERS_{name}", raising=False)
    settings = Settings(_env_file=None)
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.redis_url.get_secret_value() == "redis://127.0.0.1:6379/0"
    assert settings.tenants == ()
    assert settings.metrics_port == 9108


def test_settings_refuse_bad_tenants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKERS_TENANTS", "acme,Not Valid")
    with pytest.raises(ValueError, match="invalid tenant"):
        Settings(_env_file=None)


def test_strict_isolation_topics_and_owners() -> None:
    from workers.core.records import AUDIO_CHUNKS, DEADLETTER, topic_owner

    strict = Settings(isolation="strict", tenants="acme,beats")
    assert strict.topics(AUDIO_CHUNKS, DEADLETTER) == [
        "acme.audio.chunks",
        "beats.audio.chunks",
        "acme.events.deadletter",
        "beats.events.deadletter",
    ]
    assert Settings().topics(AUDIO_CHUNKS) == ["audio.chunks"]
    assert [topic_owner(t) for t in strict.topics(AUDIO_CHUNKS)] == ["acme", "beats"]
    assert topic_owner("audio.chunks") is None
    assert topic_owner("Bad*.audio.chunks") is None  # not a tenant id: not a tenant's topic
    with pytest.raises(ValidationError, match="WORKERS_TENANTS"):
        Settings(isolation="strict")


def test_a_topic_prefix_names_every_topic_and_is_read_back() -> None:
    from workers.core.records import LISTENING_EVENTS, TRACKS, received

    shared = Settings(topic_prefix="prod.")
    strict = Settings(topic_prefix="team-a_", isolation="strict", tenants="acme")
    assert shared.topics(LISTENING_EVENTS, TRACKS) == [
        "prod.listening.events",
        "prod.predictions.tracks",
    ]
    assert strict.topic(TRACKS, "acme") == "team-a_acme.predictions.tracks"
    for s, name, owner in (
        (shared, "prod.listening.events", None),
        (strict, "team-a_acme.listening.events", "acme"),
    ):
        assert (s.topic_kind(name), s.topic_owner(name)) == (LISTENING_EVENTS, owner)
        record = received(
            name, 0, 0, None, b"", headers=(), timestamp_ms=None, prefix=s.topic_prefix
        )
        assert (record.kind, record.owner) == (LISTENING_EVENTS, owner)
    assert strict.topic_owner("acme.listening.events") is None  # not this deployment's
    for bad in ("prod/", "a b", "x" * 101):
        with pytest.raises(ValidationError, match="topic_prefix"):
            Settings(topic_prefix=bad)


def test_a_retired_setting_is_named_at_start_and_changes_nothing() -> None:
    from workers.runtime.preflight import warn_on_retired

    assert warn_on_retired({"WORKERS_TENANTS": "acme"}) == []
    (warning,) = warn_on_retired({"WORKERS_ALARM_RATE_LISTENING": "0.05"})
    assert warning.startswith("WORKERS_ALARM_RATE_LISTENING is retired")


def test_librdkafka_properties_pass_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORKERS_KAFKA_CONSUMER__CLIENT_RACK", "eu-1a")
    monkeypatch.setenv("WORKERS_KAFKA_PRODUCER__COMPRESSION_TYPE", "zstd")
    monkeypatch.setenv("WORKERS_KAFKA_PRODUCER__LINGER_MS", "20")
    settings = Settings(tenants=["acme"])
    assert settings.kafka_consumer == {"client.rack": "eu-1a"}
    assert settings.kafka_producer == {"compression.type": "zstd", "linger.ms": "20"}


@pytest.mark.parametrize(
    ("variable", "owned"),
    [
        ("WORKERS_KAFKA_CONSUMER__ENABLE_AUTO_COMMIT", "enable.auto.commit"),
        ("WORKERS_KAFKA_CONSUMER__GROUP_ID", "group.id"),
        ("WORKERS_KAFKA_PRODUCER__ACKS", "acks"),
        ("WORKERS_KAFKA_PRODUCER__BOOTSTRAP_SERVERS", "bootstrap.servers"),
    ],
)
def test_properties_the_guarantees_rest_on_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, owned: str
) -> None:
    monkeypatch.setenv(variable, "1")
    with pytest.raises(ValueError, match=f"{owned}: the worker sets these itself"):
        Settings(tenants=["acme"])
