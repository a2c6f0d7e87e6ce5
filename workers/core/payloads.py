"""The JSON values of the output topics, typed, and built in one place.

Each payload is a ``TypedDict`` that mirrors its schema in ``schemas/v1`` (a unit test
checks every builder's output against it). ``latency_ms`` is not part of what a step
builds: the publisher, which alone knows when the outputs reach the producer, stamps it
(``encode``).

>>> payload = popularity_payload(
...     tenant="acme", track_id="t1", ref="e1", window_start=0, window_s=3600,
...     counts=WindowCounts(plays=3), plays_previous=1, predicted=4.0, version="v", replay=False)
>>> encode(payload, latency_ms=0.5)[-18:]
b',"latency_ms":0.5}'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict

import orjson

from workers.core.listening_state import WindowCounts

__all__ = [
    "AccountPayload",
    "AnomalyPayload",
    "FeaturesPayload",
    "Payload",
    "PopularityPayload",
    "RecommendationsPayload",
    "TagsPayload",
    "TrackPayload",
    "account_payload",
    "anomaly_payload",
    "as_replay",
    "encode",
    "features_payload",
    "popularity_payload",
    "recommendations_payload",
    "tags_payload",
    "track_payload",
]


class FeaturesPayload(TypedDict):
    """``audio.features`` (schema ``audio.features.json``)."""

    schema: Literal["audio.features/v1"]
    tenant: str
    stream: str
    seq: int
    track: str | None
    ts: int | None
    sample_rate: int
    duration_ms: float
    features: dict[str, float]
    quality: dict[str, bool]
    replay: bool


class AnomalyPayload(TypedDict):
    """``predictions.anomaly`` (schema ``prediction.anomaly.json``)."""

    schema: Literal["predictions.anomaly/v1"]
    tenant: str
    kind: Literal["audio", "listening"]
    subject: str
    ref: int | str
    score: float
    percentile: float
    threshold: float
    is_anomaly: bool
    warming_up: bool
    reasons: list[str]
    model_version: str
    replay: bool
    features: NotRequired[dict[str, float]]


class PopularityPayload(TypedDict):
    """``predictions.popularity`` (schema ``prediction.popularity.json``)."""

    schema: Literal["predictions.popularity/v1"]
    tenant: str
    track_id: str
    ref: str
    window_start: int
    window_s: int
    plays: int
    plays_previous: int
    skips: int
    likes: int
    shares: int
    listeners: int
    predicted_plays_next: float
    model_version: str
    replay: bool


class AccountPayload(TypedDict):
    """``predictions.accounts`` (schema ``prediction.accounts.json``)."""

    schema: Literal["predictions.accounts/v1"]
    tenant: str
    user_id: str
    score: float
    is_bot: bool
    evidence: list[str]
    group: str | None
    as_of: int
    listens: int
    ref: str
    segment: int | None
    model_version: str


#: What a step hands the publisher; a replay re-emits a saved payload as a plain mapping.
class TagsPayload(TypedDict):
    """``predictions.tags`` (schema ``prediction.tags.json``): one tagged 3 s patch."""

    schema: Literal["predictions.tags/v1"]
    tenant: str
    stream: str
    track: str | None
    seq: int
    window: dict[str, float]
    tags: dict[str, float]
    top_genres: list[dict[str, Any]]
    top_moods: list[dict[str, Any]]
    embedding: list[float]
    stems: dict[str, float]
    ai_music: dict[str, Any]
    aggregate: dict[str, Any]
    model_version: str
    replay: bool


class TrackPayload(TypedDict):
    """``predictions.tracks`` (schema ``prediction.tracks.json``)."""

    schema: Literal["predictions.tracks/v1"]
    tenant: str
    track_id: str
    score: float
    is_suspicious: bool
    artificial_share: float
    evidence: list[str]
    groups: list[str]
    as_of: int
    listens: float
    ref: str
    model_version: str


class RecommendationsPayload(TypedDict):
    """``predictions.recommendations`` (schema ``prediction.recommendations.json``)."""

    schema: Literal["predictions.recommendations/v1"]
    request_id: str
    tenant: str
    subject: dict[str, str]
    items: list[dict[str, Any]]
    strategy: Literal["hybrid", "popular"]
    catalogue: dict[str, Any]
    model_version: str
    #: past its tenant's share of requests: answered from what is popular now, at once
    rate_limited: bool


def tags_payload(
    *,
    tenant: str,
    stream: str,
    track: str | None,
    seq: int,
    window: dict[str, float],
    described: Mapping[str, Any],
    embedding: list[float],
    heard: Mapping[str, Any],  # the window's ``stems`` and the stream's ``ai_music``
    aggregate: dict[str, Any],
    version: str,
) -> TagsPayload:
    return {
        "schema": "predictions.tags/v1",
        "tenant": tenant,
        "stream": stream,
        "track": track,
        "seq": seq,
        "window": window,
        "tags": described["tags"],
        "top_genres": described["top_genres"],
        "top_moods": described["top_moods"],
        "embedding": embedding,
        "stems": heard["stems"],
        "ai_music": heard["ai_music"],
        "aggregate": aggregate,
        "model_version": version,
        "replay": False,
    }


def recommendations_payload(
    *,
    request_id: str,
    tenant: str,
    subject: dict[str, str],
    items: list[dict[str, Any]],
    strategy: Literal["hybrid", "popular"],
    catalogue: dict[str, Any],
    version: str,
    rate_limited: bool = False,
) -> RecommendationsPayload:
    return {
        "schema": "predictions.recommendations/v1",
        "request_id": request_id,
        "tenant": tenant,
        "subject": subject,
        "items": items,
        "strategy": strategy,
        "catalogue": catalogue,
        "model_version": version,
        "rate_limited": rate_limited,
    }


Payload = (
    FeaturesPayload
    | AnomalyPayload
    | PopularityPayload
    | AccountPayload
    | TrackPayload
    | TagsPayload
    | RecommendationsPayload
    | dict[str, Any]
)


def account_payload(
    *,
    tenant: str,
    user_id: str,
    score: float,
    is_bot: bool,
    evidence: list[str],
    group: str | None,
    as_of: int,
    listens: int,
    ref: str,
    version: str,
    segment: int | None = None,
) -> AccountPayload:
    return {
        "schema": "predictions.accounts/v1",
        "tenant": tenant,
        "user_id": user_id,
        "score": round(score, 4),
        "is_bot": is_bot,
        "evidence": evidence,
        "group": group,
        "as_of": as_of,
        "listens": listens,
        "ref": ref,
        "segment": segment,
        "model_version": version,
    }


def track_payload(
    *,
    tenant: str,
    track_id: str,
    score: float,
    is_suspicious: bool,
    artificial_share: float,
    evidence: list[str],
    groups: list[str],
    as_of: int,
    listens: float,
    ref: str,
    version: str,
) -> TrackPayload:
    return {
        "schema": "predictions.tracks/v1",
        "tenant": tenant,
        "track_id": track_id,
        "score": round(score, 4),
        "is_suspicious": is_suspicious,
        "artificial_share": artificial_share,
        "evidence": evidence,
        "groups": groups,
        "as_of": as_of,
        "listens": round(listens, 2),
        "ref": ref,
        "model_version": version,
    }


def features_payload(
    *,
    tenant: str,
    stream: str,
    seq: int,
    track: str | None,
    ts: int | None,
    sample_rate: int,
    duration_ms: float,
    features: dict[str, float],
    quality: dict[str, bool],
) -> FeaturesPayload:
    return {
        "schema": "audio.features/v1",
        "tenant": tenant,
        "stream": stream,
        "seq": seq,
        "track": track,
        "ts": ts,
        "sample_rate": sample_rate,
        "duration_ms": round(duration_ms, 3),
        "features": features,
        "quality": quality,
        "replay": False,
    }


def anomaly_payload(
    *,
    tenant: str,
    kind: Literal["audio", "listening"],
    subject: str,
    ref: int | str,
    score: float,
    percentile: float,
    threshold: float,
    is_anomaly: bool,
    warming_up: bool,
    reasons: list[str],
    model_version: str,
    replay: bool,
    features: Mapping[str, float] | None = None,
) -> AnomalyPayload:
    payload: AnomalyPayload = {
        "schema": "predictions.anomaly/v1",
        "tenant": tenant,
        "kind": kind,
        "subject": subject,
        "ref": ref,
        "score": round(score, 6),
        "percentile": round(percentile, 6),
        "threshold": round(threshold, 6),
        "is_anomaly": is_anomaly,
        "warming_up": warming_up,
        "reasons": reasons,
        "model_version": model_version,
        "replay": replay,
    }
    if features is not None:
        payload["features"] = {name: round(value, 6) for name, value in features.items()}
    return payload


def popularity_payload(
    *,
    tenant: str,
    track_id: str,
    ref: str,
    window_start: int,
    window_s: int,
    counts: WindowCounts,
    plays_previous: int,
    predicted: float,
    version: str,
    replay: bool,
) -> PopularityPayload:
    return {
        "schema": "predictions.popularity/v1",
        "tenant": tenant,
        "track_id": track_id,
        "ref": ref,
        "window_start": window_start,
        "window_s": window_s,
        "plays": counts.plays,
        "plays_previous": plays_previous,
        "skips": counts.skips,
        "likes": counts.likes,
        "shares": counts.shares,
        "listeners": counts.listeners,
        "predicted_plays_next": round(predicted, 3),
        "model_version": version,
        "replay": replay,
    }


def as_replay(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A payload saved with a record's state, emitted again because the record was re-read."""
    return {**saved, "replay": True}


def encode(payload: Payload, *, latency_ms: float) -> bytes:
    """The published JSON: the payload with the time the worker spent on its input."""
    return orjson.dumps({**payload, "latency_ms": latency_ms})
