"""The tagger's pure parts and its step, with the shipped weights and the in-memory store."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import chunk_record, schema_error
from workers.core.errors import Reason
from workers.core.records import TAGS
from workers.core.tagging import (
    CheckpointError,
    TagModel,
    TagState,
    WeightsMissing,
    frame,
    locate_weights,
    log_mel_frames,
    read_bundle,
)
from workers.core.tagging import model as model_module
from workers.core.tagging.checkpoint import write_bundle
from workers.core.tagging.labels import GENRES, LABELS, MOODS
from workers.pipeline.tagging import TaggingStep
from workers.state import MemoryStore
from workers.state.catalogue import MemoryCatalogue

RNG = np.random.default_rng(7)
AUDIO = (0.3 * RNG.standard_normal(16000 * 7)).astype(np.float32)


@pytest.fixture(scope="module")
def model() -> TagModel:
    return TagModel.load("MSD_musicnn")


def test_the_shipped_checkpoints_read_without_tensorflow(model: TagModel) -> None:
    assert model.net.n_tags == 50 and model.version.startswith("MSD_musicnn/")
    mtt = TagModel.load("MTT_musicnn")
    assert mtt.labels == LABELS["MTT_musicnn"]


def test_genres_and_moods_are_tags_of_the_models() -> None:
    tags = set(LABELS["MSD_musicnn"]) | set(LABELS["MTT_musicnn"])
    assert tags >= GENRES and tags >= MOODS and not GENRES & MOODS


def test_the_packaged_weights_are_musicnns_checkpoints_and_need_no_musicnn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The arrays in the package are the original checkpoints' (the parity tests' musicnn
    wheel has them), bit for bit, and load with musicnn's package out of reach."""
    for name in ("MSD_musicnn", "MTT_musicnn"):
        shipped = model_module.shipped_weights(name)
        original = read_bundle(str(locate_weights(name)) + "/")
        assert len(shipped) == 64
        for key, value in shipped.items():
            np.testing.assert_array_equal(value, original[key])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    loaded = TagModel.load("MTT_musicnn")
    assert loaded.version == "MTT_musicnn/musicnn-0.1.0"


def test_weights_that_do_not_match_their_digest_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = Path(model_module.__file__).parent / "weights" / "MSD_musicnn.npz"
    damaged = bytearray(shipped.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (tmp_path / "MSD_musicnn.npz").write_bytes(bytes(damaged))
    monkeypatch.setattr(model_module, "_SHIPPED_DIR", tmp_path)
    with pytest.raises(WeightsMissing, match="SHA-256"):
        TagModel.load("MSD_musicnn")
    monkeypatch.setattr(model_module, "_SHIPPED_DIR", tmp_path / "gone")
    with pytest.raises(WeightsMissing, match="reinstall"):
        TagModel.load("MSD_musicnn")


def test_missing_weights_say_how_to_install_them(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissing):
        TagModel.load("MSD_musicnn", weights_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown tagging model"):
        TagModel.load("nope")


def test_a_bundle_round_trips(tmp_path: Path) -> None:
    tensors = {"a/b": RNG.standard_normal((3, 4)).astype(np.float32), "c": np.arange(5)}
    write_bundle(tmp_path / "m", tensors)
    read = read_bundle(tmp_path / "m")
    assert sorted(read) == ["a/b", "c"]
    np.testing.assert_array_equal(read["a/b"], tensors["a/b"])
    np.testing.assert_array_equal(read["c"], tensors["c"])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=200))
def test_a_damaged_index_is_a_checkpoint_error(garbage: bytes, cut: int) -> None:
    """Outside input (a weights folder): damage is reported as such, never a crash."""
    import tempfile

    folder = Path(tempfile.mkdtemp())
    write_bundle(folder / "m", {"w": np.ones(3, np.float32)})
    index = (folder / "m.index").read_bytes()
    (folder / "m.index").write_bytes(index[:cut] + garbage + index[cut + len(garbage) :])
    with contextlib.suppress(CheckpointError):
        read_bundle(folder / "m")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=9000), min_size=1, max_size=12))
def test_framing_does_not_depend_on_chunk_sizes(sizes: list[int]) -> None:
    whole, _ = log_mel_frames(AUDIO, carry=None)
    pieces, carry, start = [], None, 0
    for size in sizes * 20:
        if start >= AUDIO.size:
            break
        frames, carry = log_mel_frames(AUDIO[start : start + size], carry=carry)
        pieces.append(frames)
        start += size
    streamed = np.concatenate(pieces)
    n = min(len(streamed), len(whole) - 1)  # the last whole-signal frame sees end padding
    np.testing.assert_array_equal(streamed[:n], whole[:n])


