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

from workers.core.chunks import AUDIO_MODEL_FEATURES, StreamMemory
from workers.core.models import Model, ModelQuality, PopularityModel, StreamContext
from workers.core.models.popularity import (
    EXPERTS,
    HOUR_MS,
    VERSION,
    Profile,
    Series,
    combine,
    experts,
    weights,
)
from workers.core.models.stream_context import dump_context, load_context
from workers.runtime.metrics import Metrics


def _audio() -> StreamContext:
    return StreamMemory.fresh().context


class Forecaster:
    """A tenant's forecaster with one track, as the store drives it: plays teach the
    profile and the level, each finished hour's forecast becomes a label, and the model
    the store returns is the experts and their weights (``models/popularity.py``)."""

    version = VERSION

    def __init__(self) -> None:
        self.profile, self.series = Profile(), Series()
        self.hour, self.counts = 0, [0]

    def play_hour(self, plays: int) -> None:
        before = self.forecast()
        for i in range(plays):
            ts = self.hour * HOUR_MS + (i * HOUR_MS) // max(plays, 1)
            self.profile.add(ts)
            share = self.profile.share(ts // HOUR_MS % 24, ts)
            self.series.add(ts, share, window=self.hour, day_windows=24)
        if self.hour > 0:
            self.profile.learn(self.series, before, plays, 1.0 - 1.0 / 2000)
        self.counts.append(plays)
        self.hour += 1

    def forecast(self) -> tuple[float, ...]:
        end = self.hour * HOUR_MS - 1
        return experts(
            self.profile,
            self.series,
            ts=max(end, 0),
            window=self.hour - 1,
            window_ms=HOUR_MS,
            current=self.counts[-1],
            previous=self.counts[-2] if len(self.counts) > 1 else 0,
        )

    def model(self) -> PopularityModel:
        p = self.profile
        return PopularityModel(
            forecast=self.forecast(),
            weights=weights(p, self.series, 1.0 - 1.0 / 2000),
            trained=p.trained,
            mae=p.mae,
            naive_mae=p.naive_mae,
            seasonal_mae=p.seasonal_mae,
        )

    def explain_one(self, x: object = None) -> list[str]:
        return self.model().explain_one(x)

    def quality(self) -> ModelQuality:
        return self.model().quality()


KINDS: dict[str, Callable[[], Model]] = {
    "audio-anomaly": _audio,
    "popularity": Forecaster,
}


def feed(model: Model, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        if isinstance(model, StreamContext):
            chunk = np.array([rng.gauss(0, 1) for _ in AUDIO_MODEL_FEATURES])
            model.learn_one(chunk, model.judge(chunk).score)
        else:
            assert isinstance(model, Forecaster)
            trained = model.profile.trained
            while model.profile.trained == trained:
                model.play_hour(rng.randint(0, 60))


def predict(model: Model) -> float:
    if isinstance(model, StreamContext):
        return model.judge(np.full(len(AUDIO_MODEL_FEATURES), 0.5)).score
    assert isinstance(model, Forecaster)
    return model.model().predict()


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
    return None


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
        if not isinstance(model, Forecaster):
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


def test_the_daily_profile_reads_plays_per_hour_observed() -> None:
    """Evenings twice as busy read as such; an hour not lived through yet is average, and
    the hour under way is not read as quiet because it has only just begun."""
    ratios = []
    profile = Profile()
    for day in range(14):
        for hour in range(24):
            for i in range(20 if hour >= 18 else 10):
                profile.add((day * 24 + hour) * HOUR_MS + i * 60_000)
        now = (day + 1) * 24 * HOUR_MS
        ratios.append(profile.share(20, now) / profile.share(3, now))
    # shrunk toward a flat day by one hour's worth, less so as the days add up
    assert 1.6 < ratios[2] < ratios[6] < ratios[13] < 2.0
    young = Profile()
    young.add(5 * HOUR_MS + 10)
    young.add(5 * HOUR_MS + 20)
    assert young.share(17, 5 * HOUR_MS + 60_000) == 1.0, "not observed yet"
    early = 5 * HOUR_MS + 60_000
    assert young.share(5, early) > young.share(4, early), "two plays in its first minute"


def test_levels_do_not_depend_on_the_order_plays_arrive_in() -> None:
    """Forward decay: the same plays in any order give the same level (a backlog gives
    the answers live traffic gives)."""
    rng = random.Random(3)
    plays = sorted(rng.randint(0, 50 * HOUR_MS) for _ in range(400))
    shuffled = plays[:]
    rng.shuffle(shuffled)
    a, b = Series(), Series()
    for series, order in ((a, plays), (b, shuffled)):
        for ts in order:
            series.add(ts, 1.0, window=ts // HOUR_MS, day_windows=24)
    now = 50 * HOUR_MS
    assert a.rate(now) == pytest.approx(b.rate(now), rel=1e-12)
    assert a.rate(now, recent=True) == pytest.approx(b.rate(now, recent=True), rel=1e-12)
    assert a.first == b.first == plays[0]


def test_the_seasonal_expert_reads_the_same_hour_yesterday() -> None:
    profile, series = Profile(), Series()
    for hour in range(30):
        for i in range(hour % 24):  # hour h of each day gets h plays
            ts = hour * HOUR_MS + i * 1000
            profile.add(ts)
            series.add(ts, profile.share(ts // HOUR_MS % 24, ts), window=hour, day_windows=24)
    naive, seasonal, level, recent = experts(
        profile, series, ts=30 * HOUR_MS - 1, window=29, window_ms=HOUR_MS, current=5, previous=4
    )
    assert seasonal == 6.0, "window 30 is hour 6: yesterday's hour 6 had 6 plays"
    assert naive == pytest.approx(5.0, abs=1e-6)
    assert level > 0 and recent > 0


def test_hedge_follows_the_expert_that_is_right_for_each_track() -> None:
    """The tenant learns which expert is right for most tracks; a track where another one
    is right moves to it within a day of its own labels, starting from the tenant's."""
    profile = Profile()
    steady, odd = Series(), Series()
    forgetting = 1.0 - 1.0 / 2000
    for _ in range(300):  # most tracks: the level is right, naive is noisy
        profile.learn(Series(), (14.0, 20.0, 10.0, 10.5), 10, forgetting)
    start = weights(profile, odd, forgetting)
    assert EXPERTS[int(np.argmax(start))] == "level", "a new track starts from the tenant"
    for _ in range(24):  # this track: naive is right
        profile.learn(odd, (30.0, 5.0, 10.0, 12.0), 30, forgetting)
    after = weights(profile, odd, forgetting)
    assert EXPERTS[int(np.argmax(after))] == "naive" and after[0] > 0.9
    assert EXPERTS[int(np.argmax(weights(profile, steady, forgetting)))] == "level"
    assert combine((30.0, 5.0, 10.0, 12.0), after) == pytest.approx(30.0, rel=0.05)


def test_model_quality_reaches_prometheus_with_bounded_labels() -> None:
    from prometheus_client import CollectorRegistry

    forecaster = Forecaster()
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
    for forecast in ("model", "naive", "seasonal"):
        labels = {"tenant": "acme", "model": "popularity", "forecast": forecast}
        assert value("workers_model_mae", labels) is not None
