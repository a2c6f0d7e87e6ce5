"""Online models (pure), each the reference of what the state store keeps and updates:
the listening detector (``RankDetector``), the popularity forecaster (``PopularityModel``)
and each audio stream's own anomaly model (``StreamContext``)."""

from workers.core.models.popularity import PopularityModel
from workers.core.models.protocol import Model, ModelQuality
from workers.core.models.stream_context import StreamContext
from workers.core.models.tailrank import RankDetector, RankVerdict

__all__ = [
    "Model",
    "ModelQuality",
    "PopularityModel",
    "RankDetector",
    "RankVerdict",
    "StreamContext",
]
