"""The demo's catalogue deliveries: whole tracks that sound different, one of them made
through a decoder-like stack, published before the live load so the tagger's table tells
them apart, with their stems and the AI-music flag (which wants 20 s of a stream).

Rendered by sox and espeak-ng (Debian packages, as the tests' corpus): plucked strings,
organ-like square-wave chords, fast sawtooth chords, a spoken text, a voice over drums and
chords, and the organ track again through a random DAC-like stack of transposed
convolutions (``workers.dev.decoders``). Without sox and espeak-ng, the demo says so and
goes on without them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np
import soxr

from workers.core.records import AUDIO_CHUNKS, TAGS
from workers.core.tagging import PATCH_FRAMES
from workers.core.tagging.melspec import HOP, SR
from workers.dev import corpus, decoders, mixtures
from workers.dev.client import Collector, Received, audio_headers, pcm_bytes, start_producer

__all__ = ["SECONDS", "Delivery", "deliver", "deliveries"]

SECONDS = 24.0
RATE = 44100


@dataclass(frozen=True)
class Delivery:
    tenant: str
    stream: str
    what: str
    audio: np.ndarray  # mono float32
    rate: int
    generated: bool = False

    @property
    def windows(self) -> int:
        """The 3 s windows the tagger completes over the track."""
        return int(self.audio.size / self.rate * SR) // (PATCH_FRAMES * HOP)


def deliveries() -> list[Delivery]:
    """Six tracks, two per tenant, or none without sox and espeak-ng."""
    if not corpus.available():
        return []
    pluck = corpus.music(0, sr=RATE, seconds=SECONDS)  # clip numbers pick the instrument
    organ = corpus.music(2, sr=RATE, seconds=SECONDS)
    saw = corpus.music(4, sr=RATE, seconds=SECONDS)
    spoken = soxr.resample(corpus.speech(1, sr=22050, seconds=SECONDS), 22050, RATE)
    band = mixtures.mixture(3, seconds=SECONDS).audio
    made = decoders.decode_like(organ, decoders.FAMILIES["dac"], np.random.default_rng(26))
    return [
        Delivery("aurora", "delivery-strings", "plucked strings", pluck, RATE),
        Delivery("aurora", "delivery-spoken", "a spoken text", spoken.astype(np.float32), RATE),
        Delivery("basslab", "delivery-band", "voice over drums and chords", band, mixtures.SR),
        Delivery("basslab", "delivery-saw", "fast sawtooth chords", saw, RATE),
        Delivery("cadence", "delivery-organ", "organ chords", organ, RATE),
        Delivery("cadence", "delivery-genai", "the organ track via a decoder", made, RATE, True),
    ]


async def deliver(
    bootstrap: str, tracks: list[Delivery], *, timeout: float = 90.0
) -> dict[str, Received]:
    """Publish every track whole (0.5 s chunks, as fast as the producer goes, as a
    catalogue delivery arrives), then wait for the tagger's last window of each; the last
    ``predictions.tags`` message read per stream (``{tenant}/{stream}``)."""
    collector = await Collector(bootstrap, (TAGS,), from_end=True).start()
    producer = await start_producer(bootstrap)
    for track in tracks:
        step = track.rate // 2
        for seq, start in enumerate(range(0, track.audio.size, step)):
            headers = audio_headers(
                tenant=track.tenant,
                stream=track.stream,
                seq=seq,
                sample_rate=track.rate,
                channels=1,
                track=track.stream,
            )
            await producer.send(
                AUDIO_CHUNKS,
                pcm_bytes(track.audio[start : start + step, None]),
                key=f"{track.tenant}/{track.stream}".encode(),
                headers=headers,
            )
    await producer.flush()
    wanted = {f"{t.tenant}/{t.stream}".encode(): t.windows for t in tracks}
    last: dict[str, Received] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in collector.received:
            if message.key in wanted:
                index = int(message.json()["window"]["index"])  # type: ignore[index, call-overload]
                if index + 1 >= wanted[message.key]:
                    last[message.key.decode()] = message
        if len(last) == len(wanted):
            break
        await asyncio.sleep(0.2)
    await producer.stop()
    await collector.stop()
    return last
