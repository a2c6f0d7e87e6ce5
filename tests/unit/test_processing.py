import asyncio
import dataclasses

import numpy as np
import pytest

from tests.helpers import chunk_record, event_record, schema_error, tone
from workers.core.chunks import StreamMemory
from workers.core.errors import Reason
from workers.core.records import (
    ACCOUNTS,
    ANOMALY,
    AUDIO_FEATURES,
    DEADLETTER,
    POPULARITY,
    Record,
)
from workers.pipeline.audio import AudioStep
from workers.pipeline.listening import ListeningStep
from workers.state import MemoryStore


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def audio(store: MemoryStore) -> AudioStep:
    return AudioStep(
        tenants=["acme", "beats"],
        store=store,
        model_rate=22050,
    )


@pytest.fixture
def listening(store: MemoryStore) -> ListeningStep:
    return ListeningStep(
        tenants=["acme", "beats"],
        store=store,
        window_s=3600,
    )


async def test_audio_chunk_gives_features_and_a_score(audio: AudioStep) -> None:
    outcome = await audio.process(chunk_record("acme", "s1", 0))
    assert outcome.rejected is None
    assert [o.topic for o in outcome.outputs] == [AUDIO_FEATURES, ANOMALY]
    for output in outcome.outputs:
        assert isinstance(output.value, dict)
        assert schema_error(output.topic, {**output.value, "latency_ms": 1.0}) is None
        assert output.key == "acme/s1"
    assert set(outcome.stages) >= {"validate", "decode", "state", "features"}  # model: in features


@pytest.mark.parametrize("channels", [1, 2, 6, 8])
@pytest.mark.parametrize("sr", [8000, 22050, 48000, 192000])
async def test_any_rate_and_channel_count(audio: AudioStep, sr: int, channels: int) -> None:
    outcome = await audio.process(
        chunk_record(
            "acme",
            f"s{sr}-{channels}",
            0,
            sr=sr,
            channels=channels,
            samples=tone(sr=sr, channels=channels, seconds=0.2),
        )
    )
    assert outcome.rejected is None
    features = outcome.outputs[0].value["features"]  # type: ignore[index]
    assert abs(features["spectral_centroid"] - 440) < 60


async def test_seq_gap_is_flagged_and_repeat_is_a_dead_letter(audio: AudioStep) -> None:
    await audio.process(chunk_record("acme", "s1", 0))
    gap = await audio.process(chunk_record("acme", "s1", 5))
    assert gap.outputs[0].value["quality"]["seq_gap"] is True  # type: ignore[index]
    assert gap.outputs[1].value["is_anomaly"] is True  # type: ignore[index]
    repeat = await audio.process(chunk_record("acme", "s1", 5, offset=6))  # another record
    assert repeat.rejected is not None and repeat.rejected.reason is Reason.DUPLICATE_CHUNK
    older = await audio.process(chunk_record("acme", "s1", 3, offset=7))
    assert older.rejected is not None and older.rejected.reason is Reason.DUPLICATE_CHUNK


async def test_a_re_read_chunk_is_re_emitted_as_a_replay_and_not_learnt_twice(
    audio: AudioStep, store: MemoryStore
) -> None:
    first = [await audio.process(chunk_record("acme", "re", seq)) for seq in range(3)]
    memory = StreamMemory.from_bytes(await store.load_stream("acme", "re") or b"")
    # another worker (another incarnation) reads the same records again, after a crash
    restarted = AudioStep(
        tenants=["acme"],
        store=dataclasses.replace(store, incarnation="the-next-worker"),
        model_rate=22050,
    )
    again = [await restarted.process(chunk_record("acme", "re", seq)) for seq in range(3)]
    after = StreamMemory.from_bytes(await store.load_stream("acme", "re") or b"")
    assert after.context.n == memory.context.n == 3, "nothing learnt twice"
    for before, replayed in zip(first, again, strict=True):
        assert replayed.rejected is None and replayed.anomalies == 0
        assert [o.topic for o in replayed.outputs] == [o.topic for o in before.outputs]
        for old, new in zip(before.outputs, replayed.outputs, strict=True):
            assert new.key == old.key
            assert new.value == {**old.value, "replay": True}  # type: ignore[dict-item]
            assert old.value["replay"] is False  # type: ignore[index]


async def test_a_retry_of_ones_own_save_is_no_replay(audio: AudioStep, store: MemoryStore) -> None:
    """The save went through but its answer was lost: the same process tries again; the
    stream's model learnt the chunk once, with the save."""
    first = await audio.process(chunk_record("acme", "own", 0))
    retried = await audio.process(chunk_record("acme", "own", 0))
    assert [o.value for o in retried.outputs] == [o.value for o in first.outputs]
    assert all(o.value["replay"] is False for o in retried.outputs)  # type: ignore[index]
    memory = StreamMemory.from_bytes(await store.load_stream("acme", "own") or b"")
    assert memory.context.n == 1


