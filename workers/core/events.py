"""What the worker makes of one listening event, given its state after the event (pure).

The behaviour detector scores the listener, then learns (prequential); the popularity
model learns the delayed label of a window the event closed, then forecasts the track's
next window. A replay (the record re-read after a crash) is scored again and learns
nothing, and so does an event handled in degraded mode.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.core.behaviour import behaviour
from workers.core.listening import ListeningEvent
from workers.core.listening_state import ListeningState
from workers.core.models import AnomalyDetector, PopularityModel
from workers.core.payloads import anomaly_payload, popularity_payload
from workers.core.records import ANOMALY, POPULARITY, Output

__all__ = ["EventJudgement", "judge_event"]


@dataclass(frozen=True, slots=True)
class EventJudgement:
    outputs: list[Output]
    anomalous: bool


def judge_event(
    event: ListeningEvent,
    state: ListeningState,
    *,
    detector: AnomalyDetector,
    popularity: PopularityModel,
    window_s: int,
    learn: bool,
) -> EventJudgement:
    """Score the listener and the track after ``event``; learn only when ``learn``."""
    learn = learn and not state.replay
    features = behaviour(state.user, state.current)
    verdict = detector.step(features, learn=learn)
    reasons = detector.explain_one(features) if verdict.is_anomaly else []
    if verdict.is_anomaly:
        reasons.append("model-score")
    if state.closed is not None and learn:
        closed, before, before_that = state.closed
        popularity.learn_one(current=before, previous=before_that, next_plays=closed.plays)
    window_ms = window_s * 1000
    window_start = (event.ts // window_ms) * window_ms
    elapsed = (event.ts - window_start + 1) / window_ms
    predicted = popularity.predict_one(
        current=state.current, previous=state.previous, elapsed=elapsed
    )
    outputs = [
        Output(
            ANOMALY,
            f"{event.tenant}/{event.user_id}",
            anomaly_payload(
                tenant=event.tenant,
                kind="listening",
                subject=event.user_id,
                ref=event.event_id,
                score=verdict.score,
                percentile=verdict.percentile,
                threshold=verdict.threshold,
                is_anomaly=verdict.is_anomaly,
                warming_up=verdict.warming_up,
                reasons=reasons,
                model_version=detector.version,
                replay=state.replay,
                features=features,
            ),
        ),
        Output(
            POPULARITY,
            f"{event.tenant}/{event.track_id}",
            popularity_payload(
                tenant=event.tenant,
                track_id=event.track_id,
                ref=event.event_id,
                window_start=window_start,
                window_s=window_s,
                counts=state.current,
                plays_previous=state.previous.plays,
                predicted=predicted,
                version=popularity.version,
                replay=state.replay,
            ),
        ),
    ]
    return EventJudgement(outputs=outputs, anomalous=verdict.is_anomaly)
