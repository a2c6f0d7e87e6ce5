"""What the worker makes of one listening event, given its state after the event (pure).

The tenant's models live with the state and learnt the event in the same atomic step
(``ListeningState.models``): here the listener's verdict is explained and the track's
next window forecast, and both payloads are built. A replay (the record read again after
a crash) learnt nothing the second time, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.core.listening import ListeningEvent
from workers.core.listening_state import ForecasterStats, ListeningState
from workers.core.models.accounts import ACCOUNT_VERSION, AccountEvidence, judge_account
from workers.core.models.popularity import PopularityModel
from workers.core.payloads import account_payload, anomaly_payload, popularity_payload
from workers.core.records import ACCOUNTS, ANOMALY, POPULARITY, Output

__all__ = ["DETECTOR_VERSION", "EXPLAIN_LEVEL", "EventJudgement", "forecaster", "judge_event"]

#: the listening detector (``RankDetector``) as kept by the store
DETECTOR_VERSION = "tailrank6-store-v2"
#: a feature explains an alarm when it ranks at least this far in its suspicious tail
EXPLAIN_LEVEL = 0.95


@dataclass(frozen=True, slots=True)
class EventJudgement:
    outputs: list[Output]
    anomalous: bool
    #: the account verdict published with these outputs (the store remembers it), if any
    account_marker: str | None = None


def forecaster(stats: ForecasterStats) -> PopularityModel:
    """The tenant's popularity forecaster, from the statistics the store returned."""
    return PopularityModel(
        a=list(stats.a),
        b=list(stats.b),
        trained=stats.trained,
        mae=stats.mae,
        naive_mae=stats.naive_mae,
    )


def judge_event(event: ListeningEvent, state: ListeningState, *, window_s: int) -> EventJudgement:
    """The listener's verdict and the track's forecast after ``event``."""
    assert state.models is not None, "the store judges every event it applies"
    verdict, features = state.models.verdict, state.models.features
    reasons = (
        [
            name
            for name, rank in sorted(verdict.ranks.items(), key=lambda kv: -kv[1])
            if rank >= EXPLAIN_LEVEL
        ]
        if verdict.is_anomaly
        else []
    )
    if verdict.is_anomaly:
        reasons.append("model-score")
    popularity = forecaster(state.models.forecaster)
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
                model_version=DETECTOR_VERSION,
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
    evidence = state.models.account or AccountEvidence()
    account = judge_account(
        evidence,
        verdict.ranks,
        listens=evidence.listens,
        warming=verdict.warming_up,
        segment=state.models.segment,
    )
    if account.publish:
        outputs.append(
            Output(
                ACCOUNTS,
                f"{event.tenant}/{event.user_id}",
                account_payload(
                    tenant=event.tenant,
                    user_id=event.user_id,
                    score=account.score,
                    is_bot=account.is_bot,
                    evidence=account.evidence,
                    group=account.group,
                    as_of=event.ts,
                    listens=evidence.listens,
                    ref=event.event_id,
                    version=ACCOUNT_VERSION,
                    segment=account.segment if account.segment >= 0 else None,
                ),
            )
        )
    return EventJudgement(
        outputs=outputs,
        anomalous=verdict.is_anomaly,
        account_marker=account.marker if account.publish else None,
    )
