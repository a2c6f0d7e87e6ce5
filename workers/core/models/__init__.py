"""Online models (River style, pure): anomaly detection and popularity."""

from workers.core.models.anomaly import AnomalyDetector, Verdict
from workers.core.models.popularity import PopularityModel, WindowCounts

__all__ = ["AnomalyDetector", "PopularityModel", "Verdict", "WindowCounts"]