async def test_stream_state_carries_frames_across_chunks(
    audio: AudioStep, store: MemoryStore
) -> None:

    for seq in range(4):
        outcome = await audio.process(chunk_record("acme", "cont", seq))
        assert outcome.rejected is None
        assert not outcome.outputs[0].value["quality"]["seq_gap"]  # type: ignore[index]
    blob = await store.load_stream("acme", "cont")
    assert blob is not None
    state = StreamMemory.from_bytes(blob).framing
    assert state.seq == 3
    # 4 x 0.5 s at 22.05 kHz, framed continuously (less the resampler's start-up delay)
    assert 1 + (4 * 11025 - 2048) // 512 - 2 <= state.frames_seen <= 1 + (4 * 11025 - 2048) // 512
    assert 0 < state.carry.size < 2048


async def test_a_worker_restart_resumes_the_stream_from_the_store(store: MemoryStore) -> None:
    def processor() -> AudioStep:
        return AudioStep(
            tenants=["acme"],
            store=store,
            model_rate=22050,
        )

    await processor().process(chunk_record("acme", "resume", 0))
    outcome = await processor().process(chunk_record("acme", "resume", 1))
    assert outcome.rejected is None
    assert not outcome.outputs[0].value["quality"]["seq_gap"]  # type: ignore[index]


async def test_clipping_is_reported(audio: AudioStep) -> None:
    loud = np.clip(tone() * 10, -1, 1)
    outcome = await audio.process(chunk_record("acme", "s1", 0, samples=loud))
    anomaly = outcome.outputs[1].value
    assert "clipping" in anomaly["reasons"] and anomaly["is_anomaly"]  # type: ignore[index]


async def test_unknown_tenant_and_bad_key(audio: AudioStep) -> None:
    outcome = await audio.process(chunk_record("mallory", "s1", 0))
    assert outcome.rejected.reason is Reason.UNKNOWN_TENANT  # type: ignore[union-attr]
    record = chunk_record("acme", "s1", 0)
    wrong_key = Record(record.topic, 1, 7, b"beats/s1", record.value, record.headers)
    outcome = await audio.process(wrong_key)
    assert outcome.rejected.reason is Reason.BAD_KEY  # type: ignore[union-attr]
    (letter,) = outcome.outputs
    assert letter.topic == DEADLETTER and letter.value == record.value
    headers = dict(letter.headers)
    assert headers["source-partition"] == b"1" and headers["source-offset"] == b"7"
    assert headers["error"] == b"bad-key"


async def test_listening_event_gives_anomaly_and_popularity(listening: ListeningStep) -> None:
    (outcome,) = await listening.process_batch([event_record("acme", "u1", "e1")])
    assert outcome.rejected is None
    # a listener's first event also gives its first account verdict
    assert [o.topic for o in outcome.outputs] == [ANOMALY, POPULARITY, ACCOUNTS]
    for output in outcome.outputs:
        assert schema_error(output.topic, {**output.value, "latency_ms": 1.0}) is None  # type: ignore[dict-item]
    assert outcome.outputs[1].value["plays"] == 1  # type: ignore[index]


async def test_batch_mixes_good_bad_and_duplicates_in_order(listening: ListeningStep) -> None:
    records = [
        event_record("acme", "u1", "e1", offset=0),
        Record("listening.events", 0, 1, b"acme/u1", b"{"),
        event_record("acme", "u1", "e1", offset=2),  # the same event_id in another record
        event_record("beats", "u1", "e1", offset=3),
    ]
    outcomes = await listening.process_batch(records)
    assert [o.rejected.reason if o.rejected else None for o in outcomes] == [
        None,
        Reason.MALFORMED_JSON,
        Reason.DUPLICATE_EVENT,
        None,
    ]
    assert all(
        [o.topic for o in o.outputs][:2] == ([DEADLETTER] if o.rejected else [ANOMALY, POPULARITY])
        for o in outcomes
    )


async def test_popularity_counts_plays_per_event_time_window(listening: ListeningStep) -> None:
    hour = 3_600_000
    records = [
        event_record("acme", f"u{i}", f"e{i}", ts=1_764_000_000_000 + i * 60_000) for i in range(5)
    ]
    records.append(event_record("acme", "u9", "late", ts=1_764_000_000_000 + 2 * hour))
    outcomes = await listening.process_batch(records)
    plays = [o.outputs[1].value["plays"] for o in outcomes]  # type: ignore[index]
    assert plays[:5] == [1, 2, 3, 4, 5]
    assert plays[5] == 1
    assert outcomes[4].outputs[1].value["listeners"] == 5  # type: ignore[index]


