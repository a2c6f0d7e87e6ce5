"""River-style contract over every model kind, plus behaviour checks."""

import copy
import functools
import pickle
import random
import re

import orjson
import pytest

from workers.core.chunks import AUDIO_MODEL_FEATURES
from workers.core.models import AnomalyDetector, PopularityModel, WindowCounts
from workers.core.models.kinds import (
    AUDIO_MODEL,
    LISTENING_MODEL,
    POPULARITY_MODEL,
    model_factories,
)
from workers.state import MemoryStore
from workers.state import snapshots as snapshot
from workers.state.model_cache import ModelRegistry

KINDS = sorted(model_factories())


def inputs_of(model: object) -> tuple[str, ...]:
    """The feature names a model is fed in the worker."""
    if isinstance(model, AnomalyDetector) and hasattr(model.model, "directions"):
        return tuple(model.model.directions)
    return AUDIO_MODEL_FEATURES


def feed(model: object, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        if isinstance(model, AnomalyDetector):
            model.step({f: rng.random() for f in inputs_of(model)})
        else:
            assert isinstance(model, PopularityModel)
            c = WindowCounts(plays=rng.randint(0, 50), listeners=rng.randint(0, 20))
            model.learn_one(current=c, previous=c, next_plays=rng.randint(0, 60))


def predict(model: object) -> float:
    if isinstance(model, AnomalyDetector):
        return model.score_one(dict.fromkeys(inputs_of(model), 0.5))
    c = WindowCounts(plays=10, listeners=5)
    return model.predict_one(current=c, previous=c, elapsed=0.5)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
def test_pickle_round_trip_before_and_after_learning(kind: str) -> None:
    model = model_factories()[kind]()
    for n in (0, 300):
        feed(model, n)
        clone = pickle.loads(pickle.dumps(model))
        assert predict(clone) == predict(model)


@pytest.mark.parametrize("kind", KINDS)
def test_clone_is_independent(kind: str) -> None:
    model = model_factories()[kind]()
    feed(model, 50)
    clone = copy.deepcopy(model)
    before = predict(model)
    feed(clone, 300, seed=1)
    assert predict(model) == before


@pytest.mark.parametrize("kind", KINDS)
def test_snapshot_is_small_and_versioned(kind: str) -> None:
    model = model_factories()[kind]()
    feed(model, 1000)
    blob = snapshot.dump(model, tenant="acme", kind=kind)
    assert len(blob) <= 1024 * 1024
    header = snapshot.read_header(blob)
    assert header["kind"] == kind and header["format"] == 2 and header["river"]
    restored = snapshot.load(blob, tenant="acme", kind=kind, model_version=model.version)
    assert predict(restored) == predict(model)
    with pytest.raises(snapshot.SnapshotError):
        snapshot.load(blob, tenant="acme", kind="something-else")
    with pytest.raises(snapshot.SnapshotError):
        snapshot.load(blob, tenant="beats", kind=kind)
    with pytest.raises(snapshot.SnapshotError):
        snapshot.load(blob[:-20], tenant="acme", kind=kind)
    with pytest.raises(snapshot.SnapshotError, match="model"):
        snapshot.load(blob, tenant="acme", kind=kind, model_version="another-design-v9")


@pytest.mark.parametrize("kind", ["audio-anomaly", "listening-anomaly"])
def test_detectors_handle_missing_and_new_features(kind: str) -> None:
    detector = model_factories()[kind]()
    feed(detector, 300)
    names = inputs_of(detector)
    partial = dict.fromkeys(names[: len(names) // 2], 0.5)
    for x in (partial, {**partial, "brand_new_feature": 0.9}, {}):
        verdict = detector.step(x)
        assert 0.0 <= verdict.score <= 1.0
        assert 0.0 <= verdict.percentile <= 1.0


def test_warm_up_suppresses_alarms_then_outliers_are_flagged() -> None:
    detector = AnomalyDetector.create(warmup=200)
    rng = random.Random(3)
    early = [
        detector.step({"a": rng.gauss(0.5, 0.02), "b": rng.gauss(0.5, 0.02)}) for _ in range(200)
    ]
    assert not any(v.is_anomaly for v in early)
    for _ in range(800):
        detector.step({"a": rng.gauss(0.5, 0.02), "b": rng.gauss(0.5, 0.02)})
    normal = [
        detector.step({"a": rng.gauss(0.5, 0.02), "b": rng.gauss(0.5, 0.02)}) for _ in range(200)
    ]
    outliers = [detector.step({"a": 0.05, "b": 0.95}, learn=False) for _ in range(20)]
    assert sum(v.is_anomaly for v in normal) <= 10
    assert sum(v.is_anomaly for v in outliers) >= 18
    assert min(v.score for v in outliers) > max(v.score for v in normal[:50]) - 0.2


def test_popularity_starts_as_the_simple_forecast_then_learns_the_trend() -> None:
    model = PopularityModel.create()
    current, previous = WindowCounts(plays=30), WindowCounts(plays=50)
    assert model.predict_one(current=current, previous=previous, elapsed=0.5) == pytest.approx(
        30 + 50 * 0.5
    )
    for plays in range(40, 200):  # a steadily growing track: next = 1.1 x this window
        model.learn_one(
            current=WindowCounts(plays=plays, listeners=plays // 2),
            previous=WindowCounts(plays=int(plays / 1.1)),
            next_plays=int(plays * 1.1),
        )
    forecast = model.predict_one(
        current=WindowCounts(plays=100, listeners=50), previous=WindowCounts(plays=91), elapsed=1.0
    )
    assert 90 < forecast < 130


async def test_registry_restores_from_checkpoint_and_bounds_memory() -> None:
    store = MemoryStore()
    registry = ModelRegistry(store, model_factories(), max_models=2)
    model = await registry.get("acme", AUDIO_MODEL)
    feed(model, 100)
    registry.touched("acme", AUDIO_MODEL)
    assert await registry.checkpoint() == 1
    other = ModelRegistry(store, model_factories())
    restored = await other.get("acme", AUDIO_MODEL)
    assert restored.seen == 100 and other.restored == 1
    for tenant in ("b", "c", "d"):
        (await registry.get(tenant, AUDIO_MODEL)).step({"a": 1.0})
        registry.touched(tenant, AUDIO_MODEL)
    assert len(registry) == 2
    assert await store.load_snapshot("b", AUDIO_MODEL) is not None  # saved on eviction


async def test_model_quality_reaches_prometheus_with_bounded_labels() -> None:
    from prometheus_client import generate_latest

    from workers.runtime.metrics import Metrics

    store = MemoryStore()
    registry = ModelRegistry(store, model_factories())
    metrics = Metrics(live_models=registry.live)
    for tenant in ("acme", "beats"):
        feed(await registry.get(tenant, LISTENING_MODEL), 300)
        feed(await registry.get(tenant, POPULARITY_MODEL), 50)
    text = generate_latest(metrics.registry).decode()
    assert 'workers_model_inputs_total{model="listening-anomaly",tenant="acme"} 300.0' in text
    assert 'workers_model_mae{forecast="naive",model="popularity",tenant="beats"}' in text
    assert 'workers_model_warming_up{model="listening-anomaly",tenant="beats"} 0.0' in text
    tenants = set(re.findall(r'^workers_model_\w+\{[^}]*tenant="([^"]+)"', text, re.M))
    assert tenants == {"acme", "beats"}


def _key(byte: int) -> str:
    import base64

    return base64.b64encode(bytes([byte]) * 32).decode()


def test_snapshots_are_encrypted_at_rest_and_survive_key_rotation() -> None:
    from workers.state.keyring import Keyring

    model = model_factories()["listening-anomaly"]()
    feed(model, 300)
    old = Keyring.parse(f"k1:{_key(1)}")
    blob = snapshot.dump(model, tenant="acme", kind="listening-anomaly", keyring=old)
    header = snapshot.read_header(blob)
    assert header["enc"] == "aes-256-gcm" and header["kid"] == "k1"
    plain = snapshot.dump(model, tenant="acme", kind="listening-anomaly")
    assert plain[-200:] not in blob  # no plaintext pickle bytes at rest
    rotated = Keyring.parse(f"k2:{_key(2)},k1:{_key(1)}")  # new key first, old kept
    load = functools.partial(snapshot.load, tenant="acme", kind="listening-anomaly")
    assert predict(load(blob, keyring=rotated)) == predict(model)
    rewritten = snapshot.dump(model, tenant="acme", kind="listening-anomaly", keyring=rotated)
    assert snapshot.read_header(rewritten)["kid"] == "k2"
    with pytest.raises(snapshot.SnapshotRefused, match="not configured"):
        load(blob, keyring=Keyring.parse(f"k2:{_key(2)}"))
    with pytest.raises(snapshot.SnapshotError, match="no snapshot keys"):
        load(blob)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(snapshot.SnapshotRefused, match="tampered"):
        load(tampered, keyring=rotated)
    # with keys set, a plaintext snapshot is refused: anyone who can write Redis could plant it
    with pytest.raises(snapshot.SnapshotRefused, match="plaintext"):
        load(plain, keyring=rotated)
    # another tenant's snapshot put under this tenant's key is refused, and so is a header
    # rewritten to claim this tenant (it is authenticated with the ciphertext)
    theirs = snapshot.dump(model, tenant="beat", kind="listening-anomaly", keyring=rotated)
    with pytest.raises(snapshot.SnapshotRefused, match="misplaced"):
        load(theirs, keyring=rotated)
    forged = theirs.replace(b'"tenant":"beat"', b'"tenant":"acme"', 1)
    with pytest.raises(snapshot.SnapshotRefused, match="tampered"):
        load(forged, keyring=rotated)


def test_a_planted_pickle_cannot_run_code() -> None:
    import os
    import pickle
    import zlib

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("touch /tmp/pwned-by-snapshot",))

    header = orjson.dumps(
        {
            "format": snapshot.FORMAT_VERSION,
            "river": snapshot.RIVER_VERSION,
            "tenant": "acme",
            "kind": "popularity",
            "model": "blr-residual-v2",
        }
    )
    body = zlib.compress(pickle.dumps(Exploit()))
    blob = snapshot.MAGIC + len(header).to_bytes(2, "big") + header + body
    with pytest.raises(snapshot.SnapshotRefused, match="forbidden-global"):
        snapshot.load(blob, tenant="acme", kind="popularity")


async def test_a_refused_snapshot_is_kept_and_the_tenant_runs_fresh() -> None:
    from workers.state.keyring import Keyring

    keyring = Keyring.parse(f"k1:{_key(1)}")
    store = MemoryStore()
    plain = snapshot.dump(PopularityModel.create(), tenant="acme", kind="popularity")
    await store.save_snapshots({("acme", "popularity"): plain})
    registry = ModelRegistry(store, model_factories(), keyring=keyring)
    model = await registry.get("acme", POPULARITY_MODEL)
    assert model.trained == 0 and registry.not_restored == {"plaintext": 1}
    registry.touched("acme", POPULARITY_MODEL)
    assert await registry.checkpoint() == 0, "the refused snapshot is not overwritten"
    assert await store.load_snapshot("acme", "popularity") == plain
    await store.save_snapshots({("acme", "popularity"): b"\x00"})  # an operator replaced it
    registry.touched("acme", POPULARITY_MODEL)
    assert await registry.checkpoint() == 1


async def test_a_snapshot_of_another_river_version_starts_fresh_and_is_replaced() -> None:
    store = MemoryStore()
    model = PopularityModel.create()
    blob = snapshot.dump(model, tenant="acme", kind="popularity")
    stale = blob.replace(snapshot.RIVER_VERSION.encode(), b"0.0.1", 1)
    await store.save_snapshots({("acme", "popularity"): stale})
    registry = ModelRegistry(store, model_factories())
    await registry.get("acme", POPULARITY_MODEL)
    assert registry.not_restored == {"stale": 1}
    registry.touched("acme", POPULARITY_MODEL)
    assert await registry.checkpoint() == 1
    assert await store.load_snapshot("acme", "popularity") != stale


@pytest.mark.parametrize("setting", ["", "nokey", "k1:not-base64!", f"k1:{'QUJD'}"])
def test_bad_key_settings_are_refused(setting: str) -> None:
    from workers.state.keyring import Keyring, SnapshotKeyError

    with pytest.raises(SnapshotKeyError):
        Keyring.parse(setting)
