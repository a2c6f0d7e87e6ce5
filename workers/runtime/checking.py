"""``check`` as an operator runs it before ``run``: what the worker will need, verified
with the worker's own settings, one line per check, and what is wrong said plainly.

The checks are ``run``'s own refusals (``preflight.py``: settings, a Redis that would
lose state), then the broker and the topics (present, their partitions, the output
topics' ``max.message.bytes``) and, for a tagger, its model's weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.core.records import OUTPUT_TOPICS
from workers.runtime.admin import output_limits
from workers.runtime.preflight import StartRefused, check_redis, check_settings
from workers.runtime.security import rdkafka_config, redis_store
from workers.runtime.settings import Settings

__all__ = ["Check", "check_all"]


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.what}: {self.detail}"


async def check_all(settings: Settings) -> list[Check]:
    """Every check, in order; a failed one does not stop the others that can still run."""
    checks = []
    for what, refusal in (("settings", _settings), ("redis", _redis)):
        try:
            detail = await refusal(settings)
            checks.append(Check(what, True, detail))
        except StartRefused as refused:
            checks.append(Check(what, False, str(refused)))
    checks.extend(await _kafka(settings))
    if settings.role == "tagger":
        checks.append(_weights(settings))
    return checks


async def _settings(settings: Settings) -> str:
    check_settings(settings)
    return (
        f"role {settings.role}, group {settings.consumer_group}, engine {settings.engine}, "
        f"tenants {','.join(settings.tenants)}"
    )


async def _redis(settings: Settings) -> str:
    """Reachable (``run`` would wait for it), and nothing ``run`` refuses."""
    store = redis_store(settings)
    try:
        info = await store.client.info("server")
    except Exception as exc:  # any client error: unreachable, refused, TLS, auth
        raise StartRefused(f"not reachable: {exc}") from exc
    finally:
        await store.client.aclose()
    await check_redis(settings)
    sections = [v for v in info.values() if isinstance(v, dict)] or [info]  # a node each
    versions = sorted({str(section.get("redis_version", "?")) for section in sections})
    kind = "a cluster" if settings.redis_cluster else "one server"
    return f"{kind}, version {', '.join(versions)}, keys never evicted"


async def _kafka(settings: Settings) -> list[Check]:
    from confluent_kafka import Consumer, KafkaException

    consumer = Consumer(
        {**rdkafka_config(settings), **settings.kafka_consumer, "group.id": "workers-check"}
    )
    try:
        metadata = consumer.list_topics(timeout=10)
    except KafkaException as exc:
        return [Check("broker", False, f"{settings.kafka_bootstrap}: {exc}")]
    finally:
        consumer.close()
    checks = [Check("broker", True, f"{len(metadata.brokers)} broker(s) answer")]
    wanted = settings.topics(*settings.input_topics(), *OUTPUT_TOPICS)
    found = {
        name: len(topic.partitions)
        for name, topic in metadata.topics.items()
        if topic.error is None and name in wanted
    }
    missing = [t for t in wanted if t not in found]
    if missing and not settings.create_topics:
        checks.append(
            Check(
                "topics",
                False,
                f"missing: {', '.join(missing)} (create them, or WORKERS_CREATE_TOPICS=true)",
            )
        )
    else:
        counts = sorted(set(found.values()))
        later = f"; {len(missing)} created at start" if missing else ""
        checks.append(
            Check("topics", True, f"{len(found)} present, partitions {counts or '-'}{later}")
        )
    limits = await output_limits(settings)
    if limits:
        smallest = min(limits, key=lambda t: limits[t])
        checks.append(
            Check(
                "output sizes", True, f"smallest max.message.bytes {limits[smallest]} ({smallest})"
            )
        )
    return checks


def _weights(settings: Settings) -> Check:
    from workers.core.tagging.model import TagModel, WeightsMissing

    try:
        model = TagModel.load(settings.tagger_model)
    except WeightsMissing as missing:
        return Check("tagger weights", False, str(missing))
    return Check("tagger weights", True, model.version)
