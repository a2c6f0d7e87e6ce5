"""Inputs that are bad on purpose, each of which must become exactly one dead letter: the
demo sends one a second, beside the good load."""

from __future__ import annotations

import itertools

import numpy as np

from workers.core.records import AUDIO_CHUNKS, LISTENING_EVENTS
from workers.dev.client import audio_headers, event_value, pcm_bytes

__all__ = ["bad_inputs"]


def bad_inputs() -> itertools.cycle[tuple[str, str, bytes | None, bytes, list[tuple[str, bytes]]]]:
    """(label, topic, key, value, headers) of inputs that must each become one dead letter."""
    good = dict(
        tenant="aurora",
        user_id="u1",
        track_id="t1",
        type="play",
        ts=1_764_000_000_000,
        ms_played=1000,
    )
    nan = np.full((100, 1), np.nan, dtype=np.float32)
    hdr = audio_headers(tenant="aurora", stream="bad", seq=0, sample_rate=44100, channels=1)
    return itertools.cycle(
        [
            ("malformed json", LISTENING_EVENTS, b"aurora/u1", b'{"event_id": ', []),
            (
                "unknown tenant",
                LISTENING_EVENTS,
                b"mallory/u1",
                event_value(**{**good, "tenant": "mallory", "event_id": "x"}),
                [],
            ),
            (
                "schema-invalid",
                LISTENING_EVENTS,
                b"aurora/u1",
                event_value(event_id="y", tenant="aurora"),
                [],
            ),
            ("truncated pcm", AUDIO_CHUNKS, b"aurora/bad", b"\x01\x02\x03", hdr),
            (
                "NaN samples",
                AUDIO_CHUNKS,
                b"aurora/bad",
                pcm_bytes(nan, encoding="f32le"),
                audio_headers(
                    tenant="aurora",
                    stream="bad",
                    seq=1,
                    sample_rate=44100,
                    channels=1,
                    encoding="f32le",
                ),
            ),
            (
                "absurd sample rate",
                AUDIO_CHUNKS,
                b"aurora/bad",
                b"\x00\x00" * 100,
                audio_headers(tenant="aurora", stream="bad", seq=2, sample_rate=1, channels=1),
            ),
        ]
    )
