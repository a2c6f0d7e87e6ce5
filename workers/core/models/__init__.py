"""Online models (pure), each the reference of what the state store keeps and updates: the
listening models (``evidence``, ``reference``, ``verdict``, ``accounts``, ``tracks``: a
listener's and a track's verdicts against the tenant's references), the popularity
forecaster (``PopularityModel``) and each audio stream's own anomaly model
(``StreamContext``)."""

from workers.core.models.popularity import PopularityModel
from workers.core.models.protocol import Model, ModelQuality
from workers.core.models.stream_context import StreamContext

__all__ = [
    "Model",
    "ModelQuality",
    "PopularityModel",
    "StreamContext",
]
