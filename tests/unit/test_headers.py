"""Record headers are outside input: any bytes as a name (Kafka's protocol allows them), any
bytes or none as a value. Whatever a producer sends, a record becomes a record, and each
input topic's step turns it into its outputs or exactly one dead letter, never an error."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import TS, event_body
from workers.core.errors import Reason
from workers.core.records import (
    AUDIO_CHUNKS,
    DEADLETTER,
    LISTENING_EVENTS,
    RECOMMEND_REQUESTS,
    received,
)
from workers.dev.client import audio_headers, pcm_bytes
from workers.pipeline.audio import AudioStep
from workers.pipeline.listening import ListeningStep
from workers.pipeline.recommend import RecommendStep
from workers.state import MemoryStore
from workers.state.catalogue import MemoryCatalogue

names = st.one_of(
    st.binary(max_size=12),  # mostly not UTF-8
    st.text(max_size=12).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"tenant", b"stream", b"seq", b"", b"\xff\xfe", b"\xc0\x80", b"a\x00b"]),
)
values = st.one_of(st.none(), st.binary(max_size=16))
header_lists = st.lists(st.tuples(names, values), max_size=5)


def _utf8(name: bytes) -> bool:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@given(headers=header_lists)
@settings(max_examples=300, deadline=None)
def test_any_header_names_and_values_make_a_record(
    headers: list[tuple[bytes, bytes | None]],
) -> None:
    record = received(LISTENING_EVENTS, 0, 1, b"k", b"v", headers=headers, timestamp_ms=None)
    if all(_utf8(name) for name, _ in headers):
        assert record.header_error is None
        assert [n for n, _ in record.headers] == [name.decode() for name, _ in headers]
        assert [v for _, v in record.headers] == [v or b"" for _, v in headers]
    else:
        assert record.header_error is not None
        assert record.headers == ()
    # a tolerant reader's surrogate escapes are the same bytes, and the same verdict
    as_text = [(name.decode("utf-8", "surrogateescape"), v) for name, v in headers]
    again = received(LISTENING_EVENTS, 0, 1, b"k", b"v", headers=as_text, timestamp_ms=None)
    assert (again.header_error is None) == (record.header_error is None)


def _steps() -> tuple[ListeningStep, AudioStep, RecommendStep]:
    store = MemoryStore()
    return (
        ListeningStep(tenants=["acme"], store=store, window_s=3600),
        AudioStep(tenants=["acme"], store=store, model_rate=22050),
        RecommendStep(tenants=["acme"], store=store, catalogue=MemoryCatalogue(store)),
    )


@given(headers=header_lists, extra=st.booleans())
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_input_topic_answers_any_headers_with_outputs_or_one_dead_letter(
    headers: list[tuple[bytes, bytes | None]], extra: bool
) -> None:
    listening, audio, recommend = _steps()
    valid_names = all(_utf8(name) for name, _ in headers)
    event = orjson.dumps(event_body("acme", "u1", "e1", ts=TS))
    chunk_headers = [
        (n.encode(), v)
        for n, v in audio_headers(tenant="acme", stream="s1", seq=0, sample_rate=8000, channels=1)
    ]
    chunk = pcm_bytes(np.zeros((800, 1)))
    request = orjson.dumps({"request_id": "r1", "tenant": "acme", "track_id": "t1"})
    cases = [
        (LISTENING_EVENTS, b"acme/u1", event, headers),
        (AUDIO_CHUNKS, b"acme/s1", chunk, [*chunk_headers, *headers] if extra else headers),
        (RECOMMEND_REQUESTS, b"acme/r1", request, headers),
    ]

    async def run() -> None:
        for topic, key, value, sent in cases:
            record = received(topic, 0, 1, key, value, headers=sent, timestamp_ms=TS)
            if topic == LISTENING_EVENTS:
                (outcome,) = await listening.process_batch([record])
            elif topic == AUDIO_CHUNKS:
                outcome = await audio.process(record)
            else:
                outcome = await recommend.process(record)
            letters = [o for o in outcome.outputs if o.topic == DEADLETTER]
            if outcome.rejected is not None:
                assert len(letters) == 1 and len(outcome.outputs) == 1
                assert letters[0].value == value, "a dead letter keeps the original bytes"
            else:
                assert outcome.outputs and not letters
            if not valid_names:
                assert outcome.rejected is not None
                assert outcome.rejected.reason is Reason.BAD_HEADERS
            elif topic != AUDIO_CHUNKS:  # headers mean nothing to JSON topics
                assert outcome.rejected is None

    asyncio.run(run())
