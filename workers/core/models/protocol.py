"""The one interface every model kind implements, in River's manner.

A model is a plain picklable object with no I/O. Each kind scores or predicts in its own
terms (``AnomalyDetector.judge``, ``PopularityModel.predict``) and learns with
``learn_one``; what every kind shares is what the rest of the worker needs without knowing
the kind: its ``version`` (checked when a snapshot is restored), ``explain_one`` (the inputs
that drove an output) and ``quality`` (what the metrics report).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

__all__ = ["Model", "ModelKind", "ModelQuality"]


@dataclass(frozen=True, slots=True)
class ModelQuality:
    """How a model is doing, in the terms its kind has (None: not applicable)."""

    #: inputs (or labels) learnt so far
    inputs: int
    #: drifts detected and handled by the model's policy
    drifts: int
    #: detectors: inputs flagged, the adaptive threshold, and whether still warming up
    alarms: int | None = None
    threshold: float | None = None
    warming_up: bool | None = None
    #: forecasters: rolling mean absolute error of the forecast, of the naive forecast and
    #: of the seasonal naive one
    mae: float | None = None
    naive_mae: float | None = None
    seasonal_mae: float | None = None


@runtime_checkable
class Model(Protocol):
    @property
    def version(self) -> str:
        """Name and version of the model's design; a snapshot of another version is not
        restored (a fresh model starts instead)."""

    def explain_one(self, x: Any) -> list[str]:
        """The inputs that drove the model's output for ``x``, most important first."""

    def quality(self) -> ModelQuality: ...


M = TypeVar("M", bound=Model)


@dataclass(frozen=True, slots=True)
class ModelKind(Generic[M]):
    """A kind of model every tenant has one of: ``ModelKind("popularity", PopularityModel)``."""

    name: str
    model_type: type[M]

    def check(self, model: Model) -> M:
        if not isinstance(model, self.model_type):
            raise TypeError(f"{self.name}: {type(model).__name__} is not a {self.model_type}")
        return model

    def __str__(self) -> str:
        return self.name