def test_patches_follow_the_cadence_and_the_state_round_trips() -> None:
    state, tagged = TagState(), []
    for start in range(0, AUDIO.size, 4000):
        state, patches = frame(state, AUDIO[start : start + 4000], every=2)
        tagged += [p.index for p in patches]
        state = TagState.from_bytes(state.to_bytes())
    assert state.patches == 2 and tagged == [0]
    done = state.with_tagged(np.full((1, 50), 0.5, np.float32), np.ones((1, 200), np.float32))
    again = TagState.from_bytes(done.to_bytes())
    assert again.tagged == 1 and again.mean_tags()[0] == 0.5
    assert again.frames.shape == state.frames.shape


def chunks(tenant: str, stream: str, *, seconds: float, sr: int = 44100, first: int = 0):
    audio = np.repeat(
        (0.2 * np.random.default_rng(3).standard_normal(int(seconds * sr)))[:, None], 2, axis=1
    )
    step = sr // 2
    for seq, start in enumerate(range(0, audio.shape[0], step), start=first):
        yield chunk_record(tenant, stream, seq, sr=sr, samples=audio[start : start + step])


async def test_the_step_tags_each_window_once(model: TagModel) -> None:
    store = MemoryStore()
    catalogue = MemoryCatalogue(store, model=model.name)
    step = TaggingStep(tenants=["acme"], store=store, model=model)
    outputs = []
    for record in chunks("acme", "s1", seconds=6.5):
        outcome = await step.process(record)
        assert outcome.ignored is None
        outputs += outcome.outputs
    assert [o.value["window"]["index"] for o in outputs] == [0, 1]  # type: ignore[index]
    for output in outputs:
        assert output.topic == TAGS and output.key == "acme/s1"
        assert schema_error(TAGS, {**output.value, "latency_ms": 1.0}) is None  # type: ignore[dict-item]
    last = outputs[-1].value
    assert last["aggregate"]["windows"] == 2  # type: ignore[index]
    assert sum(last["stems"].values()) == pytest.approx(1.0, abs=1e-3)  # type: ignore[attr-defined]
    assert sum(last["aggregate"]["stems"].values()) == pytest.approx(1.0, abs=1e-3)  # type: ignore[index]
    ai = last["ai_music"]
    assert ai["flag"] is None and ai["seconds"] == 6.5 and ai["score"] < 0.5  # type: ignore[index]
    changed = await catalogue.embeddings_since("acme", 0)
    assert changed.ids == ("s1",) and changed.vectors.shape == (1, 200)
    assert abs(float(np.linalg.norm(changed.vectors[0])) - 1.0) < 1e-5


async def test_a_chunk_read_again_gets_its_outputs_back(model: TagModel) -> None:
    store = MemoryStore()
    step = TaggingStep(tenants=["acme"], store=store, model=model)
    records = list(chunks("acme", "s2", seconds=3.5))
    tagged = [await step.process(r) for r in records]
    (window,) = [o for outcome in tagged for o in outcome.outputs]
    restarted = TaggingStep(
        tenants=["acme"],
        store=dataclasses.replace(store, incarnation="other"),
        model=model,
    )
    completing = next(r for r, o in zip(records, tagged, strict=True) if o.outputs)
    again = await restarted.process(completing)
    assert [o.value for o in again.outputs] == [{**window.value, "replay": True}]  # type: ignore[dict-item]
    earlier = await restarted.process(records[0])  # nothing was published for it
    assert earlier.outputs == [] and earlier.ignored is None


async def test_what_the_core_dead_letters_the_tagger_ignores(model: TagModel) -> None:
    store = MemoryStore()
    step = TaggingStep(tenants=["acme"], store=store, model=model)
    bad = dataclasses.replace(chunk_record("acme", "s3", 0), value=b"\x01")
    assert (await step.process(bad)).ignored is Reason.TRUNCATED_PCM
    stranger = chunk_record("other", "s3", 0)
    assert (await step.process(stranger)).ignored is Reason.UNKNOWN_TENANT
    first = chunk_record("acme", "s3", 0)
    await step.process(first)
    repeat = dataclasses.replace(chunk_record("acme", "s3", 0), offset=9)
    assert (await step.process(repeat)).ignored is Reason.DUPLICATE_CHUNK


async def test_a_gap_restarts_the_framing_but_keeps_the_aggregate(model: TagModel) -> None:
    store = MemoryStore()
    step = TaggingStep(tenants=["acme"], store=store, model=model)
    windows = []
    for record in chunks("acme", "s4", seconds=4.0):
        windows += (await step.process(record)).outputs
    for record in chunks("acme", "s4", seconds=4.0, first=20):
        windows += (await step.process(record)).outputs
    assert [w.value["window"]["index"] for w in windows] == [0, 1]  # type: ignore[index]
    assert windows[-1].value["aggregate"]["windows"] == 2  # type: ignore[index]


async def test_a_tagger_behind_tags_fewer_windows(model: TagModel) -> None:
    store = MemoryStore()
    step = TaggingStep(
        tenants=["acme"],
        store=store,
        model=model,
        degraded_every=2,
    )
    windows = []
    for record in chunks("acme", "s5", seconds=13.0):
        windows += (await step.process(record, degraded=True)).outputs
    assert [w.value["window"]["index"] for w in windows] == [0, 2]  # type: ignore[index]