async def test_tenants_never_share_state(store: MemoryStore, listening: ListeningStep) -> None:
    await listening.process_batch([event_record("beats", "u1", "b1")])
    before = {k: dict(v) for k, v in store.hashes.items() if k.startswith("{beats}:")}
    await listening.process_batch([event_record("acme", "u1", f"a{i}") for i in range(20)])
    after = {k: dict(v) for k, v in store.hashes.items() if k.startswith("{beats}:")}
    assert before == after
    assert all(
        k.startswith(("{acme}:", "{beats}:")) for k in [*store.hashes, *store.sets, *store.seen]
    )


async def test_a_replayed_record_is_re_emitted_not_applied_twice(
    listening: ListeningStep, store: MemoryStore
) -> None:
    first = event_record("acme", "u1", "e1", offset=10)
    (original,) = await listening.process_batch([first])
    assert original.on_delivered is not None
    original.on_delivered(True)  # the broker acknowledged the outputs ...
    await asyncio.sleep(0)
    await listening.noted()  # ... and the verdict's note reached the store before the crash
    restarted = ListeningStep(  # another worker reads the record again, after a crash
        tenants=["acme"],
        store=dataclasses.replace(store, incarnation="the-next-worker"),
        window_s=3600,
    )
    (replayed,) = await restarted.process_batch([first])
    assert replayed.rejected is None
    assert [o.value["replay"] for o in replayed.outputs] == [True, True]  # type: ignore[index]
    # the account verdict went out with the original (and was noted): not again
    assert [o.topic for o in original.outputs] == [ANOMALY, POPULARITY, ACCOUNTS]
    assert [o.value["replay"] for o in original.outputs[:2]] == [False, False]  # type: ignore[index]
    assert replayed.outputs[1].value["plays"] == original.outputs[1].value["plays"] == 1  # type: ignore[index]
    assert store.hashes["{acme}:user:u1"]["events"] == 1
    # the same event_id from another record is a genuine duplicate
    (duplicate,) = await listening.process_batch([event_record("acme", "u1", "e1", offset=11)])
    assert duplicate.rejected is not None and duplicate.rejected.reason is Reason.DUPLICATE_EVENT


async def test_strict_isolation_the_topic_owner_is_the_only_tenant(
    audio: AudioStep, listening: ListeningStep
) -> None:
    from dataclasses import replace

    def on(owner: str, record: Record) -> Record:
        return replace(record, topic=f"{owner}.{record.topic}", owner=owner)

    own = await audio.process(on("acme", chunk_record("acme", "iso", 0)))
    assert own.rejected is None and own.record.kind == "audio.chunks"
    forged = await audio.process(on("acme", chunk_record("beats", "iso", 0)))
    assert forged.rejected is not None and forged.rejected.reason is Reason.TENANT_MISMATCH
    unserved = await audio.process(on("mallory", chunk_record("mallory", "iso", 0)))
    assert unserved.rejected is not None and unserved.rejected.reason is Reason.UNKNOWN_TENANT
    events = await listening.process_batch(
        [
            on("beats", event_record("acme", "u1", "iso-1")),
            on("beats", event_record("beats", "u1", "iso-2")),
        ]
    )
    assert [o.rejected.reason if o.rejected else None for o in events] == [
        Reason.TENANT_MISMATCH,
        None,
    ]
    letter = events[0].outputs[0]
    assert letter.topic == DEADLETTER and letter.value == events[0].record.value
    assert dict(letter.headers)["source-topic"] == b"beats.listening.events"


async def test_a_verdict_the_broker_never_acknowledged_is_published_again(
    listening: ListeningStep, store: MemoryStore
) -> None:
    """The worker crashed after sending the verdict, before the broker acknowledged it: it
    was never remembered as published, and the record read again publishes it again."""
    first = event_record("acme", "u2", "v1", offset=20)
    (original,) = await listening.process_batch([first])
    assert ACCOUNTS in [o.topic for o in original.outputs]
    restarted = ListeningStep(
        tenants=["acme"], store=dataclasses.replace(store, incarnation="next"), window_s=3600
    )
    (replayed,) = await restarted.process_batch([first])
    assert [o.topic for o in replayed.outputs] == [ANOMALY, POPULARITY, ACCOUNTS]
    # refused by the broker: the step forgets it, and the listener's next event says it again
    assert replayed.on_delivered is not None
    replayed.on_delivered(False)
    (after,) = await restarted.process_batch([event_record("acme", "u2", "v2", offset=21)])
    assert ACCOUNTS in [o.topic for o in after.outputs]
