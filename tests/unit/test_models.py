"""One contract over every model kind (River's manner: ``check_estimator``), then each
kind's behaviour. The models are the references of what the state store keeps; the store
contract tests (integration) check that Redis computes the same."""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable

import numpy as np
import pytest
from river import linear_model

from workers.core.chunks import AUDIO_MODEL_FEATURES, StreamMemory
from workers.core.listening_state import WindowCounts
from workers.core.models import Model, ModelQuality, PopularityModel, StreamContext
from workers.core.models.popularity import features
from workers.core.models.stream_context import dump_context, load_context
from workers.runtime.metrics import Metrics


def _audio() -> StreamContext:
    return StreamMemory.fresh().context


KINDS: dict[str, Callable[[], Model]] = {
    "audio-anomaly": _audio,
    "popularity": PopularityModel.create,
}


def feed(model: Model, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        if isinstance(model, StreamContext):
            chunk = np.array([rng.gauss(0, 1) for _ in AUDIO_MODEL_FEATURES])
            model.learn_one(chunk, model.judge(chunk).score)
        else:
            assert isinstance(model, PopularityModel)
            c = WindowCounts(plays=rng.randint(0, 50), listeners=rng.randint(0, 20))
            model.learn_one(current=c, previous=c, next_plays=rng.randint(0, 60))


def predict(model: Model) -> float:
    if isinstance(model, StreamContext):
        return model.judge(np.full(len(AUDIO_MODEL_FEATURES), 0.5)).score
    assert isinstance(model, PopularityModel)
    c = WindowCounts(plays=10, listeners=5)
    return model.predict_one(current=c, previous=c, elapsed=0.5)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_implements_the_model_protocol(kind: str) -> None:
    model = KINDS[kind]()
    assert isinstance(model, Model)
    assert model.version
    before = model.quality()
    feed(model, 300)
    after = model.quality()
    assert after.inputs == before.inputs + 300
    assert isinstance(model.explain_one(_any_input(model)), list)


def _any_input(model: Model) -> object:
    if isinstance(model, StreamContext):
        return np.full(len(AUDIO_MODEL_FEATURES), 9.0)
    return features(current=WindowCounts(plays=9), previous=WindowCounts(plays=3), elapsed=0.5)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_copy_learns_on_its_own(kind: str) -> None:
    model = KINDS[kind]()
    feed(model, 50)
    clone = copy.deepcopy(model)
    before = predict(model)
    feed(clone, 300, seed=1)
    assert predict(model) == before


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_predictions_are_finite_and_in_range(kind: str) -> None:
    model = KINDS[kind]()
    for n in (0, 10, 300):
        feed(model, n, seed=n)
        value = predict(model)
        assert math.isfinite(value)
        if not isinstance(model, PopularityModel):
            assert 0.0 <= value <= 1.0


def test_the_stream_context_survives_its_bytes() -> None:
    context = _audio()
    feed(context, 200)
    again = load_context(dump_context(context), names=AUDIO_MODEL_FEATURES)
    assert predict(again) == predict(context)
    assert again.n == context.n and len(dump_context(context)) < 4096


def test_a_stream_is_judged_against_its_own_past() -> None:
    loud, quiet = _audio(), _audio()
    rng = np.random.default_rng(0)
    for _ in range(60):
        for context, level in ((loud, 10.0), (quiet, -10.0)):
            chunk = rng.normal(level, 0.1, len(AUDIO_MODEL_FEATURES))
            context.learn_one(chunk, context.judge(chunk).score)
    quiet_sound = np.full(len(AUDIO_MODEL_FEATURES), -10.0)
    assert loud.judge(quiet_sound).is_anomaly, "dead air in a loud stream is an anomaly"
    assert not quiet.judge(quiet_sound).is_anomaly, "a quiet stream being quiet is not"


def test_popularity_starts_as_the_simple_forecast_then_learns_the_trend() -> None:
    model = PopularityModel.create()
    current, previous = WindowCounts(plays=100), WindowCounts(plays=50)
    assert model.predict_one(current=current, previous=previous, elapsed=0.5) == pytest.approx(
        125.0
    )
    for _ in range(400):  # every track doubles window on window
        for plays in (10, 40, 160):
            model.learn_one(
                current=WindowCounts(plays=plays),
                previous=WindowCounts(plays=plays // 2),
                next_plays=plays * 2,
            )
    forecast = model.predict_one(
        current=WindowCounts(plays=80), previous=WindowCounts(plays=40), elapsed=1.0
    )
    assert 120 < forecast < 200  # learnt that growth continues (the naive forecast says 80)


def test_popularity_is_rivers_bayesian_linear_regression_kept_as_statistics() -> None:
    """Without forgetting, the posterior mean equals River's BayesianLinearRegression's."""
    ours = PopularityModel(forgetting=1.0)
    river = linear_model.BayesianLinearRegression(alpha=1, beta=1)
    rng = random.Random(1)
    for _ in range(500):
        c, p = WindowCounts(plays=rng.randint(0, 500)), WindowCounts(plays=rng.randint(0, 500))
        n = rng.randint(0, 500)
        x, scale = features(current=c, previous=p, elapsed=1.0), (c.plays + 1.0) ** 0.25
        river.learn_one(
            {k: v * scale for k, v in x.items()},
            (math.log(1 + n) - math.log(1 + c.plays)) * scale,
        )
        ours.learn_one(current=c, previous=p, next_plays=n)
    for plays in (5, 80, 400):
        x = features(
            current=WindowCounts(plays=plays), previous=WindowCounts(plays=40), elapsed=0.5
        )
        assert ours._correction(x) == pytest.approx(
            max(-3.0, min(3.0, river.predict_one(x))), abs=1e-9
        )


def test_model_quality_reaches_prometheus_with_bounded_labels() -> None:
    from prometheus_client import CollectorRegistry

    forecaster = PopularityModel.create()
    feed(forecaster, 50)
    # the listening models' quality, as the worker reads it from the store
    listening = ModelQuality(inputs=300, drifts=0, alarms=3, threshold=0.75, warming_up=False)
    registry = CollectorRegistry()
    Metrics(
        registry,
        models=lambda: [
            ("acme", "listening-anomaly", listening),
            ("acme", "popularity", forecaster.quality()),
        ],
    )
    value = registry.get_sample_value
    labels = {"tenant": "acme", "model": "listening-anomaly"}
    assert value("workers_model_inputs", labels) == 300
    assert value("workers_model_warming_up", labels) == 0
    assert 0 < value("workers_model_threshold", labels) <= 1  # type: ignore[operator]
    assert value(
        "workers_model_mae", {"tenant": "acme", "model": "popularity", "forecast": "naive"}
    )
