"""Online models (River style, pure): anomaly detection and popularity."""

from workers.core.listening_state import WindowCounts
from workers.core.models.anomaly import AnomalyDetector, Verdict
from workers.core.models.popularity import PopularityModel

__all__ = ["AnomalyDetector", "PopularityModel", "Verdict", "WindowCounts"]
