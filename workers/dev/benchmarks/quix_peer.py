"""A peer for ``bench latency``: the listening path written as a Quix Streams application.

What an engineer would write with Quix Streams for the same per-event work as the worker:
validate the event against the contract's schema, update per-listener and per-track state in
Redis (one pipelined round trip: counters, a HyperLogLog of distinct tracks, the listener's
state read back), score and then learn a River anomaly model on the listener's behaviour,
publish the prediction. Differences from the worker, stated so the comparison is read
right: the model lives in the process (one per tenant, lost on restart, not shared by a
fleet; the worker keeps its models in Redis), an invalid event is only counted (the worker
dead-letters it), and Quix's at-least-once commits every ``commit_interval``.

Its output has the fields ``bench latency`` times (``kind``, ``tenant``, ``subject``,
``ref``, ``latency_ms``): ``latency_ms`` is the time inside the processing function only
(Quix does not expose when a message was fetched), so it understates the in-process time.

Run: ``python -m workers.dev.benchmarks.quix_peer BOOTSTRAP REDIS_URL [earliest|latest]``
(the consumer group ``quix-peer``; ``latest``, the default: from the end of the topic).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

__all__ = ["main"]

GROUP = "quix-peer"
#: a day: the worker keeps a listener's state as long
TTL_S = 86_400
_COUNTER = {"play": "plays", "skip": "skips", "like": "engaged", "share": "engaged"}


def _model() -> Any:
    from river import anomaly, compose, preprocessing

    # the features are shares and logs in [0, 1] already; the scaler keeps HST honest on
    # the ones that are not. 10 trees of height 8: a fifth of River's default cost per step
    return compose.Pipeline(
        preprocessing.MinMaxScaler(),
        anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=42),
    )


def main(bootstrap: str, redis_url: str, offset_reset: str = "latest") -> None:
    import fastjsonschema
    import redis
    from quixstreams import Application

    from workers.core.records import ANOMALY, LISTENING_EVENTS
    from workers.core.schemas import SCHEMAS
    from workers.dev.forwarder import RDKAFKA_GROUP
    from workers.runtime.settings import Settings

    settings = Settings()
    validate = fastjsonschema.compile(dict(SCHEMAS.schema("listening.event")))
    store = redis.Redis.from_url(redis_url)
    models: dict[str, Any] = {}
    invalid = 0

    def work(event: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal invalid
        started = time.perf_counter()
        try:
            validate(event)
        except fastjsonschema.JsonSchemaValueException:
            invalid += 1
            return None
        tenant, user, track = event["tenant"], event["user_id"], event["track_id"]
        listener = f"peer:{{{tenant}}}:user:{user}"
        kind = event["type"]
        pipe = store.pipeline(transaction=False)
        pipe.hincrby(listener, _COUNTER[kind], 1)
        if 29_000 <= event.get("ms_played", 0) < 35_000:
            pipe.hincrby(listener, "near30", 1)
        pipe.pfadd(listener + ":tracks", track)
        pipe.hincrby(f"peer:{{{tenant}}}:track:{track}", "plays", 1)
        pipe.expire(listener, TTL_S)
        pipe.expire(listener + ":tracks", TTL_S)
        pipe.pfcount(listener + ":tracks")
        pipe.hmget(listener, "plays", "skips", "near30", "engaged")
        *_, distinct, counts = pipe.execute()
        plays, skips, near30, engaged = (int(c or 0) for c in counts)
        listens = max(1, plays + skips)
        x = {
            "log_listens": min(1.0, math.log1p(listens) / 10.0),
            "skip_rate": skips / listens,
            "near_30s_share": near30 / listens,
            "distinct_ratio": min(1.0, distinct / listens),
            "engagement": min(1.0, engaged / listens),
        }
        model = models.get(tenant)
        if model is None:
            model = models[tenant] = _model()
        score = float(model.score_one(x))
        model.learn_one(x)
        return {
            "kind": "listening",
            "tenant": tenant,
            "subject": user,
            "ref": event["event_id"],
            "score": score,
            "is_anomaly": score > 0.9,
            "latency_ms": round((time.perf_counter() - started) * 1000.0, 3),
        }

    app = Application(
        broker_address=bootstrap,
        consumer_group=GROUP,
        auto_offset_reset=offset_reset,  # type: ignore[arg-type]
        use_changelog_topics=False,
        # the worker's fetch wait and linger: the runtimes are compared, not their defaults
        consumer_extra_config={"fetch.wait.max.ms": settings.fetch_max_wait_ms, **RDKAFKA_GROUP},
        producer_extra_config={"linger.ms": settings.producer_linger_ms},
    )
    source = app.topic(LISTENING_EVENTS, value_deserializer="json")
    target = app.topic(ANOMALY, value_serializer="json")
    sdf = app.dataframe(source)
    sdf = sdf.apply(work).filter(lambda out: out is not None)
    sdf.to_topic(target)
    app.run()


if __name__ == "__main__":
    main(*sys.argv[1:4])
