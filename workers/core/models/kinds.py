"""The kinds of model every tenant has, and how a fresh one of each is made."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from workers.core.behaviour import BOT_DIRECTIONS
from workers.core.models.anomaly import AnomalyDetector
from workers.core.models.popularity import PopularityModel
from workers.core.models.protocol import Model, ModelKind

__all__ = ["AUDIO_MODEL", "KINDS", "LISTENING_MODEL", "POPULARITY_MODEL", "model_factories"]

AUDIO_MODEL = ModelKind("audio-anomaly", AnomalyDetector)
LISTENING_MODEL = ModelKind("listening-anomaly", AnomalyDetector)
POPULARITY_MODEL = ModelKind("popularity", PopularityModel)
KINDS = (AUDIO_MODEL, LISTENING_MODEL, POPULARITY_MODEL)


def model_factories(
    *, alarm_rate_listening: float = 0.05, alarm_rate_audio: float = 0.02
) -> dict[str, Callable[[], Model]]:
    """One factory per model kind (by name): what a tenant gets the first time it is seen."""
    return {
        AUDIO_MODEL.name: partial(AnomalyDetector.create, alarm_rate=alarm_rate_audio),
        LISTENING_MODEL.name: partial(
            AnomalyDetector.create_tail_rank, BOT_DIRECTIONS, alarm_rate=alarm_rate_listening
        ),
        POPULARITY_MODEL.name: PopularityModel.create,
    }
