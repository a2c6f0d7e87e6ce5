"""What the worker makes of one listening event, given its state after the event (pure).

The tenant's models live with the state and learnt the event in the same atomic step
(``ListeningState.models``: the listener and the track ranked against the tenant's
references); here they become verdicts, the track's next window is forecast, and the
payloads are built. A replay (the record read again after a crash) learnt nothing the
second time, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.core.listening import ListeningEvent
from workers.core.listening_state import ForecasterStats, ListeningState
from workers.core.models.accounts import ACCOUNT_VERSION, AccountVerdict, judge_account
from workers.core.models.popularity import PopularityModel
from workers.core.models.tracks import TRACK_VERSION, TrackVerdict, judge_track
from workers.core.payloads import (
    account_payload,
    anomaly_payload,
    popularity_payload,
    track_payload,
)
from workers.core.records import ACCOUNTS, ANOMALY, POPULARITY, TRACKS, Output

__all__ = ["DETECTOR_VERSION", "EventJudgement", "account_score", "forecaster", "judge_event"]

#: the listening model as kept by the store (docs/models.md)
DETECTOR_VERSION = ACCOUNT_VERSION


@dataclass(frozen=True, slots=True)
class EventJudgement:
    outputs: list[Output]
    anomalous: bool
    account: AccountVerdict
    track: TrackVerdict
    #: the account verdict published with these outputs (the store remembers it), if any
    account_marker: str | None = None
    #: the track verdict published with them, if any
    track_marker: str | None = None


def forecaster(stats: ForecasterStats) -> PopularityModel:
    """The tenant's popularity forecaster, as the store returned it with an event."""
    return PopularityModel(
        forecast=stats.forecast,
        weights=stats.weights,
        trained=stats.trained,
        mae=stats.mae,
        naive_mae=stats.naive_mae,
        seasonal_mae=stats.seasonal_mae,
    )


def account_score(strength: float) -> float:
    """The published account score: 0.5 is no evidence either way (the contract's scale),
    1 the strongest; ``strength`` is the verdict's (0 none, 1 strongest)."""
    return round(0.5 + 0.5 * strength, 4)


def judge_event(event: ListeningEvent, state: ListeningState, *, window_s: int) -> EventJudgement:
    """The listener's and the track's verdicts and the track's forecast after ``event``."""
    assert state.models is not None, "the store judges every event it applies"
    m = state.models
    account = judge_account(
        m.account, m.listener.x, m.listener.ranks, sync=m.sync, segment=m.segment
    )
    track = judge_track(
        m.track_published,
        m.track.x,
        m.track.ranks,
        listens=m.track_listens,
        suspicion=m.track_suspicion,
    )
    popularity = forecaster(m.forecaster)
    window_ms = window_s * 1000
    window_start = (event.ts // window_ms) * window_ms
    predicted = popularity.predict()
    reasons = [*account.evidence, "model-score"] if account.is_bot else []
    outputs = [
        Output(
            ANOMALY,
            f"{event.tenant}/{event.user_id}",
            anomaly_payload(
                tenant=event.tenant,
                kind="listening",
                subject=event.user_id,
                ref=event.event_id,
                score=account.score,
                percentile=round(1.0 - min(account.p.values(), default=1.0), 6),
                threshold=ON_STRENGTH,
                is_anomaly=account.is_bot,
                warming_up=account.warming,
                reasons=reasons,
                model_version=DETECTOR_VERSION,
                replay=state.replay,
                features=m.listener.x,
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
    if account.publish:
        outputs.append(
            Output(
                ACCOUNTS,
                f"{event.tenant}/{event.user_id}",
                account_payload(
                    tenant=event.tenant,
                    user_id=event.user_id,
                    score=account_score(account.score),
                    is_bot=account.is_bot,
                    evidence=account.evidence,
                    group=account.group,
                    as_of=event.ts,
                    listens=m.account.listens,
                    ref=event.event_id,
                    version=ACCOUNT_VERSION,
                    segment=account.segment if account.segment >= 0 else None,
                ),
            )
        )
    if track.publish:
        outputs.append(
            Output(
                TRACKS,
                f"{event.tenant}/{event.track_id}",
                track_payload(
                    tenant=event.tenant,
                    track_id=event.track_id,
                    score=track.score,
                    is_suspicious=track.is_suspicious,
                    artificial_share=track.artificial_share,
                    evidence=track.evidence,
                    groups=list(m.track_groups),
                    as_of=event.ts,
                    listens=m.track_listens,
                    ref=event.event_id,
                    version=TRACK_VERSION,
                ),
            )
        )
    return EventJudgement(
        outputs=outputs,
        anomalous=account.is_bot,
        account=account,
        track=track,
        account_marker=account.marker if account.publish else None,
        track_marker=track.marker if track.publish else None,
    )


#: a listener is anomalous from this strength of evidence (``accounts.ON``)
ON_STRENGTH = 0.75
