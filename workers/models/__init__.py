"""Online models (River): anomaly detection, popularity, their snapshots and registry."""

from workers.models.anomaly import AnomalyDetector, Verdict
from workers.models.popularity import PopularityModel, WindowCounts
from workers.models.registry import ModelRegistry

__all__ = ["AnomalyDetector", "ModelRegistry", "PopularityModel", "Verdict", "WindowCounts"]
